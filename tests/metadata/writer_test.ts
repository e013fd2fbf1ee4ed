/**
 * lib/metadata/writer.ts, the seed's catalog writer, on both catalogs: the dataset registry, the
 * lineage rows with their quality rows, and the rules the database holds them to. The seed's
 * TestCatalogWriter_* tests are here.
 */
import assert from "node:assert/strict";
import { CATALOG_KINDS, poolOf, withCatalog } from "../support/catalogs.ts";
import { contiguousCoverage } from "../../lib/metadata/coverage.ts";
import {
  CatalogWriter,
  type DatasetInfo,
  DuplicatePartitionError,
  OverlappingPartitionError,
  type PartitionRecord,
} from "../../lib/metadata/writer.ts";

const DATASET: DatasetInfo = {
  domain: "bronze",
  dataset: "ledgers_lcm_raw",
  version: "v1",
  eraId: "pre_p23",
  network: "pubnet",
  schemaHash: "a".repeat(64),
};

function partition(datasetId: number, start: number, end: number): PartitionRecord {
  return {
    datasetId,
    ledgerStart: start,
    ledgerEnd: end,
    rowCount: end - start + 1,
    byteSize: 1234,
    checksum: `sha256:${start.toString(16).padStart(64, "0")}`,
    storagePath:
      `pubnet/pre_p23/v1/ledgers_lcm_raw/range=${start}-${end}/part-${start}-${end}.parquet`,
    storageUri:
      `file:///data/pubnet/pre_p23/v1/ledgers_lcm_raw/range=${start}-${end}/part-${start}-${end}.parquet`,
    firstPreviousLedgerHash: "0".repeat(64),
    lastLedgerHash: "f".repeat(64),
    producerVersion: "bronze@0.1.0",
    producerGitSha: "deadbeef",
    sourceType: "archive",
    sourceLocation: "gs://lake/ledgers",
    quality: { row_count_matches_range: 1, tx_count: 7 },
  };
}

const LABEL = "bronze.ledgers_lcm_raw (pubnet/pre_p23/v1)";

