import { resolveSettings } from "../../lib/settings/mod.ts";
import assert from "node:assert/strict";
import { copy, type CopyOptions } from "../../lib/copy/run.ts";
import { memoryLogger } from "../../lib/runtime/log.ts";
import { coverageCommand, EXIT_GAPS } from "../../lib/cli/commands/coverage.ts";
import {
  COVERAGE_SQL,
  coverageParams,
  type DatasetCoverage,
  queryCoverage,
} from "../../lib/metadata/coverage.ts";
import { CatalogWriter } from "../../lib/metadata/writer.ts";
import { SCHEMA_HASH } from "../../lib/table/schema.ts";
import type { Range } from "../../lib/table/grid.ts";
import { type CatalogTarget, catalogTarget, poolOf, withCatalog } from "../support/catalogs.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { copyOptions } from "../support/copy.ts";

const LAKE = { network: "testnet", start: 1, count: 1000, lcmVersion: 2 } as const;
const LABEL = "bronze.ledgers_lcm_raw (testnet/pre_p23/v1)";

async function coverage(
  target: CatalogTarget,
  range: { start?: number; end?: number } = {},
): Promise<DatasetCoverage[]> {
  const c = await target.open();
  try {
    return await queryCoverage(c, { ...range });
  } finally {
    await c.close();
  }
}

async function sql<T = Record<string, unknown>>(
  target: CatalogTarget,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = await target.open();
  try {
    return (await poolOf(c).query(text, params)).rows as T[];
  } finally {
    await c.close();
  }
}

const ranges = (rs: Range[]) => rs.map((r) => [r.start, r.end]);

/** The gaps cut on the 100-ledger grid, as the copier must copy them. */
function onGrid(gaps: Range[], size = 100): number[][] {
  const out: number[][] = [];
  for (const g of gaps) {
    for (let s = g.start; s <= g.end;) {
      const e = Math.min(Math.floor((s - 1) / size) * size + size, g.end);
      out.push([s, e]);
      s = e + 1;
    }
  }
  return out;
}

const changes = (t: CatalogTarget) =>
  sql<{ change_type: string; description: string }>(
    t,
    `SELECT change_type, description FROM _meta_changes ORDER BY id`,
  );

