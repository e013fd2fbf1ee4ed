/**
 * Times `bronze coverage`'s query on a synthetic catalog of 1,000,000 lineage rows in a fresh
 * database on a PostgreSQL server, and prints its plan.
 *
 *   deno run -A scripts/bench-coverage.ts [--pg postgres://postgres@127.0.0.1:5432/postgres]
 *     [--rows 1000000] [--runs 5] [--full-schema]
 *
 * By default the GiST exclusion constraint is dropped and FK triggers are skipped while loading
 * (maintaining that index for a million single-statement inserts takes over a minute, and coverage
 * never reads it). --full-schema loads under the migrated schema untouched, to show the plan is
 * the same with it. The database is dropped at the end.
 */
import { dbOf } from "../lib/metadata/_db.ts";
import { parseArgs } from "node:util";
import { openCatalog } from "../lib/metadata/catalog.ts";
import { PG_ADMIN, withScratchDb } from "./_scratch_db.ts";
import { COVERAGE_SQL, coverageParams, queryCoverage } from "../lib/metadata/coverage.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    pg: { type: "string", default: PG_ADMIN },
    rows: { type: "string", default: "1000000" },
    runs: { type: "string", default: "5" },
    "full-schema": { type: "boolean", default: false },
  },
});
const rows = Number(values.rows);
await withScratchDb("bronze_bench_cov", async (dsn) => {
  const catalog = await openCatalog({ dsn, stateDir: "./state" });
  try {
    const db = await dbOf(catalog).pool.connect();
    try {
      const { rows: ds } = await db.query(
        `INSERT INTO _meta_datasets (domain, dataset, version, era_id, network, schema_hash)
       VALUES ('bronze', 'ledgers_lcm_raw', 'v1', 'bench', 'pubnet', 'x'),
              ('bronze', 'ledgers_lcm_raw', 'v1', 'bench', 'testnet', 'x') RETURNING id`,
      );
      let t = performance.now();
      if (!values["full-schema"]) {
        await db.query(`ALTER TABLE _meta_lineage DROP CONSTRAINT _meta_lineage_no_overlap`);
        await db.query(`SET session_replication_role = replica`);
      }
      // 10-ledger partitions, every 1000th missing: rows - rows/1000 partitions and as many gaps.
      await db.query(
        `INSERT INTO _meta_lineage (dataset_id, ledger_start, ledger_end, row_count, byte_size,
         checksum, storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash,
         producer_version)
       SELECT $1, (i - 1) * 10 + 1, i * 10, 10, 1000 + i % 7, 'sha256:x', 'p', 'u', 'a', 'b', 'x'
       FROM generate_series(1, $2::int) i WHERE i % 1000 <> 0`,
        [ds[0].id, rows],
      );
      await db.query(`SET session_replication_role = DEFAULT`);
      await db.query(`VACUUM ANALYZE _meta_lineage`);
      console.log(
        `loaded ${rows} lineage rows in ${((performance.now() - t) / 1000).toFixed(1)}s` +
          (values["full-schema"] ? " (full schema)" : " (no GiST exclusion index, no FK trigger)"),
      );
      const plan = await db.query(
        `EXPLAIN (ANALYZE, COSTS OFF) ${COVERAGE_SQL}`,
        coverageParams({ network: "pubnet" }),
      );
      console.log(plan.rows.map((r: Record<string, string>) => r["QUERY PLAN"]).join("\n"));
      for (
        const [what, filter] of [
          ["whole dataset", { network: "pubnet" }],
          ["all datasets", {}],
          ["a 100,000-ledger window", { network: "pubnet", start: 5_000_001, end: 5_100_000 }],
        ] as const
      ) {
        const times: number[] = [];
        let gaps = 0;
        for (let i = 0; i < Number(values.runs); i++) {
          t = performance.now();
          const r = await queryCoverage(catalog, filter);
          times.push(performance.now() - t);
          gaps = r.reduce((n, d) => n + d.gaps.length, 0);
        }
        times.sort((a, b) => a - b);
        console.log(
          `coverage, ${what}: median ${times[Math.floor(times.length / 2)].toFixed(0)} ms, ` +
            `best ${times[0].toFixed(0)} ms (${gaps} gaps)`,
        );
      }
    } finally {
      db.release();
    }
  } finally {
    await catalog.close();
  }
}, values.pg);