for (const kind of CATALOG_KINDS) {
  Deno.test(`TestCatalogWriter_EnsureDataset [${kind}]: creates on first call, returns the id on the second`, async () => {
    await withCatalog(kind, async (catalog) => {
      const w = new CatalogWriter(catalog);
      const id = await w.ensureDataset(DATASET);
      assert.equal(await w.ensureDataset(DATASET), id);
      const other = await w.ensureDataset({ ...DATASET, network: "testnet" });
      assert.notEqual(other, id);
      const { rows } = await poolOf(catalog).query("SELECT count(*)::int AS n FROM _meta_datasets");
      assert.equal(rows[0].n, 2);
      const changes = await poolOf(catalog).query("SELECT count(*)::int AS n FROM _meta_changes");
      assert.equal(changes.rows[0].n, 0, "no change row while the schema hash is unchanged");
    });
  });

  Deno.test(`EnsureDataset [${kind}]: a changed schema hash is stored and recorded as a schema_change`, async () => {
    await withCatalog(kind, async (catalog) => {
      const w = new CatalogWriter(catalog);
      const id = await w.ensureDataset(DATASET);
      assert.equal(await w.ensureDataset({ ...DATASET, schemaHash: "b".repeat(64) }), id);
      const { rows } = await poolOf(catalog).query(
        "SELECT change_type, old_version, new_version FROM _meta_changes WHERE dataset_id = $1",
        [id],
      );
      assert.deepEqual(rows, [{
        change_type: "schema_change",
        old_version: "a".repeat(32),
        new_version: "b".repeat(32),
      }]);
    });
  });

  Deno.test(`TestCatalogWriter_RecordPartition [${kind}]: inserts the lineage row and its quality rows`, async () => {
    await withCatalog(kind, async (catalog) => {
      const w = new CatalogWriter(catalog);
      const id = await w.ensureDataset(DATASET);
      const rec = partition(id, 1, 10000);
      const lineageId = await w.recordPartition(rec);
      const found = await w.findPartition(id, 1, 10000);
      assert.ok(found);
      assert.equal(found.id, lineageId);
      const { quality: _, ...expected } = rec;
      assert.deepEqual({ ...found, id: 0, createdAt: null }, {
        ...expected,
        id: 0,
        createdAt: null,
        supersededBy: null,
        supersededAt: null,
      });
      assert.ok(found.createdAt instanceof Date);
      const q = await poolOf(catalog).query(
        "SELECT metric_name, metric_value FROM _meta_quality WHERE lineage_id = $1 ORDER BY metric_name",
        [lineageId],
      );
      assert.deepEqual(q.rows, [
        { metric_name: "row_count_matches_range", metric_value: 1 },
        { metric_name: "tx_count", metric_value: 7 },
      ]);
    });
  });

  Deno.test(`TestCatalogWriter_DuplicatePartition [${kind}]: a range recorded twice is a typed error`, async () => {
    await withCatalog(kind, async (catalog) => {
      const w = new CatalogWriter(catalog);
      const id = await w.ensureDataset(DATASET);
      const lineageId = await w.recordPartition(partition(id, 1, 10000));
      await assert.rejects(() => w.recordPartition(partition(id, 1, 10000)), (err) => {
        assert.ok(err instanceof DuplicatePartitionError);
        assert.equal(
          err.message,
          `partition 1-10000 of ${LABEL} is already recorded (lineage id ${lineageId}, sha256:${
            "1".padStart(64, "0")
          })`,
        );
        return true;
      });
      const { rows } = await poolOf(catalog).query("SELECT count(*)::int AS n FROM _meta_lineage");
      assert.equal(rows[0].n, 1);
    });
  });

  Deno.test(`overlapping range [${kind}]: rejected by the database, typed error names both ranges`, async () => {
    await withCatalog(kind, async (catalog) => {
      const w = new CatalogWriter(catalog);
      const id = await w.ensureDataset(DATASET);
      const first = await w.recordPartition(partition(id, 1, 10000));
      await assert.rejects(() => w.recordPartition(partition(id, 5001, 15000)), (err) => {
        assert.ok(err instanceof OverlappingPartitionError);
        assert.equal(
          err.message,
          `partition 5001-15000 of ${LABEL} overlaps recorded partition 1-10000 (lineage id ${first})`,
        );
        return true;
      });
      // The constraint lives in the database, not only in the writer.
      await assert.rejects(
        () =>
          poolOf(catalog).query(
            `INSERT INTO _meta_lineage (dataset_id, ledger_start, ledger_end, row_count, byte_size, checksum,
               storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash, producer_version)
             VALUES ($1, 10000, 10001, 2, 1, 'c', 'p', 'u', 'h', 'h', 'v')`,
            [id],
          ),
        (err: { code?: string }) => err.code === "23P01",
      );
      // Another dataset may hold the same ledgers.
      const other = await w.ensureDataset({ ...DATASET, eraId: "p23" });
      await w.recordPartition(partition(other, 1, 10000));
    });
  });

  Deno.test(`lineage rows are immutable [${kind}]: UPDATE, DELETE and TRUNCATE are rejected`, async () => {
    await withCatalog(kind, async (catalog) => {
      const w = new CatalogWriter(catalog);
      const id = await w.ensureDataset(DATASET);
      await w.recordPartition(partition(id, 1, 100));
      for (
        const sql of [
          "UPDATE _meta_lineage SET checksum = 'x'",
          "DELETE FROM _meta_lineage",
          "TRUNCATE _meta_lineage CASCADE",
        ]
      ) {
        const op = sql.split(" ")[0];
        const but = op === "UPDATE" ? " (but marking a current row superseded, once)" : "";
        await assert.rejects(() => poolOf(catalog).query(sql), (err: Error) => {
          assert.equal(err.message, `_meta_lineage is append-only: ${op} is not allowed${but}`);
          return true;
        });
      }
      const found = await w.findPartition(id, 1, 100);
      assert.equal(found?.checksum, partition(id, 1, 100).checksum);
      // The one change allowed (compaction's): the superseded mark, from unset to set, once, and
      // nothing else with it.
      const next = await w.recordPartition(partition(id, 101, 200));
      const db = poolOf(catalog);
      await assert.rejects(
        () =>
          db.query(
            "UPDATE _meta_lineage SET superseded_by = $1, superseded_at = now(), checksum = 'x' WHERE id = $2",
            [next, found!.id],
          ),
        /append-only: UPDATE is not allowed/,
      );
      await db.query(
        "UPDATE _meta_lineage SET superseded_by = $1, superseded_at = now() WHERE id = $2",
        [next, found!.id],
      );
      await assert.rejects(
        () =>
          db.query(
            "UPDATE _meta_lineage SET superseded_by = $1, superseded_at = now() WHERE id = $2",
            [found!.id + 1000, found!.id],
          ),
        /append-only: UPDATE is not allowed/,
      );
      // Superseded, it no longer counts: it is not current, and its ledgers may be recorded again.
      assert.equal(await w.findPartition(id, 1, 100), null);
      await w.recordPartition(partition(id, 1, 100));
    });
  });

  Deno.test(`contiguous coverage and lineage listing [${kind}]`, async () => {
    await withCatalog(kind, async (catalog) => {
      const w = new CatalogWriter(catalog);
      const id = await w.ensureDataset(DATASET);
      assert.equal(await contiguousCoverage(catalog, id, 1), 0);
      for (const [s, e] of [[1, 100], [101, 200], [301, 400]]) {
        await w.recordPartition(partition(id, s, e));
      }
      assert.equal(await contiguousCoverage(catalog, id, 1), 200);
      assert.equal(await contiguousCoverage(catalog, id, 50), 200);
      assert.equal(await contiguousCoverage(catalog, id, 201), 200);
      assert.equal(await contiguousCoverage(catalog, id, 301), 400);
      assert.equal(await contiguousCoverage(catalog, id, 401), 400);
      assert.deepEqual((await w.listLineage(id)).map((r) => [r.ledgerStart, r.ledgerEnd]), [
        [1, 100],
        [101, 200],
        [301, 400],
      ]);
      assert.deepEqual(
        (await w.listLineage(id, { start: 150, end: 350 })).map((r) => r.ledgerStart),
        [101, 301],
      );
      const cov = await poolOf(catalog).query(
        "SELECT ledger_start, ledger_end, partitions FROM _meta_coverage ORDER BY ledger_start",
      );
      assert.deepEqual(cov.rows, [{ ledger_start: 1, ledger_end: 200, partitions: 2 }, {
        ledger_start: 301,
        ledger_end: 400,
        partitions: 1,
      }]);
    });
  });
}
