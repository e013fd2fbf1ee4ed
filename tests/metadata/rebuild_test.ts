/**
 * The catalog side of `catalog rebuild`: one transaction per dataset, rolled back whole when a
 * copier recorded a row in the way meanwhile.
 */
import assert from "node:assert/strict";
import {
  heldDataset,
  LineageChangedError,
  REBUILD_CHANGE,
  type RebuiltRow,
  recordRebuild,
} from "../../lib/metadata/rebuild.ts";
import { CatalogWriter } from "../../lib/metadata/writer.ts";
import { CATALOG_KINDS, poolOf, withCatalog } from "../support/catalogs.ts";

const DATASET = {
  domain: "bronze",
  dataset: "ledgers_lcm_raw",
  version: "v1",
  eraId: "pre_p23",
  network: "testnet",
};

function row(start: number, end: number, createdAt: string): RebuiltRow {
  return {
    ledgerStart: start,
    ledgerEnd: end,
    rowCount: end - start + 1,
    byteSize: 1000 + start,
    checksum: `sha256:${String(start).padStart(64, "0")}`,
    storagePath:
      `testnet/pre_p23/v1/ledgers_lcm_raw/range=${start}-${end}/part-${start}-${end}.parquet`,
    storageUri: `/data/${start}`,
    firstPreviousLedgerHash: "a".repeat(64),
    lastLedgerHash: "b".repeat(64),
    producerVersion: "bronze@0.1.0",
    producerGitSha: null,
    sourceType: null,
    sourceLocation: null,
    createdAt: new Date(createdAt),
    quality: { row_count: end - start + 1, tx_count: 3 },
  };
}

for (const kind of CATALOG_KINDS) {
  Deno.test(`recordRebuild [${kind}]: rows, quality rows and one change row with the manifests' times; a row recorded meanwhile rolls all of it back`, async () => {
    await withCatalog(kind, async (catalog) => {
      const rows = [row(1, 100, "2026-01-02T03:04:05.678Z"), row(101, 200, "2026-01-03T00:00:00Z")];
      const id = await recordRebuild(
        catalog,
        { ...DATASET, schemaHash: "c".repeat(64), description: "d" },
        rows,
        "rebuilt",
      );
      const held = await heldDataset(catalog, DATASET);
      assert.equal(held?.id, id);
      assert.equal(held?.schemaHash, "c".repeat(64));
      assert.deepEqual(
        held?.lineage.map(({ id: _, datasetId: __, ...r }) => r),
        rows.map(({ quality: _, ...r }) => ({ ...r, supersededBy: null, supersededAt: null })),
      );
      const pool = poolOf(catalog);
      const quality = await pool.query(
        `SELECT l.ledger_start, q.metric_name, q.metric_value, q.created_at
         FROM _meta_quality q JOIN _meta_lineage l ON l.id = q.lineage_id
         ORDER BY 1, 2`,
      );
      assert.deepEqual(
        quality.rows.map((q: Record<string, unknown>) => [
          Number(q.ledger_start),
          q.metric_name,
          q.metric_value,
          (q.created_at as Date).toISOString(),
        ]),
        [
          [1, "row_count", 100, "2026-01-02T03:04:05.678Z"],
          [1, "tx_count", 3, "2026-01-02T03:04:05.678Z"],
          [101, "row_count", 100, "2026-01-03T00:00:00.000Z"],
          [101, "tx_count", 3, "2026-01-03T00:00:00.000Z"],
        ],
      );

      // A copier records 250-260 after the rebuild read the catalog: 201-300 is in its way.
      await new CatalogWriter(catalog).recordPartition({
        ...row(250, 260, "2026-01-04T00:00:00Z"),
        datasetId: id,
      });
      await assert.rejects(
        recordRebuild(
          catalog,
          { ...DATASET, schemaHash: "c".repeat(64) },
          [row(301, 400, "2026-01-05T00:00:00Z"), row(201, 300, "2026-01-05T00:00:00Z")],
          "again",
        ),
        (e: Error) =>
          e instanceof LineageChangedError &&
          e.message.startsWith(
            "lineage of bronze.ledgers_lcm_raw (testnet/pre_p23/v1) changed during the rebuild (",
          ),
      );
      assert.deepEqual(
        (await heldDataset(catalog, DATASET))?.lineage.map((r) => [r.ledgerStart, r.ledgerEnd]),
        [[1, 100], [101, 200], [250, 260]],
      );
      const changes = await pool.query(`SELECT change_type, description FROM _meta_changes`);
      assert.deepEqual(changes.rows, [{ change_type: REBUILD_CHANGE, description: "rebuilt" }]);
    });
  });
}