Deno.test("coverage (postgres): gaps at the start, middle and end; --fill-gaps copies exactly them; backfill recorded only behind the highest ledger", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const log = memoryLogger();
  // Every run is the one copier that the backfill record names.
  const options = (o: Partial<CopyOptions>) =>
    copyOptions(target, { source, storage: out.path, copierId: "coverage-test", ...o });
  // Holes: 1-150 (before a partial first partition), 301-400, 501-700, and 901-1000 at the end.
  for (const [start, end] of [[151, 300], [401, 500], [701, 900]]) {
    await copy(options({ start, end }), log);
  }
  assert.deepEqual(await changes(target), [], "copies that only extend the top are no backfill");

  const [all] = await coverage(target, { start: 1, end: 1000 });
  assert.equal(all.label, LABEL);
  assert.deepEqual([all.firstLedger, all.lastLedger, all.partitions, all.rows], [
    151,
    900,
    5,
    450,
  ]);
  assert.deepEqual(ranges(all.gaps), [[1, 150], [301, 400], [501, 700], [901, 1000]]);
  assert.equal(all.missingLedgers, 550);
  const lineageBytes = await sql<{ n: number }>(
    target,
    `SELECT sum(byte_size)::int AS n FROM _meta_lineage`,
  );
  assert.equal(all.bytes, lineageBytes[0].n);

  // Without a range only the holes between the lowest and highest ledger held are gaps.
  const [held] = await coverage(target);
  assert.deepEqual(ranges(held.gaps), [[301, 400], [501, 700]]);
  // A range inside the dataset: partitions overlapping it, gaps only inside it.
  const [inner] = await coverage(target, { start: 420, end: 760 });
  assert.deepEqual([inner.firstLedger, inner.lastLedger, inner.partitions], [401, 800, 2]);
  assert.deepEqual(ranges(inner.gaps), [[501, 700]]);
  // A range with nothing held is one gap.
  const [none] = await coverage(target, { start: 1, end: 50 });
  assert.deepEqual([none.firstLedger, none.partitions, ranges(none.gaps)], [null, 0, [[1, 50]]]);

  // The trailing hole, copied as a plain range: still no backfill.
  const tail = await copy(options({ start: 901, end: 1000 }), log);
  assert.deepEqual(ranges(tail.committed), [[901, 1000]]);
  assert.deepEqual(await changes(target), []);

  // --fill-gaps without a range: the holes between lowest and highest, nothing else.
  const before = await coverage(target);
  const inside = await copy(options({ fillGaps: true }), log);
  assert.deepEqual(ranges(inside.committed), onGrid(before[0].gaps));
  assert.deepEqual(ranges(inside.committed), [[301, 400], [501, 600], [601, 700]]);
  assert.deepEqual(ranges(inside.adopted), []);
  let ch = await changes(target);
  assert.equal(ch.length, 1, "one backfill row per run");
  assert.equal(ch[0].change_type, "backfill");
  assert.equal(
    ch[0].description,
    "copier coverage-test filled ledgers from 301 behind the highest recorded ledger 1000",
  );

  // --fill-gaps over 1-1000: exactly the leading gap coverage reports, cut on the grid.
  const lead = await coverage(target, { start: 1, end: 1000 });
  assert.deepEqual(ranges(lead[0].gaps), [[1, 150]]);
  const front = await copy(options({ fillGaps: true, start: 1, end: 1000 }), log);
  assert.deepEqual(ranges(front.committed), onGrid(lead[0].gaps));
  assert.deepEqual(ranges(front.committed), [[1, 100], [101, 150]]);
  ch = await changes(target);
  assert.deepEqual(ch.map((c) => c.change_type), ["backfill", "backfill"]);

  const [done] = await coverage(target, { start: 1, end: 1000 });
  assert.deepEqual([done.firstLedger, done.lastLedger, done.rows, done.gaps], [
    1,
    1000,
    1000,
    [],
  ]);
  // Nothing left to fill: a rerun copies nothing and records no change.
  const again = await copy(options({ fillGaps: true, start: 1, end: 1000 }), log);
  assert.deepEqual(again.committed, []);
  assert.equal((await changes(target)).length, 2);

  // The copier's quality metrics on every lineage row; nothing of verify's (coverage writes none).
  const metrics = await sql<{ metric_name: string; n: number }>(
    target,
    `SELECT metric_name, count(*)::int AS n FROM _meta_quality GROUP BY 1 ORDER BY 1`,
  );
  const partitions = (await sql<{ n: number }>(
    target,
    `SELECT count(*)::int AS n FROM _meta_lineage`,
  ))[0].n;
  assert.equal(partitions, 11);
  assert.deepEqual(
    metrics,
    [
      "chain_intact",
      "close_time_max_ms",
      "close_time_min_ms",
      "first_close_time_ms",
      "last_close_time_ms",
      "operation_count",
      "row_count",
      "row_count_matches_range",
      "tx_count",
      "xdr_bytes",
    ].map((metric_name) => ({ metric_name, n: partitions })),
  );
  assert.deepEqual(
    await sql(target, `SELECT 1 FROM _meta_changes WHERE change_type = 'schema_change'`),
    [],
  );
});

