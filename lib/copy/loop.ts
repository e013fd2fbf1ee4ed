/**
 * The ordered engine of a run over known work: up to `concurrency` partitions built at once in
 * the worker pool, committed through the Committer strictly in ledger order. Used by a plain copy
 * (run.ts) once, and by a follower (follow.ts) for each batch the source's head allows.
 */
import process from "node:process";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Held } from "../metadata/claims.ts";
import type { Range } from "../table/grid.ts";
import type { Built } from "./build.ts";
import type { CopyResult, RunContext } from "./context.ts";
import { coveredThrough, insertHeld } from "./plan.ts";
import type { ResumePoint } from "./resume.ts";
import { addCommit, emptyStats, summary } from "./stats.ts";

/** What changes as the run commits. */
export class RunState {
  /** What the catalog holds inside the run's range; grows as the run commits. */
  readonly held: Range[];
  /** The dataset's highest recorded ledger when the run started (for backfill detection). */
  readonly highest: number;
  /** The checkpoint's ledger as last saved or loaded (to say why it moves back, if it does). */
  checkpointLedger: number;
  backfillRecorded = false;
  readonly result: CopyResult = {
    committed: [],
    adopted: [],
    interrupted: false,
    stats: emptyStats(),
  };

  constructor(point: ResumePoint) {
    this.held = [...point.held];
    this.highest = point.highest;
    this.checkpointLedger = point.checkpoint?.last_committed_ledger ?? 0;
  }
}

export interface Run extends RunContext {
  state: RunState;
  /**
   * The range claim the run commits under: a commit happens only while its row is still there,
   * so a copier whose claim was swept (its session ended; another copier or gc took over) commits
   * nothing. Its id changes when the claim is taken again after the catalog came back.
   */
  claim?: Held;
}

/**
 * Up to `concurrency` partitions are built at once, each by a build worker (pool.ts); they are
 * committed here strictly in ledger order, so the catalog only ever grows contiguously from the
 * run's start.
 */
export async function buildAndCommit(
  run: Run,
  work: Range[],
  signal: AbortSignal,
): Promise<"done" | "interrupted"> {
  const { opts, deps: { pool, progress, tmpDir }, state } = run;
  const result = state.result;
  progress.begin(work.reduce((n, r) => n + r.end - r.start + 1, 0));
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const startedAt = new Map<number, number>();
  const meta = { bronzeVersion: opts.versionLabel, eraId: opts.era, network: opts.network };
  const onAbort = () => pool.stop();
  signal.addEventListener("abort", onAbort);
  if (signal.aborted) pool.stop();
  else pool.resume();
  const inFlight: Promise<Built | null>[] = [];
  let next = 0;
  const launch = () => {
    while (inFlight.length < opts.concurrency && next < work.length && !pool.stopped) {
      const range = work[next++];
      const path = join(tmpDir, `part-${Deno.pid}-${range.start}-${range.end}.parquet`);
      startedAt.set(range.start, performance.now());
      const p = pool.build(range, path, meta);
      p.catch(() => {}); // observed in order below; an early failure must not go unhandled
      inFlight.push(p);
    }
  };
  try {
    launch();
    while (inFlight.length) {
      const built = await inFlight.shift()!;
      if (built === null) break; // interrupted before its first ledger
      // Its worker is free: the next build runs while this one is committed, so the commit's
      // fsyncs and catalog round trips stay off the critical path.
      launch();
      try {
        // A catalog that went away and came back: the range is claimed again before committing
        // (in here, so a run that cannot claim it again still removes the built file).
        await run.claims.ensure();
        await commitOne(run, built, startedAt.get(built.range.start)!);
      } finally {
        await rm(built.path, { force: true });
      }
      // After an interrupt, builds already in flight stop at their next ledger: the next one in
      // order is the partition in hand and is committed; a partial one ends the run (anything
      // after it would leave a gap).
      if (built.partial) break;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    pool.stop();
    // Builds started ahead of an error or a signal are discarded: they were never published.
    for (const p of inFlight) {
      const b = await p.catch(() => null);
      if (b) await rm(b.path, { force: true });
    }
    progress.end();
    result.stats.seconds += (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    result.stats.cpuSeconds += (cpu.user + cpu.system) / 1e6;
  }
  // An interrupt that came after the last build finished stopped nothing.
  const last = result.committed.at(-1);
  return signal.aborted && !(last && last.end === work[work.length - 1].end)
    ? "interrupted"
    : "done";
}

async function commitOne(run: Run, built: Built, startedAt: number): Promise<void> {
  const { state, log } = run;
  const { range } = built;
  if (built.chainBreaks) {
    log.warn(
      "partition",
      `ledgers ${range.start}-${range.end}: ${built.chainBreaks} break(s) in the previous-ledger-hash chain`,
    );
  }
  const backfill = !state.backfillRecorded && range.end < state.highest;
  insertHeld(state.held, range);
  // The checkpoint names the end of the catalog's contiguous run through this partition. A run
  // over an earlier range of the dataset may so move it back: then it says why.
  const through = coveredThrough(state.held, range.end);
  const back = through < state.checkpointLedger ? state.checkpointLedger : 0;
  const committed = await run.committer.commit({
    built,
    checkpointLedger: through,
    checkpointNote: back
      ? `(was ${back}: this run's range is contiguous in the catalog only through ${through}; \`bronze coverage\` shows what else it holds)`
      : undefined,
    change: backfill
      ? {
        type: "backfill",
        description:
          `copier ${run.opts.copierId} filled ledgers from ${range.start} behind the highest recorded ledger ${state.highest}`,
      }
      : undefined,
    // After a reconnect, the range's new claim (taken again first).
    claimId: run.claim && (async () => {
      await run.claims.ensure();
      return run.claim!.id;
    }),
  });
  if (backfill) state.backfillRecorded = true;
  state.checkpointLedger = through;
  run.metrics?.committed({
    ledgers: range.end - range.start + 1,
    bytes: built.bytes,
    lastLedger: through,
    seconds: (performance.now() - startedAt) / 1000,
  });
  state.result.committed.push(range);
  if (committed.adopted) state.result.adopted.push(range);
  addCommit(state.result.stats, built, committed);
}

/**
 * The lines that end a run, whatever its kind: complete or not, and its summary. A follower gives
 * the time it followed, which the summary says beside the time spent copying.
 */
export function finish(
  run: Run,
  interrupted: boolean,
  signalled: boolean,
  followedSeconds?: number,
): CopyResult {
  const { log, state: { result } } = run;
  result.interrupted = interrupted;
  if (signalled && !interrupted) {
    log.info(
      "copier",
      "the interrupt came after the last partition was in hand: nothing was cut short",
    );
  }
  if (!interrupted) log.info("copier", "complete");
  const { text, fields } = summary(result.stats, followedSeconds);
  log.info("copier", text, fields);
  return result;
}
