/**
 * `bronze gc`: lists, and with `apply` deletes, what no lineage row references (temp files of
 * killed writers, the Parquet files and manifests of partitions that were never committed) and
 * the files of datasets retired longer ago than the grace period (`olderThan`).
 *
 * Why it never deletes a file a lineage row points at, or will:
 *
 * 1. An orphan is not dead for good: a copier that resumes its range adopts an identical stored
 *    file (commit protocol, step 2) and then commits a lineage row pointing at it (step 4).
 *    Deleting the file between that adoption and that commit would leave a lineage row pointing
 *    at nothing. Age alone cannot tell: the orphan may be a week old and the copier adopting it
 *    now.
 * 2. Every copier claims its range (or cell) in `_meta_copier_claims` before it touches storage,
 *    in a transaction that holds the dataset's sweep lock (claims.ts), and keeps the claim until
 *    its commits are done; a claim dies with the copier's catalog session. A commit also checks,
 *    in its own transaction, that the claim's row is still there (writer.ts), so a copier whose
 *    claim was swept commits nothing.
 * 3. So gc, per batch, in ONE transaction holding that same lock (metadata/gc.ts
 *    withSweepLock): sweeps the dataset's dead claims exactly as a claimer does (after which
 *    their copiers, even if still running somewhere, can commit nothing), then for each
 *    candidate re-checks that no lineage row records it and no remaining claim overlaps its
 *    range, and only then deletes it, with the version it listed (`delete(key, version)`: an
 *    object rewritten since is left alone). While the lock is held no copier can claim, so
 *    what the checks saw stays true until the transaction ends, after the deletions: a copier
 *    claims either before (gc sees its claim and keeps the file) or after (the file is gone
 *    when it looks, and it builds and publishes it anew). Lineage rows are never deleted, and a
 *    committed row outlives its claim (a claim is released after its commits), so a file is
 *    always covered by a claim or a lineage row from its adoption on.
 * 4. The lock is held for a bounded batch (BATCH_OBJECTS objects or BATCH_SECONDS of deleting,
 *    whichever comes first, plus the delete in flight), so a claimer waits about that long at
 *    most. Before each delete one round trip on the locking connection proves the session, and so
 *    the lock, still lives; a session that died stops gc. The session is exempt from
 *    idle_in_transaction_session_timeout, so a slow delete (a store retrying) cannot outlive
 *    the lock by the server's choice. What remains: the catalog link itself failing (the server
 *    drops a vanished client after about a minute) while a delete is stalled, and that delete
 *    landing after a copier has since claimed the range and adopted the file.
 * 5. The grace period comes on top, for what the claims do not describe: nothing younger than
 *    `olderThan` is deleted, of any kind (a running copier's just-published file survives even
 *    without its claim). Temp files (`.<name>.tmp-<hex>`, file store only; cloud uploads are
 *    invisible until complete) have no range: a writer's temp file lives for one upload, so they
 *    go by age alone.
 * 6. Only datasets the catalog registers are looked at, only under their own prefix, and only
 *    files gc recognises (a partition's Parquet file and manifest, temp files); for a dataset
 *    whose lineage records its files under another storage root, nothing is touched in this
 *    one (a catalog of another lake, or gc pointed at the wrong storage): to an unrelated catalog
 *    every file would look like an orphan.
 *
 * A retired dataset (`bronze retire`) retired longer ago than `olderThan` loses every object
 * under its prefix, lineage-referenced or not (that is what retiring is for; its lineage rows
 * stay), still under the lock, still sparing what a live claim covers (a copy that was running
 * when it was retired) and anything younger than the grace period.
 *
 * The copier's local build files (`<state-dir>/tmp/part-<pid>-…`) are not gc's: each `copy`
 * removes those of copiers whose pid is gone when it starts (copy/run.ts).
 */
import { pathToFileURL } from "node:url";
import {
  type ObjectInfo,
  type ObjectStore,
  objectUrl,
  openStore,
  PreconditionFailedError,
  type StoreUrl,
} from "../blob/mod.ts";
import { FileStore } from "../blob/file.ts";
import { BronzeError } from "../runtime/errors.ts";
import type { Catalog } from "../metadata/catalog.ts";
import { type DatasetRef, findDatasets } from "../metadata/coverage.ts";
import {
  catalogNow,
  lookWithoutLock,
  type Reference,
  referencedRanges,
  type StandingClaim,
  storageAnchor,
  supersededRanges,
  withSweepLock,
} from "../metadata/gc.ts";
import { openReadyCatalog } from "../metadata/migrate.ts";
import type { Network } from "../source/network.ts";
import type { Range } from "../table/grid.ts";
import { datasetPrefix, manifestKey, partitionKey } from "../table/layout.ts";
import { TABLE } from "../table/schema.ts";
import { formatSpan } from "../runtime/format.ts";
import { datasetFilterOf } from "../settings/mod.ts";

