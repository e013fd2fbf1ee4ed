/**
 * `copy()`: one run over a ledger range, in named steps like node-pg-migrate's runner: open what
 * the run needs, register the dataset, claim the range, find where to resume, plan (pure), then
 * build partitions in workers and commit them in ledger order through the Committer
 * (commit.ts). The claim is released and everything opened is closed in `finally` (an
 * AsyncDisposableStack), however the run ends.
 */
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { BronzeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { processAlive } from "../process.ts";
import { Progress } from "../progress.ts";
import { openStore } from "../blob/mod.ts";
import { checkpointManager } from "../checkpoint/checkpoint.ts";
import type { Catalog } from "../metadata/catalog.ts";
import { ClaimSession } from "../metadata/claims.ts";
import { islands } from "../metadata/coverage.ts";
import { openReadyCatalog } from "../metadata/migrate.ts";
import { CatalogWriter, datasetLabel } from "../metadata/writer.ts";
import { openSource } from "../source/mod.ts";
import type { Range } from "../table/grid.ts";
import { SCHEMA_HASH, TABLE } from "../table/schema.ts";
import type { Built } from "./build.ts";
import { Committer, type Dataset } from "./commit.ts";
import { coveredThrough, insertHeld, planWork } from "./plan.ts";
import { BuildPool } from "./pool.ts";
import { announce, findResumePoint, type ResumePoint } from "./resume.ts";
import { copyFleet } from "./fleet.ts";
import { addCommit, emptyStats, summary } from "./stats.ts";
import type { CopyOptions, CopyResult, Deps, RunContext } from "./context.ts";

export type { CopyOptions, CopyResult, CopyStats } from "./context.ts";

/** What changes as the run commits. */
class RunState {
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

export async function copy(
  opts: CopyOptions,
  log: Logger,
  signal: AbortSignal = new AbortController().signal,
): Promise<CopyResult> {
  await using stack = new AsyncDisposableStack();
  const deps = await open(opts, log, stack);
  const dataset = await register(deps.writer, opts);
  const range = await resolveRange(opts, deps.catalog, dataset);
  const claims = await ClaimSession.open(deps.catalog, dataset, opts.copierId);
  stack.defer(() => claims.close());
  await sweepTempFiles(deps.tmpDir);
  const committer = new Committer({
    storage: deps.storage,
    writer: deps.writer,
    checkpoint: deps.checkpoint,
    dataset,
    copierId: opts.copierId,
    source: { type: deps.source.type, url: deps.source.url },
    log,
  });
  if (opts.fleet) {
    const fleet = { start: range.start, end: range.end, size: opts.partitionSize };
    return await copyFleet({ opts, deps, dataset, committer, claims, log }, fleet, signal);
  }
  await claims.claimRange(range.start, range.end);
  const point = await findResumePoint({ ...deps, dataset, copierId: opts.copierId, log }, range);
  const work = planWork(range, opts.partitionSize, point.held, point.stored);
  if (work.length === 0) {
    log.info(
      "copier",
      `range ${range.start}-${range.end} is already complete (${dataset.label}); nothing to do`,
    );
    return new RunState(point).result;
  }
  announce(log, point, range, work[0]);
  return await buildAndCommit(
    { opts, deps, dataset, committer, claims, log, state: new RunState(point) },
    work,
    signal,
  );
}

async function open(opts: CopyOptions, log: Logger, stack: AsyncDisposableStack): Promise<Deps> {
  const storage = openStore(opts.storage);
  stack.defer(async () => await storage.close?.());
  const source = await openSource(opts.source, opts.network);
  stack.defer(async () => await source.close?.());
  const checkpoint = checkpointManager(opts.checkpoint);
  const progress = new Progress(log, opts.progressInterval);
  const pool = new BuildPool(
    opts.concurrency,
    opts.source,
    opts.network,
    (n, b) => progress.add(n, b),
  );
  stack.defer(() => pool.close());
  pool.warm(); // the workers load their modules while the catalog opens
  const catalog = await openReadyCatalog({
    dsn: opts.catalog,
    stateDir: opts.stateDir,
    log: (m) => log.info("catalog", m),
  });
  stack.defer(() => catalog.close());
  const tmpDir = join(opts.stateDir, "tmp");
  await mkdir(tmpDir, { recursive: true });
  return {
    source,
    storage,
    checkpoint,
    catalog,
    writer: new CatalogWriter(catalog),
    pool,
    progress,
    tmpDir,
  };
}

async function register(writer: CatalogWriter, opts: CopyOptions): Promise<Dataset> {
  const info = {
    domain: "bronze",
    dataset: TABLE,
    version: opts.versionLabel,
    eraId: opts.era,
    network: opts.network,
  };
  const id = await writer.ensureDataset({
    ...info,
    schemaHash: SCHEMA_HASH,
    description:
      "Stellar LedgerCloseMeta, one row per ledger, copied verbatim from a Galexie data lake",
  });
  return {
    network: opts.network,
    eraId: opts.era,
    version: opts.versionLabel,
    id,
    label: datasetLabel(info),
  };
}

/** --fill-gaps without a range means: between the dataset's lowest and highest recorded ledger. */
async function resolveRange(opts: CopyOptions, catalog: Catalog, dataset: Dataset): Promise<Range> {
  if (opts.start !== undefined && opts.end !== undefined) {
    return { start: opts.start, end: opts.end };
  }
  const held = await islands(catalog, dataset.id);
  if (!held.length) {
    throw new BronzeError(
      "--fill-gaps without --start/--end needs a dataset with recorded partitions; this one has none",
      2,
    );
  }
  return { start: opts.start ?? held[0].start, end: opts.end ?? held[held.length - 1].end };
}

interface Run extends RunContext {
  state: RunState;
}

/**
 * Up to `concurrency` partitions are built at once, each by a build worker (pool.ts); they are
 * committed here strictly in ledger order, so the catalog only ever grows contiguously from the
 * run's start.
 */
async function buildAndCommit(run: Run, work: Range[], signal: AbortSignal): Promise<CopyResult> {
  const { opts, deps: { pool, progress, tmpDir }, state, log } = run;
  const result = state.result;
  progress.begin(work.reduce((n, r) => n + r.end - r.start + 1, 0));
  const t0 = performance.now();
  const meta = { bronzeVersion: opts.versionLabel, eraId: opts.era, network: opts.network };
  const onAbort = () => pool.stop();
  signal.addEventListener("abort", onAbort);
  if (signal.aborted) pool.stop();
  const inFlight: Promise<Built | null>[] = [];
  let next = 0;
  const launch = () => {
    while (inFlight.length < opts.concurrency && next < work.length && !pool.stopped) {
      const range = work[next++];
      const path = join(tmpDir, `part-${Deno.pid}-${range.start}-${range.end}.parquet`);
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
      if (run.claims.lost) throw run.claims.lost;
      try {
        await commitOne(run, built);
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
    result.stats.seconds = (performance.now() - t0) / 1000;
  }
  // An interrupt that came after the last build finished stopped nothing.
  const last = result.committed.at(-1);
  result.interrupted = signal.aborted && !(last && last.end === work[work.length - 1].end);
  if (signal.aborted && !result.interrupted) {
    log.info(
      "copier",
      "the interrupt came after the last partition was in hand: nothing was cut short",
    );
  }
  if (!result.interrupted) log.info("copier", "complete");
  const { text, fields } = summary(result.stats);
  log.info("copier", text, fields);
  return result;
}

async function commitOne(run: Run, built: Built): Promise<void> {
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
  });
  if (backfill) state.backfillRecorded = true;
  state.checkpointLedger = through;
  state.result.committed.push(range);
  if (committed.adopted) state.result.adopted.push(range);
  addCommit(state.result.stats, built, committed);
}

/** Temp files of copiers that died (SIGKILL, power loss): their pid no longer runs. */
async function sweepTempFiles(tmpDir: string): Promise<void> {
  for (const name of await readdir(tmpDir).catch(() => [] as string[])) {
    const pid = Number(/^part-(\d+)-/.exec(name)?.[1]);
    if (pid && pid !== Deno.pid && !processAlive(pid)) {
      await rm(join(tmpDir, name), { force: true });
    }
  }
}
