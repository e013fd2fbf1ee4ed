/**
 * Commit latency with the DuckLake rows: N committers (each its own catalog connection, as N
 * copiers on N machines have) commit partitions of one dataset as fast as they can, on one
 * PostgreSQL, in a scratch database: the commit transaction of a real copy (the lineage row, its
 * ten quality rows, and the DuckLake snapshot of its file, taken under the lock that orders
 * snapshots; a fleet copier's claim check, one more statement, is left out). Prints, for 1, 10 and 50 committers, the commit latency (p50, p95, max) and the
 * commits per second, with the DuckLake rows and without them (the same transaction on a dataset
 * that has no DuckLake table, where the DuckLake call returns at once).
 *
 *   deno run -A scripts/bench-commits.ts [--committers 1,10,50] [--seconds 10]
 *     [--pg postgres://postgres@127.0.0.1:5432/postgres]
 *
 * A real copier commits one partition per cell built (seconds to minutes of work each): what
 * matters is that a commit stays a few milliseconds however many copiers commit at once.
 */
import { parseArgs } from "node:util";
import { type Catalog, openCatalog } from "../lib/metadata/catalog.ts";
import { dbOf } from "../lib/metadata/_db.ts";
import { CatalogWriter } from "../lib/metadata/writer.ts";
import { PG_ADMIN, withScratchDb } from "./_scratch_db.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    pg: { type: "string", default: PG_ADMIN },
    committers: { type: "string", default: "1,10,50" },
    seconds: { type: "string", default: "10" },
  },
});

/** The commit-time metrics of a real partition (lib/copy/build.ts), as numbers of that size. */
const QUALITY = {
  row_count: 10_000,
  row_count_matches_range: 1,
  chain_intact: 1,
  first_close_time_ms: 1.7e12,
  last_close_time_ms: 1.7e12 + 5e7,
  close_time_min_ms: 1.7e12,
  close_time_max_ms: 1.7e12 + 5e7,
  tx_count: 123_456,
  operation_count: 234_567,
  xdr_bytes: 2e9,
};

interface Run {
  committers: number;
  ducklake: boolean;
  commits: number;
  perSecond: number;
  p50: number;
  p95: number;
  max: number;
}

async function measure(dsn: string, committers: number, ducklake: boolean): Promise<Run> {
  const admin = await openCatalog({ dsn, stateDir: "./state", log: () => {} });
  const era = `bench-${committers}-${ducklake ? "dl" : "plain"}`;
  let next = 0;
  const catalogs: Catalog[] = [];
  try {
    const id = await new CatalogWriter(admin).ensureDataset({
      domain: "bronze",
      dataset: "ledgers_lcm_raw",
      version: "v1",
      eraId: era,
      network: "pubnet",
      schemaHash: "x",
      storageRoot: "/bench",
      partitionSize: 10_000,
    }, "bench");
    // Without DuckLake: the dataset has no DuckLake table, so the commit's DuckLake call (and
    // its snapshot lock) returns at once; everything else in the transaction is the same.
    if (!ducklake) {
      await dbOf(admin).query(`UPDATE _meta_datasets SET ducklake_table_id = NULL WHERE id = $1`, [
        id,
      ]);
    }
    for (let i = 0; i < committers; i++) {
      catalogs.push(await openCatalog({ dsn, stateDir: "./state", log: () => {} }));
    }
    const latencies: number[] = [];
    const seconds = Number(values.seconds);
    const until = performance.now() + seconds * 1000;
    await Promise.all(catalogs.map(async (c, w) => {
      const writer = new CatalogWriter(c);
      while (performance.now() < until) {
        const start = next++ * 10_000 + 1;
        const t = performance.now();
        await writer.recordPartition({
          datasetId: id,
          ledgerStart: start,
          ledgerEnd: start + 9_999,
          rowCount: 10_000,
          byteSize: 20_000_000,
          checksum: `sha256:${"a".repeat(64)}`,
          storagePath: `pubnet/${era}/v1/ledgers_lcm_raw/range=${start}-${
            start + 9_999
          }/part.parquet`,
          storageUri: `/bench/pubnet/${era}/v1/ledgers_lcm_raw/range=${start}-${
            start + 9_999
          }/part.parquet`,
          firstPreviousLedgerHash: "0".repeat(64),
          lastLedgerHash: "1".repeat(64),
          producerVersion: "bench",
          producerGitSha: null,
          sourceType: "archive",
          sourceLocation: "gs://lake",
          quality: QUALITY,
          author: `bench-${w}`,
        });
        latencies.push(performance.now() - t);
      }
    }));
    latencies.sort((a, b) => a - b);
    const q = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
    return {
      committers,
      ducklake,
      commits: latencies.length,
      perSecond: latencies.length / seconds,
      p50: q(0.5),
      p95: q(0.95),
      max: latencies.at(-1)!,
    };
  } finally {
    for (const c of catalogs) await c.close();
    await admin.close();
  }
}

await withScratchDb("bronze_bench_commits", async (dsn) => {
  const runs: Run[] = [];
  for (const n of values.committers.split(",").map(Number)) {
    for (const ducklake of [false, true]) runs.push(await measure(dsn, n, ducklake));
  }
  console.log(
    "| committers | DuckLake rows | commits | commits/s | p50 ms | p95 ms | max ms |\n" +
      "| ---------- | ------------- | ------- | --------- | ------ | ------ | ------ |",
  );
  for (const r of runs) {
    console.log(
      `| ${r.committers} | ${r.ducklake ? "yes" : "no"} | ${r.commits} | ${
        r.perSecond.toFixed(0)
      } | ${r.p50.toFixed(1)} | ${r.p95.toFixed(1)} | ${r.max.toFixed(1)} |`,
    );
  }
}, values.pg);