/** The most objects deleted under one hold of a dataset's sweep lock. */
export const BATCH_OBJECTS = 64;
/** ...and the longest that hold lasts, deletes included (a claimer waits at most this). */
export const BATCH_SECONDS = 2;
/** Stored partitions checked against lineage per catalog round trip in the first pass. */
const FIRST_PASS = 1000;

export interface GcOptions {
  catalog?: string;
  stateDir: string;
  storage: StoreUrl;
  networkFilter?: Network;
  eraFilter?: string;
  versionFilter?: string;
  datasetFilter?: string;
  /** Grace period, seconds. */
  olderThan: number;
  apply: boolean;
}

/** What an object is to gc. */
export type GcWhat = "temp" | "orphan" | "manifest" | "retired" | "superseded";

/**
 * "delete": a dry run would delete it; "deleted", "kept" (for `reason`) and "failed" (`reason`
 * says why) with `apply`.
 */
export type GcOutcome = "delete" | "deleted" | "kept" | "failed";

export interface GcObject {
  what: GcWhat;
  dataset: string;
  key: string;
  /** The object's URL, for people. */
  url: string;
  size: number;
  modified: Date;
  /** Seconds since `modified`, on this machine's clock. */
  age: number;
  /** Why it is garbage. */
  why: string;
  outcome: GcOutcome;
  /** Why it was kept, or how deleting it failed. */
  reason: string | null;
}

export interface GcResult {
  catalog: string;
  storage: string;
  apply: boolean;
  olderThan: number;
  /** Datasets looked at (those matching the filters). */
  datasets: number;
  objects: GcObject[];
  /** One line per dataset worth a word: retired, or left alone (and why). */
  notes: string[];
}

export interface GcHooks {
  /** This machine's clock (tests move it). */
  now?: () => Date;
  /** Told of each deletion as it happens (the command prints it to stderr). */
  onDeleted?: (o: GcObject) => void;
  /** Catalog progress notes. */
  log?: (line: string) => void;
}

/** A listed object that may be garbage: what it is, and the lineage it would have. */
interface Candidate {
  object: GcObject;
  info: ObjectInfo;
  /** The partition it belongs to (null: none recognised). */
  range: Range | null;
  /** The reference to look for (null: lineage does not matter, e.g. retired or temp). */
  ref: Reference | null;
}

export async function gc(opts: GcOptions, hooks: GcHooks = {}): Promise<GcResult> {
  const now = hooks.now ?? (() => new Date());
  const store = openStore(opts.storage);
  try {
    const catalog = await openReadyCatalog({
      dsn: opts.catalog,
      mustExist: true,
      stateDir: opts.stateDir,
      log: hooks.log,
    });
    try {
      return await collect(catalog, store, opts, now, hooks);
    } finally {
      await catalog.close();
    }
  } finally {
    await store.close?.();
  }
}

