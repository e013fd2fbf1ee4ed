/**
 * Follow → compact → gc, measured: a follower's partials (one every `--every` ledgers, as
 * `--flush-interval` leaves them; made here by range copies, which commit the same partial
 * partitions) over `--cells` grid cells of `--cell` ledgers, then `bronze compact`, then
 * `bronze gc --apply` past the grace period. Prints the lineage rows and stored files before and
 * after each step, the time per compacted cell, and checks every compacted file against a
 * backfill of the same cell (same checksum).
 *
 *   deno run -A scripts/bench-compact.ts [--cells 3] [--cell 1000] [--every 50]
 */
import { toStoreUrl } from "../lib/blob/mod.ts";
import { resolveSettings } from "../lib/settings/mod.ts";
import { parseArgs } from "node:util";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeLake } from "./make-lake.ts";
import { withScratchDb } from "./_scratch_db.ts";
import { copy } from "../lib/copy/run.ts";
import { compact } from "../lib/copy/compact.ts";
import { gc } from "../lib/recover/gc.ts";
import { memoryLogger } from "../lib/runtime/log.ts";
import { openCatalog } from "../lib/metadata/catalog.ts";
import { CatalogWriter } from "../lib/metadata/writer.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    cells: { type: "string", default: "3" },
    cell: { type: "string", default: "1000" },
    every: { type: "string", default: "50" },
  },
});
const cells = Number(values.cells);
const cell = Number(values.cell);
const every = Number(values.every);
const DATASET = {
  domain: "bronze",
  dataset: "ledgers_lcm_raw",
  version: "v1",
  eraId: "default",
  network: "testnet",
};
const quiet = () => memoryLogger();
const none = () => undefined;

const work = await mkdtemp(join(tmpdir(), "bronze-compact-"));
try {
  const lake = join(work, "lake");
  await makeLake({ url: lake, network: "testnet", start: 1, count: cells * cell, lcmVersion: 2 });
  const flags = (catalog: string, storage: string, stateDir: string) => ({
    source: lake,
    storage,
    catalog,
    stateDir,
    network: "testnet",
    partitionSize: String(cell),
    progressInterval: "0",
  });
  await withScratchDb("bronze_bench_compact", async (dsn) => {
    const storage = join(work, "data");
    const stateDir = join(work, "state");
    for (let s = 1; s <= cells * cell; s += every) {
      const end = String(Math.min(s + every - 1, cells * cell));
      await copy(
        resolveSettings("copy", { ...flags(dsn, storage, stateDir), start: String(s), end }, none),
        quiet(),
      );
    }
    const before = { rows: await rowCount(dsn, stateDir), files: await files(storage) };
    const t0 = performance.now();
    const done = await compact(
      resolveSettings(
        "compact",
        { catalog: dsn, stateDir, storage, partitionSize: String(cell) },
        none,
      ),
      quiet(),
    );
    const seconds = (performance.now() - t0) / 1000;
    const compacted = done.filter((c) => c.outcome === "compacted");
    const afterCompact = { rows: await rowCount(dsn, stateDir), files: await files(storage) };
    const swept = await gc({
      catalog: dsn,
      stateDir,
      storage: toStoreUrl(storage),
      olderThan: 0,
      apply: true,
    });
    const afterGc = { rows: await rowCount(dsn, stateDir), files: await files(storage) };

    // The reference: one backfill of the same ledgers, into a catalog of its own.
    const same = await withScratchDb("bronze_bench_compact_ref", async (ref) => {
      const refStorage = join(work, "reference");
      await copy(
        resolveSettings("copy", {
          ...flags(ref, refStorage, join(work, "ref-state")),
          start: "1",
          end: String(cells * cell),
        }, none),
        quiet(),
      );
      const mine = await checksums(dsn, stateDir);
      const theirs = await checksums(ref, join(work, "ref-state"));
      return JSON.stringify(mine) === JSON.stringify(theirs);
    });

    console.log(
      `${cells} cells of ${cell} ledgers, a partial every ${every} ledgers (${
        cell / every
      } per cell)`,
    );
    console.log(
      `  after the follower: ${before.rows.current} current lineage rows, ${before.files} files`,
    );
    console.log(
      `  after compact:      ${afterCompact.rows.current} current + ${afterCompact.rows.superseded} superseded rows, ` +
        `${afterCompact.files} files; ${compacted.length} cells in ${seconds.toFixed(2)} s ` +
        `(${(seconds / Math.max(1, compacted.length)).toFixed(2)} s per cell)`,
    );
    console.log(
      `  after gc --apply:   ${afterGc.rows.current} current + ${afterGc.rows.superseded} superseded rows, ` +
        `${afterGc.files} files (${
          swept.objects.filter((o) => o.outcome === "deleted").length
        } deleted)`,
    );
    console.log(`  compacted checksums equal a backfill's: ${same ? "yes" : "NO"}`);
    if (!same) Deno.exitCode = 1;
  });
} finally {
  await rm(work, { recursive: true, force: true });
}

async function files(root: string): Promise<number> {
  const all = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return all.filter((d) => d.isFile()).length;
}

async function lineageOf(dsn: string, stateDir: string, history: boolean) {
  const catalog = await openCatalog({ dsn, stateDir, mustExist: true });
  try {
    const writer = new CatalogWriter(catalog);
    const ds = await writer.findDataset(DATASET);
    return ds ? await writer.listLineage(ds.id, undefined, { history }) : [];
  } finally {
    await catalog.close();
  }
}

async function rowCount(dsn: string, stateDir: string) {
  const all = await lineageOf(dsn, stateDir, true);
  const current = all.filter((r) => r.supersededBy === null).length;
  return { current, superseded: all.length - current };
}

async function checksums(dsn: string, stateDir: string) {
  return (await lineageOf(dsn, stateDir, false)).map((r) =>
    `${r.ledgerStart}-${r.ledgerEnd} ${r.checksum}`
  );
}