// The embedded catalog starts an in-process PostgreSQL on every open: the same story, shorter.
Deno.test("coverage (embedded): gaps at the start, middle and end; --fill-gaps copies exactly them", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("embedded");
  await using out = await tempDir();
  const log = memoryLogger();
  for (const [start, end] of [[151, 300], [701, 900]]) {
    await copy(copyOptions(target, { source, storage: out.path, start, end }), log);
  }
  const c = await target.open();
  let gaps: Range[];
  try {
    const [all] = await queryCoverage(c, { start: 1, end: 1000 });
    assert.deepEqual([all.label, all.firstLedger, all.lastLedger, all.partitions, all.rows], [
      LABEL,
      151,
      900,
      4,
      350,
    ]);
    assert.deepEqual(ranges(all.gaps), [[1, 150], [301, 700], [901, 1000]]);
    gaps = all.gaps;
    assert.deepEqual((await poolOf(c).query(`SELECT * FROM _meta_changes`)).rows, []);
  } finally {
    await c.close();
  }
  const filled = await copy(
    copyOptions(target, { source, storage: out.path, fillGaps: true, start: 1, end: 1000 }),
    log,
  );
  assert.deepEqual(ranges(filled.committed), onGrid(gaps));
  const d = await target.open();
  try {
    const [done] = await queryCoverage(d, { start: 1, end: 1000 });
    assert.deepEqual([done.partitions, done.rows, done.gaps], [11, 1000, []]);
    const ch = await poolOf(d).query(`SELECT change_type FROM _meta_changes`);
    assert.deepEqual(ch.rows, [{ change_type: "backfill" }]);
    const q = await poolOf(d).query(
      `SELECT count(DISTINCT lineage_id)::int AS l, count(*)::int AS n FROM _meta_quality`,
    );
    assert.deepEqual(q.rows, [{ l: 11, n: 11 * 10 }]);
  } finally {
    await d.close();
  }
});

Deno.test("bronze coverage: table, --json, filters, --fail-on-gaps exits 3 only when a gap exists", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  for (const [start, end] of [[101, 200], [401, 500]]) {
    await copy(copyOptions(target, { source, storage: out.path, start, end }), memoryLogger());
  }
  const run = async (flags: Record<string, string | boolean>) => {
    const lines: string[] = [];
    const errs: string[] = [];
    const code = await coverageCommand(
      resolveSettings(
        "coverage",
        { catalog: target.dsn, stateDir: target.stateDir, ...flags },
        () => undefined,
      ),
      (l) => lines.push(l),
      (l) => errs.push(l),
    );
    return { code, lines, errs };
  };
  const table = await run({ start: "1", end: "600" });
  assert.equal(table.code, 0, "gaps alone do not fail without --fail-on-gaps");
  assert.deepEqual(table.lines.slice(1), [
    "range: 1-600",
    "DATASET                                      LEDGERS HELD  PARTITIONS  ROWS     BYTES  GAPS  MISSING",
    `${LABEL}       101-500           2   200  117.8 KB     3      400`,
    "",
    `gaps of ${LABEL}:`,
    "  1-100    (100 ledgers missing)",
    "  201-400  (200 ledgers missing)",
    "  501-600  (100 ledgers missing)",
  ]);

  const failing = await run({ failOnGaps: true, json: true });
  assert.equal(failing.code, EXIT_GAPS);
  assert.equal(EXIT_GAPS, 3);
  assert.deepEqual(failing.errs, ["bronze: 1 gap in 1 dataset(s) (--fail-on-gaps)"]);
  const report = JSON.parse(failing.lines.join(""));
  assert.deepEqual(report.range, { start: null, end: null });
  assert.equal(report.datasets.length, 1);
  assert.deepEqual(report.datasets[0].gaps, [{ start: 201, end: 400, ledgers: 200 }]);
  assert.equal(report.datasets[0].first_ledger, 101);
  assert.equal(report.datasets[0].last_ledger, 500);

  // A range without gaps passes --fail-on-gaps.
  assert.equal((await run({ failOnGaps: true, start: "401", end: "500" })).code, 0);
  // Filters: another network or dataset matches nothing, so there is nothing to fail on.
  const other = await run({ network: "pubnet", failOnGaps: true });
  assert.equal(other.code, 0);
  assert.deepEqual(other.lines.slice(1), ["no datasets match"]);
  assert.equal(
    (await run({ era: "pre_p23", versionLabel: "v1", dataset: "ledgers_lcm_raw" })).lines
      .filter((l) => l.startsWith(LABEL)).length,
    1,
  );
  assert.equal((await run({ versionLabel: "v2", failOnGaps: true })).code, 0);

  // Bad filter values are configuration errors, reported together.
  assert.throws(
    () => resolveSettings("coverage", { network: "mainnet", start: "x" }, () => undefined),
    {
      message:
        `2 configuration problems: --network must be one of pubnet, testnet, futurenet, got "mainnet"; --start must be a whole number, got "x"`,
    },
  );
});