async function collect(
  catalog: Catalog,
  store: ObjectStore,
  opts: GcOptions,
  now: () => Date,
  hooks: GcHooks,
): Promise<GcResult> {
  const result: GcResult = {
    catalog: catalog.label,
    storage: store.url,
    apply: opts.apply,
    olderThan: opts.olderThan,
    datasets: 0,
    objects: [],
    notes: [],
  };
  const datasets = (await findDatasets(catalog, datasetFilterOf(opts))).filter((d) =>
    d.domain === "bronze" && d.dataset === TABLE
  );
  const catalogTime = await catalogNow(catalog);
  const grace = formatSpan(opts.olderThan);
  for (const ds of datasets) {
    result.datasets++;
    const anchor = await storageAnchor(catalog, ds.id, rootSpellings(store));
    if (anchor.recorded && !anchor.here) {
      result.notes.push(
        `${ds.label}: left alone: its lineage records its files elsewhere (e.g. ${anchor.example}), ` +
          `none under ${store.url}`,
      );
      continue;
    }
    let retired: string | null = null;
    if (ds.retiredAt) {
      const ago = Math.max(0, (catalogTime.getTime() - ds.retiredAt.getTime()) / 1000);
      const when = `retired ${formatSpan(ago)} ago (${ds.retiredReason})`;
      if (ago >= opts.olderThan) {
        retired = `dataset ${when}`;
        result.notes.push(`${ds.label}: ${when}: its files under ${datasetPrefix(ds)} go`);
      } else {
        result.notes.push(
          `${ds.label}: ${when}: its files go once it has been retired for ${grace}`,
        );
      }
    }
    const candidates = await listCandidates(store, ds, retired, catalog, now(), catalogTime);
    const due: Candidate[] = [];
    for (const c of candidates) {
      result.objects.push(c.object);
      if (c.object.age < opts.olderThan) {
        keep(c, `younger than ${grace} (grace period)`);
      } else {
        due.push(c);
      }
    }
    // Temp files have no range and no lineage: age decides, no lock needed.
    const temps = due.filter((c) => c.object.what === "temp");
    const ranged = due.filter((c) => c.object.what !== "temp");
    if (!opts.apply) {
      temps.forEach((c) => c.object.outcome = "delete");
      await judgeDryRun(catalog, ds, ranged, opts.olderThan);
      continue;
    }
    for (const c of temps) await remove(store, c, hooks);
    await deleteUnderLock(catalog, store, ds, ranged, hooks, opts.olderThan);
  }
  return result;
}

/**
 * The dataset's objects that may be garbage: its temp files, and either every object under its
 * prefix (`retired`: why) or the partitions (file and manifest) no current lineage row records
 * (a superseded one ages from its compaction).
 */
async function listCandidates(
  store: ObjectStore,
  ds: DatasetRef,
  retired: string | null,
  catalog: Catalog,
  now: Date,
  catalogTime: Date,
): Promise<Candidate[]> {
  const prefix = datasetPrefix(ds);
  const out: Candidate[] = [];
  const candidate = (
    info: ObjectInfo,
    what: GcWhat,
    why: string,
    range: Range | null,
    ref: Reference | null,
  ): Candidate => ({
    info,
    range,
    ref,
    object: {
      what,
      dataset: ds.label,
      key: info.key,
      url: objectUrl(store, info.key),
      size: info.size,
      modified: info.modified,
      age: Math.max(0, (now.getTime() - info.modified.getTime()) / 1000),
      why,
      outcome: "kept",
      reason: null,
    },
  });
  if (store.listTemp) {
    for await (const info of store.listTemp(prefix)) {
      out.push(candidate(info, "temp", "temp file of a write that never finished", null, null));
    }
  }
  let batch: { info: ObjectInfo; part: Part }[] = [];
  const firstPass = async () => {
    const ranges = batch.map((b) => b.part.range);
    const referenced = await referencedRanges(catalog, ds.id, ranges);
    const superseded = await supersededRanges(catalog, ds.id, ranges);
    for (const { info, part } of batch) {
      const id = `${part.range.start}-${part.range.end}`;
      if (referenced.has(id)) continue;
      const by = superseded.get(id);
      if (by) {
        // Compacted away: its grace period runs from when it was superseded (on the catalog's
        // clock, which stamped it), not from the file.
        const c = candidate(
          info,
          "superseded",
          `superseded by lineage row ${by.by} (a compaction) at ${by.at.toISOString()}`,
          part.range,
          { ...part.range, path: partitionKey(ds, part.range) },
        );
        c.object.age = Math.max(0, (catalogTime.getTime() - by.at.getTime()) / 1000);
        out.push(c);
        continue;
      }
      out.push(candidate(
        info,
        part.manifest ? "manifest" : "orphan",
        part.manifest
          ? "manifest of a partition no lineage row records"
          : "no lineage row records it (a copy that died before its catalog commit)",
        part.range,
        { ...part.range, path: partitionKey(ds, part.range) },
      ));
    }
    batch = [];
  };
  for await (const info of store.list(prefix)) {
    const part = partOf(ds, info.key);
    if (retired !== null) {
      out.push(candidate(info, "retired", retired, part?.range ?? null, null));
      continue;
    }
    if (!part) continue; // not gc's to judge
    batch.push({ info, part });
    if (batch.length >= FIRST_PASS) await firstPass();
  }
  if (batch.length) await firstPass();
  return out.sort((a, b) => a.object.key < b.object.key ? -1 : a.object.key > b.object.key ? 1 : 0);
}

