/**
 * Claim latency of fleet copiers: N claimers (each a ClaimSession with its own connection, as N
 * copiers on N machines have) claim and release cells of one fleet range as fast as they can, on
 * one PostgreSQL, in a scratch database. Prints the latency of claimCells (p50, p95, max) and the
 * claims per second the catalog sustains.
 *
 *   deno run -A scripts/bench-claims.ts [--claimers 50] [--cells 6000] [--seconds 20]
 *     [--pg postgres://postgres@127.0.0.1:5432/postgres]
 *
 * A real copier claims one cell per cell built (minutes of work each), so what matters is that a
 * claim stays a few milliseconds however many copiers there are.
 */
import { parseArgs } from "node:util";
import { openCatalog } from "../lib/metadata/catalog.ts";
import { ClaimSession } from "../lib/metadata/claims.ts";
import { CatalogWriter } from "../lib/metadata/writer.ts";
import { PG_ADMIN, withScratchDb } from "./_scratch_db.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    pg: { type: "string", default: PG_ADMIN },
    claimers: { type: "string", default: "50" },
    cells: { type: "string", default: "6000" },
    seconds: { type: "string", default: "20" },
  },
});
const claimers = Number(values.claimers);
const size = 10_000;
const fleet = { start: 1, end: Number(values.cells) * size, size };
await withScratchDb("bronze_bench_claims", async (dsn) => {
  const catalog = await openCatalog({ dsn, stateDir: "./state" });
  try {
    const writer = new CatalogWriter(catalog);
    const id = await writer.ensureDataset({
      domain: "bronze",
      dataset: "ledgers_lcm_raw",
      version: "v1",
      eraId: "bench",
      network: "pubnet",
      schemaHash: "x",
    });
    const dataset = { id, label: "bench" };
    // One pool connection per claimer (its session) plus the writer's: open them all first.
    const catalogs = await Promise.all(
      Array.from(
        { length: Math.ceil(claimers / 7) },
        () => openCatalog({ dsn, stateDir: "./state" }),
      ),
    );
    const sessions = await Promise.all(
      Array.from(
        { length: claimers },
        (_, i) => ClaimSession.open(catalogs[i % catalogs.length], dataset, `c${i}`),
      ),
    );
    const latencies: number[] = [];
    const until = performance.now() + Number(values.seconds) * 1000;
    await Promise.all(sessions.map(async (s) => {
      while (performance.now() < until) {
        const t = performance.now();
        const [cell] = await s.claimCells(fleet, 1);
        latencies.push(performance.now() - t);
        if (cell) await s.release(cell.id);
      }
    }));
    for (const s of sessions) await s.close();
    for (const c of catalogs) await c.close();
    latencies.sort((a, b) => a - b);
    const q = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
    console.log(
      `${claimers} claimers, ${values.cells} cells: ${latencies.length} claims in ${values.seconds}s ` +
        `(${(latencies.length / Number(values.seconds)).toFixed(0)}/s); claimCells latency ` +
        `p50 ${q(0.5).toFixed(1)} ms, p95 ${q(0.95).toFixed(1)} ms, max ${
          latencies.at(-1)!.toFixed(1)
        } ms`,
    );
  } finally {
    await catalog.close();
  }
}, values.pg);