Deno.test("schema_change is recorded when the Parquet schema hash changes, and not otherwise", async () => {
  await withCatalog("postgres", async (catalog) => {
    const w = new CatalogWriter(catalog);
    const ds = {
      domain: "bronze",
      dataset: "ledgers_lcm_raw",
      version: "v1",
      eraId: "pre_p23",
      network: "testnet",
      schemaHash: "a".repeat(64),
    };
    const id = await w.ensureDataset(ds);
    assert.equal(await w.ensureDataset(ds), id);
    const rows = async () =>
      (await poolOf(catalog).query(
        `SELECT change_type, old_version, new_version, description FROM _meta_changes ORDER BY id`,
      )).rows;
    assert.deepEqual(await rows(), [], "same hash: no change");
    assert.equal(await w.ensureDataset({ ...ds, schemaHash: "b".repeat(64) }), id);
    assert.deepEqual(await rows(), [{
      change_type: "schema_change",
      old_version: "a".repeat(32),
      new_version: "b".repeat(32),
      description: `Parquet schema hash of ${LABEL} changed`,
    }]);
    await w.ensureDataset({ ...ds, schemaHash: "b".repeat(64) });
    assert.equal((await rows()).length, 1);
  });
});

Deno.test("copy records schema_change when the dataset was registered with another schema hash; a second copy does not", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const c = await target.open();
  try {
    await new CatalogWriter(c).ensureDataset({
      domain: "bronze",
      dataset: "ledgers_lcm_raw",
      version: "v1",
      eraId: "pre_p23",
      network: "testnet",
      schemaHash: "0".repeat(64),
    });
  } finally {
    await c.close();
  }
  await copy(
    copyOptions(target, { source, storage: out.path, start: 1, end: 100 }),
    memoryLogger(),
  );
  const expected = [{
    change_type: "schema_change",
    old_version: "0".repeat(32),
    new_version: SCHEMA_HASH.slice(0, 32),
  }];
  const q = `SELECT change_type, old_version, new_version FROM _meta_changes ORDER BY id`;
  assert.deepEqual(await sql(target, q), expected);
  await copy(
    copyOptions(target, { source, storage: out.path, start: 101, end: 200 }),
    memoryLogger(),
  );
  assert.deepEqual(await sql(target, q), expected);
});

