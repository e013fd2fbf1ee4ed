/**
 * The copier: plans the missing ranges of [start, end], builds each partition from the lake and
 * commits it by the commit protocol of design.md (`commitPartition`, below). Whatever is killed
 * when, the next run resumes at the first uncommitted ledger, adopts what storage holds but the
 * catalog lacks, and records nothing twice.
 */
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { BronzeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { openStore } from "../blob/mod.ts";
import type { ObjectStore } from "../blob/store.ts";
import { type LedgerSource, openSource } from "../source/mod.ts";
import type { Network } from "../source/network.ts";
import { SCHEMA_HASH } from "../table/parquet.ts";
import type { Built } from "./build.ts";
import { BuildPool } from "./pool.ts";
import {
  type DatasetKey,
  datasetPrefix,
  manifestKey,
  partitionKey,
  planWork,
  type Range,
  rangeOfKey,
  TABLE,
} from "../table/layout.ts";
import { publishPartition, writeManifest } from "./publish.ts";
import { objectUrl } from "../blob/keys.ts";
import { openReadyCatalog } from "../metadata/migrate.ts";
import { CatalogWriter, datasetLabel } from "../metadata/writer.ts";
import { type Claim, claimRange } from "../metadata/claims.ts";
import {
  checkIdentity,
  type Checkpoint,
  checkpointManager,
  ErrNoCheckpoint,
  type Manager,
} from "../checkpoint/checkpoint.ts";
import { gitSha, PRODUCER } from "../version.ts";
import { failpoint } from "../failpoint.ts";
import { processAlive } from "../process.ts";
import { Progress } from "../progress.ts";

export interface CopyOptions {
  source: string;
  storage: string;
  start?: number;
  end?: number;
  partitionSize: number;
  network: Network;
  era: string;
  versionLabel: string;
  copierId: string;
  catalog?: string;
  stateDir: string;
  checkpoint: string;
  concurrency: number;
  /** Seconds between plain progress lines when not on a terminal; 0 or absent: none. */
  progressInterval?: number;
  fillGaps: boolean;
}

export interface CopyResult {
  /** Ranges committed by this run (adopted ones included), in order. */
  committed: Range[];
  adopted: Range[];
  /** The run stopped early on a signal, after committing the partition in hand. */
  interrupted: boolean;
  /** Where the run's time went (cheap counters, for the benchmark and for operators). */
  stats: CopyStats;
}

/** Seconds are wall-clock; build times run in parallel with each other and with commits. */
export interface CopyStats {
  /** Wall time from the first build to the last commit. */
  seconds: number;
  partitions: number;
  ledgers: number;
  /** LedgerCloseMeta XDR bytes copied. */
  xdrBytes: number;
  /** Per step, summed over partitions: 1 build (lake read, decode, Parquet, sha256). */
  buildSeconds: number;
  /** 2 publish. */
  publishSeconds: number;
  /** 3 manifest. */
  manifestSeconds: number;
  /** 4 the catalog transaction. */
  catalogSeconds: number;
  /** 5 the checkpoint save. */
  checkpointSeconds: number;
}

function emptyStats(): CopyStats {
  return {
    seconds: 0,
    partitions: 0,
    ledgers: 0,
    xdrBytes: 0,
    buildSeconds: 0,
    publishSeconds: 0,
    manifestSeconds: 0,
    catalogSeconds: 0,
    checkpointSeconds: 0,
  };
}

interface Run {
  opts: CopyOptions;
  log: Logger;
  lake: LedgerSource;
  storage: ObjectStore;
  writer: CatalogWriter;
  dataset: DatasetKey & { id: number; label: string };
  checkpoint: Manager;
  tmpDir: string;
  /** Ranges the catalog holds within [start, end]; grows as the run commits. */
  held: Range[];
  /** The dataset's highest recorded ledger when the run started (for backfill detection). */
  highest: number;
  backfillRecorded: boolean;
  progress: Progress;
}

export async function copy(
  opts: CopyOptions,
  log: Logger,
  signal: AbortSignal = new AbortController().signal,
): Promise<CopyResult> {
  // Everything opened here is closed in reverse order, however the run ends.
  await using stack = new AsyncDisposableStack();
  const storage = openStore(opts.storage);
  stack.defer(async () => await storage.close?.());
  const lake = await openSource(opts.source, opts.network);
  stack.defer(async () => await lake.close?.());
  const checkpoint = checkpointManager(opts.checkpoint);
  const progress = new Progress(log, opts.progressInterval ?? 0);
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
  const writer = new CatalogWriter(catalog);
  const key: DatasetKey = { network: opts.network, eraId: opts.era, version: opts.versionLabel };
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
  const dataset = { ...key, id, label: datasetLabel(info) };
  const { start, end } = await resolveRange(opts, writer, id);
  const claim = await claimRange(catalog, dataset, opts.copierId, start, end);
  stack.defer(() => claim.release());

  const tmpDir = join(opts.stateDir, "tmp");
  await mkdir(tmpDir, { recursive: true });
  await removeStaleTempFiles(tmpDir);
  const run: Run = {
    opts: { ...opts, start, end },
    log,
    lake,
    storage,
    writer,
    dataset,
    checkpoint,
    tmpDir,
    held: [],
    highest: 0,
    backfillRecorded: false,
    progress,
  };
  return await execute(run, start, end, signal, claim, pool);
}

/** --fill-gaps without a range means: between the dataset's lowest and highest recorded ledger. */
async function resolveRange(
  opts: CopyOptions,
  writer: CatalogWriter,
  datasetId: number,
): Promise<Range> {
  if (opts.start !== undefined && opts.end !== undefined) {
    return { start: opts.start, end: opts.end };
  }
  const lineage = await writer.listLineage(datasetId);
  if (!lineage.length) {
    throw new BronzeError(
      "--fill-gaps without --start/--end needs a dataset with recorded partitions; this one has none",
      2,
    );
  }
  return {
    start: opts.start ?? lineage[0].ledgerStart,
    end: opts.end ?? lineage[lineage.length - 1].ledgerEnd,
  };
}

async function execute(
  run: Run,
  start: number,
  end: number,
  signal: AbortSignal,
  claim: Claim,
  pool: BuildPool,
): Promise<CopyResult> {
  const { log, opts } = run;
  const cp = await loadCheckpoint(run);
  const lineage = await run.writer.listLineage(run.dataset.id);
  run.highest = lineage.length ? lineage[lineage.length - 1].ledgerEnd : 0;
  run.held = lineage.filter((r) => r.ledgerEnd >= start && r.ledgerStart <= end)
    .map((r) => ({ start: r.ledgerStart, end: r.ledgerEnd }));
  const coverage = await run.writer.contiguousCoverage(run.dataset.id, start);
  // A checkpoint may come from a run with another --start; it only contradicts the catalog when
  // the catalog holds no lineage at the ledger it names.
  if (
    cp && cp.last_committed_ledger >= start && cp.last_committed_ledger > coverage &&
    !(await run.writer.islandAround(run.dataset.id, cp.last_committed_ledger))
  ) {
    log.warn(
      "resume",
      `checkpoint says ledger ${cp.last_committed_ledger} is committed, but the catalog holds no lineage at it; trusting the catalog`,
    );
  }
  const stored = await storedRanges(run, start, end);
  const work = planWork({ start, end }, opts.partitionSize, run.held, stored);
  if (work.length === 0) {
    log.info(
      "copier",
      `range ${start}-${end} is already complete (${run.dataset.label}); nothing to do`,
    );
    return { committed: [], adopted: [], interrupted: false, stats: emptyStats() };
  }
  // The catalog is the truth; it is only worth a line when the checkpoint does not already say it.
  if (coverage >= start && coverage !== cp?.last_committed_ledger) {
    const ahead = cp && coverage > cp.last_committed_ledger ? " (ahead of the checkpoint)" : "";
    log.info("resume", `catalog holds ${start}-${coverage}${ahead}`);
  }
  log.info(
    "copier",
    `${coverage >= start || cp ? "continuing" : "starting"} from ledger ${work[0].start}`,
  );
  run.progress.begin(work.reduce((n, r) => n + r.end - r.start + 1, 0));

  const result: CopyResult = {
    committed: [],
    adopted: [],
    interrupted: false,
    stats: emptyStats(),
  };
  const t0 = performance.now();
  // Up to `concurrency` partitions are built at once, each by a build worker (lib/build_pool.ts);
  // they are committed here strictly in ledger order, so the catalog only ever grows contiguously
  // from the run's start.
  const meta = { bronzeVersion: opts.versionLabel, eraId: opts.era, network: opts.network };
  const onAbort = () => pool.stop();
  signal.addEventListener("abort", onAbort);
  if (signal.aborted) pool.stop();
  const inFlight: Promise<Built | null>[] = [];
  let next = 0;
  const launch = () => {
    while (inFlight.length < opts.concurrency && next < work.length && !pool.stopped) {
      const range = work[next++];
      const path = join(run.tmpDir, `part-${Deno.pid}-${range.start}-${range.end}.parquet`);
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
      if (claim.lost) throw claim.lost;
      if (built.chainBreaks) {
        log.warn(
          "partition",
          `ledgers ${built.range.start}-${built.range.end}: ${built.chainBreaks} break(s) in the previous-ledger-hash chain`,
        );
      }
      try {
        await commitPartition(run, built, result);
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
    run.progress.end();
    result.stats.seconds = (performance.now() - t0) / 1000;
  }
  // An interrupt that came after the last build finished stopped nothing.
  const last = result.committed.at(-1);
  result.interrupted = signal.aborted && !(last && last.end === work[work.length - 1].end);
  if (!result.interrupted) log.info("copier", "complete");
  return result;
}

async function loadCheckpoint(run: Run): Promise<Checkpoint | null> {
  try {
    const cp = await run.checkpoint.load();
    checkIdentity(cp, {
      copier_id: run.opts.copierId,
      network: run.opts.network,
      era_id: run.opts.era,
      version_label: run.opts.versionLabel,
    }, run.checkpoint.location);
    run.log.info("resume", `checkpoint found: last_committed=${cp.last_committed_ledger}`);
    return cp;
  } catch (err) {
    if (err instanceof ErrNoCheckpoint) return null;
    throw err;
  }
}

/** Partition files in storage within [start, end] (the catalog may lack some after a crash). */
async function storedRanges(run: Run, start: number, end: number): Promise<Range[]> {
  const out: Range[] = [];
  for await (const obj of run.storage.list(datasetPrefix(run.dataset))) {
    const r = rangeOfKey(obj.key);
    if (r && r.start >= start && r.end <= end) out.push(r);
  }
  return out;
}

/**
 * Steps 2-5 of the commit protocol, in this order and no other:
 *   2. publish the file only if absent (adopt an identical one, refuse a different one);
 *   3. write _manifest.json;
 *   4. ONE catalog transaction: lineage row + quality rows. This is the commit point;
 *   5. save the checkpoint; a failure here is loud but does not fail the partition.
 * A crash between any two steps leaves state the next run completes: a stored file without a
 * lineage row is adopted (its bytes are re-derived and compared), never duplicated or lost.
 */
async function commitPartition(run: Run, built: Built, result: CopyResult): Promise<void> {
  const { range } = built;
  const key = partitionKey(run.dataset, range);
  const checksum = `sha256:${built.sha256}`;
  const stats = result.stats;
  let t = performance.now();
  const lap = () => {
    const now = performance.now();
    const s = (now - t) / 1000;
    t = now;
    return s;
  };

  const published = await publishPartition(run.storage, key, built.path, built.sha256);
  if (published === "adopted") {
    run.log.info(
      "storage",
      `adopted ${objectUrl(run.storage, key)}: already stored with the same sha256`,
    );
    result.adopted.push(range);
  }
  await failpoint("after-publish");
  stats.publishSeconds += lap();

  await writeManifest(run.storage, manifestKey(run.dataset, range), {
    partition: {
      start: range.start,
      end: range.end,
      table: TABLE,
      file: key.slice(key.lastIndexOf("/") + 1),
    },
    table: { checksum, rows: range.end - range.start + 1, bytes: built.bytes },
    producer: { version: PRODUCER, git_sha: gitSha() },
    created_at: new Date().toISOString(),
  });
  await failpoint("after-manifest");
  stats.manifestSeconds += lap();

  const backfill = !run.backfillRecorded && range.end < run.highest;
  await run.writer.recordPartition({
    datasetId: run.dataset.id,
    ledgerStart: range.start,
    ledgerEnd: range.end,
    rowCount: range.end - range.start + 1,
    byteSize: built.bytes,
    checksum,
    storagePath: key,
    storageUri: objectUrl(run.storage, key),
    firstPreviousLedgerHash: built.firstPreviousLedgerHash,
    lastLedgerHash: built.lastLedgerHash,
    producerVersion: PRODUCER,
    producerGitSha: gitSha(),
    sourceType: run.lake.type,
    sourceLocation: run.lake.url,
    quality: built.quality,
    change: backfill
      ? {
        type: "backfill",
        description:
          `copier ${run.opts.copierId} filled ledgers from ${range.start} behind the highest recorded ledger ${run.highest}`,
      }
      : undefined,
  });
  if (backfill) run.backfillRecorded = true;
  insertHeld(run.held, range);
  result.committed.push(range);
  run.log.info("partition", `committed range ${range.start}-${range.end}`, {
    checksum,
    bytes: built.bytes,
  });
  await failpoint("after-catalog");
  stats.catalogSeconds += lap();

  const last = coveredThrough(run.held, range.end);
  try {
    await run.checkpoint.save({
      copier_id: run.opts.copierId,
      network: run.opts.network,
      era_id: run.opts.era,
      version_label: run.opts.versionLabel,
      last_committed_ledger: last,
      last_committed_partition: { start: range.start, end: range.end, checksum },
      updated_at: new Date().toISOString(),
    });
    run.log.info("checkpoint", `saved: last_committed=${last}`);
  } catch (err) {
    run.log.warn(
      "checkpoint",
      `save to ${run.checkpoint.location} failed (the partition is committed; the catalog is the truth): ${
        (err as Error).message
      }`,
    );
  }
  await failpoint("after-checkpoint");
  stats.checkpointSeconds += lap();
  stats.partitions++;
  stats.ledgers += range.end - range.start + 1;
  stats.xdrBytes += built.quality.xdr_bytes;
  stats.buildSeconds += built.seconds;
}

function insertHeld(held: Range[], r: Range): void {
  let i = held.findIndex((h) => h.start > r.start);
  if (i === -1) i = held.length;
  held.splice(i, 0, r);
}

/**
 * The last ledger of the contiguous run of held ranges that includes `ledger`. Every work item
 * before this one is committed (commits are in order), so this never overstates what the catalog
 * holds from the run's start.
 */
function coveredThrough(held: readonly Range[], ledger: number): number {
  let last = ledger;
  for (const h of held) {
    if (h.start <= last + 1 && h.end > last) last = h.end;
  }
  return last;
}

/** Temp files of copiers that died (SIGKILL, power loss): their pid no longer runs. */
async function removeStaleTempFiles(tmpDir: string): Promise<void> {
  for (const name of await readdir(tmpDir).catch(() => [] as string[])) {
    const pid = Number(/^part-(\d+)-/.exec(name)?.[1]);
    if (pid && pid !== Deno.pid && !processAlive(pid)) {
      await rm(join(tmpDir, name), { force: true });
    }
  }
}
