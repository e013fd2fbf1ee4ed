/**
 * `copy()`: one run over a ledger range, in named steps like node-pg-migrate's runner: open what
 * the run needs, register the dataset, claim the range, find where to resume, plan (pure), then
 * build partitions in workers and commit them in ledger order through the Committer
 * (commit.ts). The claim is released and everything opened is closed in `finally` (an
 * AsyncDisposableStack), however the run ends.
 */
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { BronzeError, EXIT, fsError } from "../runtime/errors.ts";
import { retryPolicy, runRetrier } from "../runtime/retry.ts";
import type { Logger } from "../runtime/log.ts";
import { processAlive } from "../runtime/process.ts";
import { Progress } from "../runtime/progress.ts";
import { openStore, storageRootOf, storeShown, type StoreUrl, storeWithin } from "../blob/mod.ts";
import { checkpointManager } from "../checkpoint/checkpoint.ts";
import { ClaimSession } from "../metadata/claims.ts";
import { islands } from "../metadata/coverage.ts";
import { openReadyCatalog } from "../metadata/migrate.ts";
import { DatasetRetiredError, retirementOf } from "../metadata/retire.ts";
import { CatalogWriter } from "../metadata/writer.ts";
import { datasetLabel } from "../table/dataset.ts";
import { isRpcUrl, openSource, type SourceUrl } from "../source/mod.ts";
import { LAST_LEDGER, type Range } from "../table/grid.ts";
import { DOMAIN, SCHEMA_HASH, TABLE, TABLE_DESCRIPTION } from "../table/schema.ts";
import { Committer, type Dataset } from "./commit.ts";
import { planWork } from "./plan.ts";
import { buildAndCommit, finish, RunState } from "./loop.ts";
import { follow } from "./follow.ts";
import type { CopierMetrics } from "../metrics/mod.ts";
import { BuildPool } from "./pool.ts";
import { announce, findResumePoint } from "./resume.ts";
import { copyFleet } from "./fleet.ts";
import type {
  CatalogWatcher,
  CopyOptions,
  CopyResult,
  Deps,
  PlacedCopyOptions,
} from "./context.ts";
import { placementOf } from "./placement.ts";

export type { CatalogWatcher, CopyOptions, CopyResult, CopyStats } from "./context.ts";

export async function copy(
  opts: CopyOptions,
  log: Logger,
  signal: AbortSignal = new AbortController().signal,
  metrics?: CopierMetrics,
  watcher?: CatalogWatcher,
): Promise<CopyResult> {
  await using stack = new AsyncDisposableStack();
  const { deps, placed } = await open(opts, log, stack, metrics);
  opts = placed;
  if (watcher) {
    watcher.opened(deps.catalog);
    stack.defer(() => watcher.closing());
  }
  const dataset = await register(deps.writer, placed);
  const range = await resolveRange(opts, deps, dataset, log);
  const claims = await ClaimSession.open(deps.catalog, dataset, opts.copierId, {
    say: (line) => log.info("catalog", line),
  });
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
    onCheckpointError: () => metrics?.error("checkpoint"),
  });
  const context = { opts: placed, deps, dataset, committer, claims, log, metrics };
  if (opts.fleet) {
    const fleet = { start: range.start, end: range.end, size: placed.partitionSize };
    return await copyFleet(context, fleet, signal);
  }
  const claim = await claims.claimRange(range.start, range.end);
  const point = await findResumePoint({ ...deps, dataset, copierId: opts.copierId, log }, range);
  const run = { ...context, state: new RunState(point), claim };
  // Known from the start, from the catalog: start - 1 when it holds nothing from the start on.
  metrics?.resumed(point.coverage);
  if (opts.follow) return await follow(run, range, point, signal);
  const work = planWork(range, placed.partitionSize, point.held, point.stored);
  if (work.length === 0) {
    log.info(
      "copier",
      `range ${range.start}-${range.end} is already complete (${dataset.label}); nothing to do`,
    );
    return run.state.result;
  }
  announce(log, point, range, work[0]);
  const outcome = await buildAndCommit(run, work, signal);
  return finish(run, outcome === "interrupted", signal.aborted);
}

