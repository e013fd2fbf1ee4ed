/**
 * `copy --fleet`: any number of copiers, on any number of machines, given the same range, copy it
 * together, coordinated only by the PostgreSQL catalog. Each claims grid cells that are neither
 * committed nor claimed by a live copier (claims.ts), builds each cell's missing ledgers and
 * commits them through the same Committer as any copy, in whatever order they finish, releases
 * the cell, and claims more. A copier ends (exit 0) only when every cell of the range is
 * committed; while cells are held by live others it waits for them, so the range completes as
 * long as one copier survives. A dead copier's claims die with its catalog session and are taken
 * over; a commit happens only while its cell's claim is still this copier's.
 */
import { join } from "node:path";
import { rm } from "node:fs/promises";
import process from "node:process";
import { formatDuration } from "../runtime/format.ts";
import type { FleetRange, Held } from "../metadata/claims.ts";
import { islands } from "../metadata/coverage.ts";
import { type CellCounts, cellCounts, holdersOfOpenCells } from "../metadata/fleet.ts";
import {
  ClaimLostError,
  DuplicatePartitionError,
  OverlappingPartitionError,
} from "../metadata/writer.ts";
import type { Built } from "./build.ts";
import type { CopyResult, RunContext } from "./context.ts";
import { planWork } from "./plan.ts";
import { loadCheckpoint } from "./resume.ts";
import { addCommit, emptyStats, summary } from "./stats.ts";

/** Lines about what a waiting copier waits for come at most this often, unless it changes. */
const WAIT_LINE_SECONDS = 30;

export async function copyFleet(
  run: RunContext,
  fleet: FleetRange,
  signal: AbortSignal,
): Promise<CopyResult> {
  const { opts, deps, dataset, claims, log } = run;
  const result: CopyResult = {
    committed: [],
    adopted: [],
    interrupted: false,
    stats: emptyStats(),
  };
  const cp = await loadCheckpoint({ ...deps, dataset, copierId: opts.copierId, log }, {
    anyCopier: true,
  });
  const start = await cellCounts(deps.catalog, dataset.id, fleet);
  log.info(
    "fleet",
    `copier ${opts.copierId} joins the fleet on ${fleet.start}-${fleet.end} of ${dataset.label}: ` +
      `${start.cells} cells of ${fleet.size}, ${start.committed} committed, ${start.claimed} ` +
      `claimed by others, ${start.left} left`,
    { event: "fleet_join", copier: opts.copierId, ...start },
  );
  if (cp) {
    log.info(
      "resume",
      `checkpoint found: last_committed=${cp.last_committed_ledger} (copier ${cp.copier_id}); claiming cells`,
    );
  }
  if (run.metrics) {
    run.metrics.resumed(await coveredFrom(run, fleet.start, fleet.end));
    run.metrics.fleetCells(start);
  }
  deps.progress.begin(start.ledgersLeft);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const onAbort = () => deps.pool.stop();
  signal.addEventListener("abort", onAbort);
  const active = new Set<Promise<void>>();
  let failure: unknown;
  // Commits go one at a time: the checkpoint is one object, saved after each.
  let commits: Promise<unknown> = Promise.resolve();
  const serially = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = commits.then(fn);
    commits = next.catch(() => {});
    return next;
  };
  const waiting = new WaitLine(run);
  // Others' releases wake a waiting copier at once; before the first look, so none is missed.
  await claims.watch();
  try {
    for (;;) {
      if (failure) throw failure;
      // A catalog that went away and came back: the cells held are claimed again first.
      await claims.ensure();
      const seen = claims.changes;
      while (!signal.aborted && active.size < opts.concurrency) {
        const [cell] = await claims.claimCells(fleet, 1);
        if (!cell) break;
        waiting.reset();
        const task: Promise<void> = copyCell(run, fleet, cell, signal, serially, result)
          .catch((err) => void (failure ??= err))
          .finally(() => active.delete(task));
        active.add(task);
      }
      if (active.size) {
        await Promise.race(active);
        continue;
      }
      if (signal.aborted) break;
      const now = await cellCounts(deps.catalog, dataset.id, fleet);
      run.metrics?.fleetCells(now);
      if (now.committed === now.cells) break;
      await waiting.say(now, fleet, opts.pollInterval);
      await claims.changedSince(seen, opts.pollInterval * 1000, signal);
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    deps.pool.stop();
    await Promise.allSettled(active);
    deps.progress.end();
    result.stats.seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    result.stats.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  }
  if (failure) throw failure;
  const end = await cellCounts(deps.catalog, dataset.id, fleet);
  result.interrupted = signal.aborted && end.committed < end.cells;
  if (signal.aborted && !result.interrupted) {
    log.info("copier", "the interrupt came after the last cell was in hand: nothing was cut short");
  }
  if (!result.interrupted) {
    log.info("fleet", `every cell of ${fleet.start}-${fleet.end} is committed`);
    log.info("copier", "complete");
  }
  const { text, fields } = summary(result.stats);
  log.info("copier", text, fields);
  return result;
}