Deno.test("coverage of 1,000,000 lineage rows is planned as an index scan, never a seq scan", async () => {
  await withCatalog("postgres", async (catalog) => {
    const db = await poolOf(catalog).connect();
    try {
      const { rows: ds } = await db.query<{ id: number }>(
        `INSERT INTO _meta_datasets (domain, dataset, version, era_id, network, schema_hash)
         VALUES ('bronze', 'ledgers_lcm_raw', 'v1', 'e', 'pubnet', 'x'),
                ('bronze', 'ledgers_lcm_raw', 'v1', 'e', 'testnet', 'x')
         RETURNING id`,
      );
      // The schema stays as migrated (CHECKs, unique index, coverage index) except for two costs
      // that only bulk loading pays: the GiST exclusion index (over a minute to maintain for a
      // million inserts; coverage never reads it) and the per-row FK trigger.
      await db.query(`ALTER TABLE _meta_lineage DROP CONSTRAINT _meta_lineage_no_overlap`);
      await db.query(`SET session_replication_role = replica`);
      // 10-ledger partitions; every 1000th is missing, so there are 999 gaps inside.
      await db.query(
        `INSERT INTO _meta_lineage (dataset_id, ledger_start, ledger_end, row_count, byte_size,
           checksum, storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash,
           producer_version)
         SELECT $1, (i - 1) * 10 + 1, i * 10, 10, 1000 + i % 7, 'sha256:x', 'p', 'u', 'a', 'b', 'x'
         FROM generate_series(1, 1000000) i WHERE i % 1000 <> 0`,
        [ds[0].id],
      );
      await db.query(
        `INSERT INTO _meta_lineage (dataset_id, ledger_start, ledger_end, row_count, byte_size,
           checksum, storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash,
           producer_version)
         SELECT $1, (i - 1) * 10 + 1, i * 10, 10, 1000, 'sha256:x', 'p', 'u', 'a', 'b', 'x'
         FROM generate_series(1, 1000) i`,
        [ds[1].id],
      );
      await db.query(`SET session_replication_role = DEFAULT`);
      await db.query(`VACUUM ANALYZE _meta_lineage`);

      for (
        const filter of [
          { network: "pubnet" },
          {},
          { network: "pubnet", start: 5_000_001, end: 5_100_000 },
        ]
      ) {
        const { rows } = await db.query(
          `EXPLAIN (FORMAT JSON) ${COVERAGE_SQL}`,
          coverageParams(filter),
        );
        const scans = planScans(rows[0]["QUERY PLAN"][0].Plan);
        const onLineage = scans.filter((s) => s.relation === "_meta_lineage");
        assert.ok(onLineage.length > 0, JSON.stringify(scans));
        for (const s of onLineage) {
          assert.match(s.type, /^Index (Only )?Scan$/, JSON.stringify(scans));
        }
        assert.ok(
          onLineage.some((s) => s.index === "_meta_lineage_coverage"),
          JSON.stringify(scans),
        );
        assert.ok(
          !scans.some((s) => s.type.includes("Seq Scan") && s.relation === "_meta_lineage"),
        );
      }
      const t0 = performance.now();
      const [big] = await queryCoverage(catalog, { network: "pubnet" });
      const ms = performance.now() - t0;
      console.log(`coverage of ${big.partitions} lineage rows: ${ms.toFixed(0)} ms`);
      assert.equal(big.partitions, 999_000);
      assert.equal(big.gaps.length, 999);
      assert.deepEqual(big.gaps[0], { start: 9991, end: 10000 });
      const [window] = await queryCoverage(catalog, {
        network: "pubnet",
        start: 5_000_001,
        end: 5_100_000,
      });
      assert.deepEqual([window.firstLedger, window.lastLedger, window.partitions], [
        5_000_001,
        5_099_990,
        9_990,
      ]);
      assert.deepEqual(ranges(window.gaps), [
        [5_009_991, 5_010_000],
        [5_019_991, 5_020_000],
        [
          5_029_991,
          5_030_000,
        ],
        [5_039_991, 5_040_000],
        [5_049_991, 5_050_000],
        [5_059_991, 5_060_000],
        [
          5_069_991,
          5_070_000,
        ],
        [5_079_991, 5_080_000],
        [5_089_991, 5_090_000],
        [5_099_991, 5_100_000],
      ]);
    } finally {
      db.release();
    }
  });
});

interface Scan {
  type: string;
  relation?: string;
  index?: string;
}

/** Every scan node of an EXPLAIN (FORMAT JSON) plan. */
function planScans(node: Record<string, unknown>): Scan[] {
  const out: Scan[] = [];
  const type = node["Node Type"] as string;
  if (type.endsWith("Scan")) {
    out.push({
      type,
      relation: node["Relation Name"] as string | undefined,
      index: node["Index Name"] as string | undefined,
    });
  }
  for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) {
    out.push(...planScans(child));
  }
  return out;
}
