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
 * 4. The lock is held for a bounded batch (gc_sweep.ts: BATCH_OBJECTS objects or BATCH_SECONDS
 *    of deleting, whichever comes first, plus the delete in flight), so a claimer waits about
 *    that long at most. Before each delete one round trip on the locking connection proves the
 *    session, and so the lock, still lives; a session that died stops gc. The session is exempt
 *    from idle_in_transaction_session_timeout, so a slow delete (a store retrying) cannot outlive
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
 * The storage root is a boundary: an entry that leads out of it through a symbolic link (a
 * folder or file linked to elsewhere) is never listed, read or deleted; each is named in the
 * notes, left alone.
 *
 * The copier's local build files (`<state-dir>/tmp/part-<pid>-…`) are not gc's: each `copy`
 * removes those of copiers whose pid is gone when it starts (copy/run.ts).
 */
import { pathToFileURL } from "node:url";
import { type ObjectStore, objectUrl, openStore, type StoreUrl } from "../blob/mod.ts";
import type { Catalog } from "../metadata/catalog.ts";
import { findDatasets } from "../metadata/coverage.ts";
import { catalogNow, storageAnchor } from "../metadata/gc.ts";
import { openReadyCatalog } from "../metadata/migrate.ts";
import type { Network } from "../source/network.ts";
import { datasetPrefix } from "../table/layout.ts";
import { TABLE } from "../table/schema.ts";
import { formatSpan } from "../runtime/format.ts";
import { datasetFilterOf } from "../settings/mod.ts";
import { storageOf } from "../copy/placement.ts";
import type { Logger } from "../runtime/log.ts";
import { runRetrier } from "../runtime/retry.ts";
import { type Candidate, type GcObject, listCandidates } from "./gc_list.ts";
import { deleteUnderLock, judgeDryRun, keep, remove } from "./gc_sweep.ts";

export type { GcObject, GcOutcome, GcWhat } from "./gc_list.ts";

export interface GcOptions {
  catalog?: string;
  stateDir: string;
  /** Unset: each dataset's recorded storage root (lib/copy/placement.ts). */
  storage?: StoreUrl;
  networkFilter?: Network;
  eraFilter?: string;
  versionFilter?: string;
  datasetFilter?: string;
  /** Grace period, seconds. */
  olderThan: number;
  apply: boolean;
  /** Seconds a failing store call is retried before gc stops (exit 75); default 5 minutes. */
  retryFor?: number;
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
  /** Where retry bursts are told. */
  logger?: Pick<Logger, "warn">;
}

export async function gc(opts: GcOptions, hooks: GcHooks = {}): Promise<GcResult> {
  const now = hooks.now ?? (() => new Date());
  const catalog = await openReadyCatalog({
    dsn: opts.catalog,
    mustExist: true,
    stateDir: opts.stateDir,
    log: hooks.log,
  });
  const stores = new Map<string, ObjectStore>();
  try {
    return await collect(catalog, stores, opts, now, hooks);
  } finally {
    for (const store of stores.values()) await store.close?.();
    await catalog.close();
  }
}

async function collect(
  catalog: Catalog,
  stores: Map<string, ObjectStore>,
  opts: GcOptions,
  now: () => Date,
  hooks: GcHooks,
): Promise<GcResult> {
  const datasets = (await findDatasets(catalog, datasetFilterOf(opts))).filter((d) =>
    d.domain === "bronze" && d.dataset === TABLE
  );
  // Each dataset in its own storage root; a --storage that disagrees with one refuses the run.
  const retry = runRetrier(opts.retryFor, hooks.logger);
  const storeOf = new Map<number, ObjectStore>();
  for (const ds of datasets) {
    const url = storageOf(ds, opts);
    if (!stores.has(url.url)) stores.set(url.url, openStore(url, { area: "storage", retry }));
    storeOf.set(ds.id, stores.get(url.url)!);
  }
  const result: GcResult = {
    catalog: catalog.label,
    storage: stores.size ? [...stores.keys()].join(", ") : storageOf(null, opts).url,
    apply: opts.apply,
    olderThan: opts.olderThan,
    datasets: 0,
    objects: [],
    notes: [],
  };
  const catalogTime = await catalogNow(catalog);
  const grace = formatSpan(opts.olderThan);
  for (const ds of datasets) {
    result.datasets++;
    const store = storeOf.get(ds.id)!;
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
    // Told once each, though the listing of temp files meets them too.
    const told = new Set<string>();
    const outside = (key: string, why: string) => {
      if (!told.has(key)) result.notes.push(`${ds.label}: ${objectUrl(store, key)}: ${why}`);
      told.add(key);
    };
    const candidates = await listCandidates(
      store,
      ds,
      retired,
      catalog,
      now(),
      catalogTime,
      outside,
    );
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
    for (const c of temps) await remove(store, c, hooks.onDeleted);
    await deleteUnderLock(catalog, store, ds, ranged, hooks.onDeleted, opts.olderThan);
  }
  return result;
}

/** The store's root as a lineage row's storage_uri may spell it (a path or its file:// URL). */
function rootSpellings(store: ObjectStore): string[] {
  const url = store.url.replace(/\/+$/, "");
  if (store.localRoot === undefined) return [url];
  return [...new Set([url, store.localRoot, pathToFileURL(store.localRoot).href])];
}
