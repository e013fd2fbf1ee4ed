/**
 * Times `bronze catalog rebuild` of a lost catalog of N partitions (default 10,000) from local
 * storage, into a fresh PostgreSQL database and a fresh embedded catalog, and checks that each
 * rebuilt lineage equals the one the copy recorded.
 *
 *   deno run -A scripts/bench-rebuild.ts [--partitions 10000] [--runs 3] [--no-embedded]
 *     [--pg postgres://postgres@127.0.0.1:5432/postgres]
 *
 * The first run makes (and caches under .bench/rebuild-<N>/) a synthetic testnet lake of N small
 * ledgers and copies it with `bronze copy --partition-size 1` into a temporary PostgreSQL
 * database: N real partitions, each with its _manifest.json; that lineage is kept as the
 * reference and the database dropped. Each timed run is a fresh `bronze catalog rebuild` process
 * (its wall time includes starting Deno and opening the catalog) into a new database or state
 * dir, dropped afterwards.
 */
import { parseArgs } from "node:util";
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { makeLake } from "./make-lake.ts";
import { openCatalog } from "../lib/metadata/catalog.ts";
import { CatalogWriter, type LineageRow } from "../lib/metadata/writer.ts";
import { DOMAIN, TABLE } from "../lib/table/schema.ts";
import { PG_ADMIN, withScratchDb } from "./_scratch_db.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    partitions: { type: "string", default: "10000" },
    runs: { type: "string", default: "3" },
    "no-embedded": { type: "boolean", default: false },
    pg: { type: "string", default: PG_ADMIN },
  },
});
const N = Number(values.partitions);
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const dir = resolve(new URL("..", import.meta.url).pathname, ".bench", `rebuild-${N}`);
const lake = join(dir, "lake");
const data = join(dir, "data");
const referenceFile = join(dir, "lineage.json");
const DATASET = {
  domain: DOMAIN,
  dataset: TABLE,
  version: "v1",
  eraId: "bench",
  network: "testnet",
};

async function exists(path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false);
}

async function bronze(args: string[], env: Record<string, string> = {}) {
  const t = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { PROGRESS_INTERVAL: "0", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - t) / 1000;
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    seconds,
  };
}

/** A catalog's lineage of the bench dataset, without ids. */
async function lineage(where: { dsn?: string; stateDir: string }): Promise<unknown[]> {
  const catalog = await openCatalog({ ...where, mustExist: true });
  try {
    const writer = new CatalogWriter(catalog);
    const ds = await writer.findDataset(DATASET);
    if (!ds) return [];
    return (await writer.listLineage(ds.id)).map(({ id: _, datasetId: __, ...r }: LineageRow) => ({
      ...r,
      createdAt: r.createdAt.toISOString(),
    }));
  } finally {
    await catalog.close();
  }
}

// The storage of N partitions and the lineage the copy recorded, made once.
if (!(await exists(referenceFile))) {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  console.log(`making ${N} partitions under ${dir} (once) ...`);
  await makeLake({
    url: lake,
    network: "testnet",
    start: 1,
    count: N,
    lcmVersion: 2,
    ledgerBytes: 512,
  });
  await withScratchDb("bronze_bench_rebuild", async (dsn) => {
    const stateDir = join(dir, "copy-state");
    const copied = await bronze([
      "copy",
      ...["--source", lake, "--storage", data, "--catalog", dsn, "--state-dir", stateDir],
      ...["--network", "testnet", "--era", "bench", "--start", "1", "--end", String(N)],
      ...["--partition-size", "1"],
    ]);
    if (copied.code !== 0) throw new Error(copied.stderr);
    console.log(`  copied in ${copied.seconds.toFixed(1)}s`);
    const rows = await lineage({ dsn, stateDir });
    if (rows.length !== N) throw new Error(`the copy recorded ${rows.length} partitions, not ${N}`);
    await writeFile(referenceFile, JSON.stringify(rows));
    await rm(stateDir, { recursive: true, force: true });
  }, values.pg);
}
const reference = JSON.parse(await Deno.readTextFile(referenceFile));

console.log(`bronze catalog rebuild of ${N} partitions from ${data}`);
console.log(
  "catalog    run  wall s  rebuild s  (list  check  record)  partitions/s  lineage equal",
);
const kinds = values["no-embedded"] ? ["postgres"] : ["postgres", "embedded"];
const results: Record<string, number[]> = {};
for (const kind of kinds) {
  for (let run = 1; run <= Number(values.runs); run++) {
    // A fresh, migrated database for postgres; a fresh state dir for the embedded catalog.
    await (kind === "postgres"
      ? withScratchDb("bronze_bench_rebuild", (dsn) => timedRebuild(kind, run, dsn), values.pg)
      : timedRebuild(kind, run));
  }
}

async function timedRebuild(kind: string, run: number, dsn?: string) {
  const stateDir = await Deno.makeTempDir({ prefix: "bronze-bench-rebuild-" });
  try {
    const r = await bronze(
      ["catalog", "rebuild", "--storage", data, "--state-dir", stateDir, "--json"],
      dsn ? { CATALOG_DSN: dsn } : {},
    );
    if (r.code !== 0) throw new Error(`rebuild exited ${r.code}: ${r.stderr}`);
    const report = JSON.parse(r.stdout);
    if (report.recorded !== N) throw new Error(`recorded ${report.recorded}, not ${N}`);
    const equal = JSON.stringify(await lineage({ dsn, stateDir })) ===
      JSON.stringify(reference);
    (results[kind] ??= []).push(r.seconds);
    console.log(
      `${kind.padEnd(9)}  ${String(run).padStart(3)}  ${r.seconds.toFixed(2).padStart(6)}  ${
        report.seconds.toFixed(2).padStart(9)
      }  (${
        [report.phases.list, report.phases.check, report.phases.record].map((x: number) =>
          x.toFixed(2)
        ).join("  ")
      })  ${(N / r.seconds).toFixed(0).padStart(12)}  ${equal ? "yes" : "NO"}`,
    );
    if (!equal) throw new Error("the rebuilt lineage differs from the copy's");
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
}
for (const [kind, times] of Object.entries(results)) {
  console.log(`${kind}: best ${Math.min(...times).toFixed(2)}s wall for ${N} partitions`);
}
