/**
 * `copy --follow`: copy to the source's head, then keep up with it. Each poll reads the head, and
 * every grid cell that is complete up to it is built and committed at once, through the same
 * ordered engine as any copy (loop.ts). The cell still growing at the head waits until it is
 * complete, or, with --flush-interval, until its oldest uncommitted ledger has been waiting that
 * long: then what there is of it is committed as a partial partition, which later partials and
 * the cell's completion follow on the grid (as after an interrupt).
 *
 * SIGINT/SIGTERM commit the ledgers in hand (being built, or waiting at the head) and stop. A
 * ledger missing below the head (a lake still being written) is waited for, with a line after a
 * while; a source whose head goes backwards, or a lake whose .config.json changes, is an error.
 */
import { formatDuration } from "../runtime/format.ts";
import { BronzeError, inArea } from "../runtime/errors.ts";
import { cellOf, gaps, type Range } from "../table/grid.ts";
import { MissingLedgerError } from "../source/source.ts";
import type { CopyResult } from "./context.ts";
import { buildAndCommit, finish, type Run } from "./loop.ts";
import { planWork } from "./plan.ts";
import { compactableCells, compactCell, type CompactDeps } from "./compact.ts";
import { Stores } from "../verify/locate.ts";
import type { ResumePoint } from "./resume.ts";
import { sleep } from "../runtime/time.ts";

/** A ledger missing below the head is said after this many polls of waiting for it. */
const MISSING_POLLS = 5;

export async function follow(
  run: Run,
  range: Range,
  point: ResumePoint,
  signal: AbortSignal,
): Promise<CopyResult> {
  const { opts, deps: { source }, log, metrics, state } = run;
  const size = opts.partitionSize;
  const flushMs = opts.flushInterval === undefined ? null : opts.flushInterval * 1000;
  const startedAt = performance.now();
  const first = nextMissing(state.held, range);
  if (first === null) {
    // An --end the catalog already holds: nothing to follow (the next ledger is past the end).
    log.info(
      "copier",
      `range ${range.start}-${range.end} is already complete (${run.dataset.label}); nothing to do`,
    );
    return state.result;
  }
  log.info(
    "follow",
    `following ${source.url} from ledger ${first}: polling every ${
      formatDuration(opts.pollInterval)
    }${
      flushMs === null ? "" : `, partial cells flushed after ${formatDuration(opts.flushInterval!)}`
    }`,
  );
  if (point.checkpoint || point.coverage >= range.start) {
    log.info("copier", `continuing from ledger ${first}`);
  }
  if (opts.flushInterval !== undefined) metrics?.flushInterval(opts.flushInterval);
  const done = (interrupted: boolean) =>
    finish(run, interrupted, signal.aborted, (performance.now() - startedAt) / 1000);
  let lastHead = 0;
  // The oldest uncommitted ledger, and when it was first seen in the source.
  let oldest = null as { ledger: number; since: number } | null;
  let missing = null as { ledger: number; polls: number } | null;
  // Said once each time the follower arrives at the head, not at every poll that finds it there.
  let atHead = false;
  const compactor = opts.compact ? new FollowCompactor(run) : null;
  try {
    return await followLoop();
  } finally {
    await compactor?.close();
  }

  async function followLoop(): Promise<CopyResult> {
    for (;;) {
      // Claimed again first, if the catalog went away and came back while the follower waited.
      await run.claims.ensure();
      const next = nextMissing(state.held, range);
      if (next === null) return done(false); // --end reached
      const head = await source.head().catch((err) => Promise.reject(inArea(err, "source")));
      if (head < lastHead) {
        throw new BronzeError(
          `source ${source.url} went backwards: its newest ledger was ${lastHead}, now it is ${head}`,
        );
      }
      lastHead = head;
      metrics?.sourceHead(head);
      const target = Math.min(head, range.end);
      if (target >= next && oldest?.ledger !== next) {
        oldest = { ledger: next, since: performance.now() };
      }
      metrics?.uncommittedSince(target >= next ? oldest!.since : null);
      const flush = signal.aborted ||
        (flushMs !== null && oldest !== null && performance.now() - oldest.since >= flushMs);
      const work = target < next ? [] : ready(next, target, size, state.held, range.end, flush);
      if (work.length) {
        // A batch is interrupted only by the user's signal: then its partial is committed.
        const batch = new AbortController();
        const stop = () => batch.abort();
        signal.addEventListener("abort", stop);
        try {
          const outcome = await buildAndCommit(run, work, batch.signal);
          missing = null;
          atHead = false;
          if (outcome === "interrupted" || signal.aborted) return done(true);
          if (compactor) await compactor.completed(work);
        } catch (err) {
          if (!(err instanceof MissingLedgerError) || err.ledger > head || signal.aborted) {
            throw err;
          }
          // Below the head: the lake is still being written. Wait for it, and say so after a while.
          missing = missing?.ledger === err.ledger
            ? { ledger: err.ledger, polls: missing.polls + 1 }
            : { ledger: err.ledger, polls: 1 };
          if (missing.polls === MISSING_POLLS) {
            log.warn(
              "follow",
              `ledger ${err.ledger} is not in ${source.url} yet, though ledger ${head} is; waiting for it`,
            );
          }
        } finally {
          signal.removeEventListener("abort", stop);
        }
        if (!missing) continue;
      } else if (signal.aborted) {
        return done(true);
      } else if (!atHead) {
        atHead = true;
        log.info(
          "follow",
          `caught up at ledger ${head}; looking again every ${formatDuration(opts.pollInterval)}`,
        );
      }
      metrics?.waiting(head);
      await sleep(opts.pollInterval * 1000, signal);
    }
  }
}