/**
 * The last ledger of the catalog's contiguous run from the fleet's start (start - 1: none): the
 * fleet's cells are committed in any order, by any copier, so it is read from the catalog.
 */
async function coveredFrom(run: RunContext, start: number, end: number): Promise<number> {
  const [first] = await islands(run.deps.catalog, run.dataset.id, start, end);
  return first && first.start <= start ? first.end : start - 1;
}

/**
 * One claimed cell: builds what the catalog lacks of it (usually all of it; after an interrupt or a
 * lost copier, the rest), commits each piece, releases the claim.
 */
async function copyCell(
  run: RunContext,
  fleet: FleetRange,
  cell: Held,
  signal: AbortSignal,
  serially: <T>(fn: () => Promise<T>) => Promise<T>,
  result: CopyResult,
): Promise<void> {
  const { opts, deps, dataset, committer, claims, log, metrics } = run;
  try {
    const held = await islands(deps.catalog, dataset.id, cell.start, cell.end);
    const meta = { bronzeVersion: opts.versionLabel, eraId: opts.era, network: opts.network };
    for (const range of planWork(cell, fleet.size, held)) {
      if (signal.aborted) break;
      const path = join(deps.tmpDir, `part-${Deno.pid}-${range.start}-${range.end}.parquet`);
      const startedAt = performance.now();
      const built: Built | null = await deps.pool.build(range, path, meta);
      if (!built) break;
      try {
        const done = await serially(async () => {
          const c = await committer.commit({
            built,
            checkpointLedger: built.range.end,
            // After a reconnect, the cell's new claim (or its old one, if another copier took it).
            claimId: async () => {
              await claims.ensure();
              return cell.id;
            },
          });
          if (metrics) {
            const r = built.range;
            metrics.committed({
              ledgers: r.end - r.start + 1,
              bytes: built.bytes,
              lastLedger: await coveredFrom(run, fleet.start, fleet.end),
              seconds: (performance.now() - startedAt) / 1000,
            });
            metrics.fleetCells(await cellCounts(deps.catalog, dataset.id, fleet));
          }
          return c;
        });
        result.committed.push(built.range);
        if (done.adopted) result.adopted.push(built.range);
        addCommit(result.stats, built, done);
      } catch (err) {
        if (
          !(err instanceof ClaimLostError || err instanceof DuplicatePartitionError ||
            err instanceof OverlappingPartitionError)
        ) throw err;
        // Cut off from the catalog long enough for another copier to take the cell over: its
        // bytes are the same (deterministic), and the catalog keeps one row. Leave it to them.
        log.warn(
          "fleet",
          `cell ${cell.start}-${cell.end}: taken over by another copier (${err.message})`,
        );
        return;
      } finally {
        await rm(built.path, { force: true });
      }
      if (built.partial) break;
    }
  } finally {
    await claims.release(cell.id).catch(() => {});
  }
}

/** Says what a copier with nothing to claim waits for: when that changes, and now and then. */
class WaitLine {
  #said = "";
  #saidAt = 0;

  constructor(private readonly run: RunContext) {}

  reset(): void {
    this.#said = "";
  }

  async say(counts: CellCounts, fleet: FleetRange, seconds: number): Promise<void> {
    const { deps, dataset, log } = this.run;
    // The cells waited for and their holders come from one read, so the count and the names agree.
    const holders = await holdersOfOpenCells(deps.catalog, dataset.id, fleet);
    const held = holders.reduce((n, c) => n + c.held.length, 0);
    const open = counts.cells - counts.committed;
    const what = held
      ? `${held} cell${held === 1 ? "" : "s"} held by ${
        holders.map((c) =>
          `${c.copierId} (host ${c.host}, pid ${c.pid}: ${
            c.held.map((h) => `${h.start}-${h.end}`).join(", ")
          })`
        ).join("; ")
      }`
      : `${open} cell${open === 1 ? "" : "s"} just released`;
    const now = performance.now();
    if (what !== this.#said || now - this.#saidAt > WAIT_LINE_SECONDS * 1000) {
      log.info(
        "fleet",
        `waiting for ${what}; looking again at each release, and every ${formatDuration(seconds)}`,
      );
      this.#said = what;
      this.#saidAt = now;
    }
  }
}