async function open(
  opts: CopyOptions,
  log: Logger,
  stack: AsyncDisposableStack,
  metrics?: CopierMetrics,
): Promise<{ deps: Deps; placed: PlacedCopyOptions }> {
  const retry = opts.retry ?? runRetrier(opts.retryFor, log);
  const source = await openSource(opts.source, opts.network, retry);
  stack.defer(async () => await source.close?.());
  const checkpoint = checkpointManager(opts.checkpoint, retry);
  const progress = new Progress(log, opts.progressInterval);
  const pool = new BuildPool(
    opts.concurrency,
    opts.source,
    opts.network,
    (n, b) => {
      progress.add(n, b);
      metrics?.built();
    },
    retry,
  );
  stack.defer(() => pool.close());
  pool.warm(); // the workers load their modules while the catalog opens
  const catalog = await openReadyCatalog({
    dsn: opts.catalog,
    stateDir: opts.stateDir,
    log: (m) => log.info("catalog", m),
    holdsLong: true,
    // A PostgreSQL restart or failover is ridden through for --catalog-retry-for.
    retry: retry.with(boundOf(retryPolicy(opts.catalogRetryFor))),
  });
  stack.defer(() => catalog.close());
  // An existing dataset's storage root and grid are its own; the flags may only repeat them.
  const writer = new CatalogWriter(catalog);
  const placed = { ...opts, ...placementOf(await writer.findDataset(identityOf(opts)), opts) };
  // A --storage inside the lake is refused with the settings; the dataset's recorded root, or the
  // default for a new one, only now.
  if (opts.storage === undefined) refuseStorageInLake(placed.storage, opts.source);
  const storage = openStore(placed.storage, { area: "storage", retry });
  stack.defer(async () => await storage.close?.());
  const tmpDir = join(opts.stateDir, "tmp");
  await mkdir(tmpDir, { recursive: true }).catch((e) => {
    throw fsError(e, { path: tmpDir, writing: true, dir: tmpDir });
  });
  return {
    deps: { source, storage, checkpoint, catalog, writer, pool, progress, tmpDir, retry },
    placed,
  };
}

/** The bound of a policy and the backoff's ceiling it implies (retry.ts: a tenth of it). */
function boundOf({ retryForMs, maxDelayMs }: { retryForMs: number; maxDelayMs: number }) {
  return { retryForMs, maxDelayMs };
}

/** Partitions written into the lake read from: a configuration error naming both. */
function refuseStorageInLake(storage: StoreUrl, source: SourceUrl): void {
  if (isRpcUrl(source)) return;
  const where = storeWithin(storage, source);
  if (!where) return;
  throw new BronzeError(
    `storage ${storeShown(storage)} (the dataset's, as no --storage is given) ${
      where === "same" ? "is" : "is inside"
    } the source lake, --source ${
      storeShown(source)
    }: partitions would be written into the lake; give --storage outside it`,
    EXIT.usage,
  );
}

function identityOf(opts: CopyOptions) {
  return {
    domain: DOMAIN,
    dataset: TABLE,
    version: opts.versionLabel,
    eraId: opts.era,
    network: opts.network,
  };
}

async function register(writer: CatalogWriter, opts: PlacedCopyOptions): Promise<Dataset> {
  const info = identityOf(opts);
  const id = await writer.ensureDataset({
    ...info,
    schemaHash: SCHEMA_HASH,
    description: TABLE_DESCRIPTION,
    storageRoot: storageRootOf(opts.storage),
    partitionSize: opts.partitionSize,
  }, opts.copierId);
  // Retired (`bronze retire`): its files are bound for gc; nothing new goes in.
  const retired = await retirementOf(writer.catalog, id);
  if (retired) throw new DatasetRetiredError(datasetLabel(info), retired);
  return {
    network: opts.network,
    eraId: opts.era,
    version: opts.versionLabel,
    id,
    label: datasetLabel(info),
  };
}

/**
 * The run's range: --end latest is the source's newest ledger now; a follower without --end runs
 * to the last ledger there can be; --fill-gaps without a range means between the dataset's lowest
 * and highest recorded ledger.
 */
async function resolveRange(
  opts: CopyOptions,
  deps: Deps,
  dataset: Dataset,
  log: Logger,
): Promise<Range> {
  let end = opts.end;
  if (end === "latest") {
    end = await deps.source.head();
    log.info("copier", `--end latest: the newest ledger of ${deps.source.url} is ${end}`);
  }
  if (opts.follow && end === undefined) end = LAST_LEDGER;
  if (opts.start !== undefined && end !== undefined) {
    if (end < opts.start) {
      throw new BronzeError(
        `--end latest is ${end}, before --start ${opts.start}: nothing to copy`,
        2,
      );
    }
    return { start: opts.start, end };
  }
  const held = await islands(deps.catalog, dataset.id);
  if (!held.length) {
    throw new BronzeError(
      "--fill-gaps without --start/--end needs a dataset with recorded partitions; this one has none",
      2,
    );
  }
  return { start: opts.start ?? held[0].start, end: end ?? held[held.length - 1].end };
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