/** The first ledger of the range the catalog does not hold, or null when it holds them all. */
function nextMissing(held: readonly Range[], range: Range): number | null {
  return gaps(range, held)[0]?.start ?? null;
}

/**
 * What can be committed now, up to `target`: every complete cell, the range's last (partial) cell
 * once the range's end is reached, and the cell growing at the head when it is to be flushed.
 */
function ready(
  next: number,
  target: number,
  size: number,
  held: readonly Range[],
  end: number,
  flush: boolean,
): Range[] {
  return planWork({ start: next, end: target }, size, held).filter((r) =>
    r.end === cellOf(r.start, size).end || r.end === end || flush
  );
}

/**
 * --compact: each cell a batch completed, if partials cover it, is compacted at once, under the
 * follower's own claim (it covers the cell).
 */
class FollowCompactor {
  readonly #deps: CompactDeps;

  constructor(private readonly run: Run) {
    const { deps, opts, log } = run;
    this.#deps = {
      catalog: deps.catalog,
      writer: deps.writer,
      storage: deps.storage,
      stores: new Stores(undefined, deps.retry),
      tmpDir: deps.tmpDir,
      copierId: opts.copierId,
      log,
    };
  }

  async close(): Promise<void> {
    await this.#deps.stores.close();
  }

  async completed(work: readonly Range[]): Promise<void> {
    const { dataset, opts, log } = this.run;
    const size = opts.partitionSize;
    const ends = new Set(work.filter((r) => r.end === cellOf(r.start, size).end).map((r) => r.end));
    for (const end of ends) {
      const cell = cellOf(end, size);
      const rows = await this.#deps.writer.listLineage(dataset.id, cell);
      if (!compactableCells(rows, size).length) continue;
      const c = await compactCell(this.#deps, dataset, cell, { claimed: true });
      if (c.outcome === "compacted") {
        log.info(
          "compact",
          `cell ${cell.start}-${cell.end} compacted from ${c.partials} partitions (${c.checksum})`,
        );
      } else {
        log.warn("compact", `cell ${cell.start}-${cell.end} ${c.outcome}: ${c.reason}`);
      }
    }
  }
}