interface Part {
  range: Range;
  manifest: boolean;
}

/** A partition's Parquet file or manifest under the dataset's prefix, exactly as the copier names them. */
function partOf(ds: DatasetRef, key: string): Part | null {
  const m = /^range=(\d+)-(\d+)\/[^/]+$/.exec(key.slice(datasetPrefix(ds).length));
  if (!m || !key.startsWith(datasetPrefix(ds))) return null;
  const range = { start: Number(m[1]), end: Number(m[2]) };
  if (key === partitionKey(ds, range)) return { range, manifest: false };
  if (key === manifestKey(ds, range)) return { range, manifest: true };
  return null;
}

/** The dry run's verdicts: what the catalog says now, without a lock and without writing. */
async function judgeDryRun(
  catalog: Catalog,
  ds: DatasetRef,
  due: Candidate[],
  graceSeconds: number,
): Promise<void> {
  if (!due.length) return;
  const refs = due.filter((c) => c.ref).map((c) => c.ref!);
  const seen = await lookWithoutLock(catalog, ds.id, refs, graceSeconds);
  let i = 0;
  for (const c of due) {
    const lineageId = c.ref ? seen.lineage[i++] : null;
    const why = keptBecause(c, lineageId, seen.claims);
    if (why) keep(c, why);
    else c.object.outcome = "delete";
  }
}

/** Deletes `due` in batches, each in one transaction holding the dataset's sweep lock. */
async function deleteUnderLock(
  catalog: Catalog,
  store: ObjectStore,
  ds: DatasetRef,
  due: Candidate[],
  hooks: GcHooks,
  graceSeconds: number,
): Promise<void> {
  const queue = [...due];
  while (queue.length) {
    await withSweepLock(catalog, ds, async (locked) => {
      const batch = queue.splice(0, BATCH_OBJECTS);
      const started = performance.now();
      const claims = await locked.claims();
      const refs = batch.filter((c) => c.ref).map((c) => c.ref!);
      const lineage = await locked.lineage(refs, graceSeconds);
      let i = 0;
      const ids = batch.map((c) => c.ref ? lineage[i++] : null);
      for (let k = 0; k < batch.length; k++) {
        if ((performance.now() - started) / 1000 >= BATCH_SECONDS) {
          queue.unshift(...batch.slice(k)); // the rest in the next batch, under a fresh look
          return;
        }
        const c = batch[k];
        const why = keptBecause(c, ids[k], claims);
        if (why) {
          keep(c, why);
          continue;
        }
        await locked.stillLocked();
        await remove(store, c, hooks);
      }
    });
  }
}

/** Why `c` must stay: lineage records it, or a standing claim covers its range (null: neither). */
function keptBecause(
  c: Candidate,
  lineageId: number | null,
  claims: StandingClaim[],
): string | null {
  if (lineageId !== null) return `recorded by lineage row ${lineageId}`;
  if (c.range) {
    const r = c.range;
    const claim = claims.find((h) => h.start <= r.end && h.end >= r.start);
    if (claim) {
      return `inside the claim of copier ${claim.copierId} (host ${claim.host}, pid ${claim.pid}) ` +
        `on ${claim.start}-${claim.end}: it may adopt it`;
    }
  }
  return null;
}

/** Deletes one object at the version listed; one rewritten since is kept. */
async function remove(store: ObjectStore, c: Candidate, hooks: GcHooks): Promise<void> {
  try {
    await store.delete(c.info.key, c.info.version);
    c.object.outcome = "deleted";
    hooks.onDeleted?.(c.object);
  } catch (err) {
    if (err instanceof PreconditionFailedError) {
      keep(c, "changed since it was listed");
    } else {
      // A store's own error (the file store passes the OS's through): this object failed; the
      // others are still tried, and the command exits 1.
      c.object.outcome = "failed";
      c.object.reason = err instanceof BronzeError
        ? err.message
        : `${(err as Error)?.name ?? "Error"}: ${(err as Error)?.message ?? err}`;
    }
  }
}

function keep(c: Candidate, reason: string): void {
  c.object.outcome = "kept";
  c.object.reason = reason;
}

/** The store's root as a lineage row's storage_uri may spell it (a path or its file:// URL). */
function rootSpellings(store: ObjectStore): string[] {
  const url = store.url.replace(/\/+$/, "");
  if (!(store instanceof FileStore)) return [url];
  return [...new Set([url, store.root, pathToFileURL(store.root).href])];
}
