/**
 * The listing step of `catalog rebuild`: the storage root listed once (under the longest prefix the
 * filters fix), its objects grouped into partition folders of the `ledgers_lcm_raw` datasets the
 * filters select.
 */
import type { Logger } from "../runtime/log.ts";
import { type ObjectInfo, type ObjectStore, objectUrl } from "../blob/mod.ts";
import type { DatasetFilter } from "../metadata/coverage.ts";
import { type DatasetIdentity, identityKey } from "../table/dataset.ts";
import type { Range } from "../table/grid.ts";
import { DOMAIN, TABLE } from "../table/schema.ts";

export const MANIFEST = "_manifest.json";

/** A partition folder holding a manifest: what is checked, and recorded when sound. */
export interface Manifested {
  ds: DatasetIdentity;
  range: Range;
  /** The folder's key, ending in "/". */
  dir: string;
  manifest: ObjectInfo;
  /** The partition file; null when the folder holds none. */
  file: ObjectInfo | null;
}

/** A partition file without a manifest: never committed (a copy of its range adopts it). */
export interface Unmanifested {
  ds: DatasetIdentity;
  range: Range;
  file: ObjectInfo;
}

export interface Listing {
  partitions: Manifested[];
  unmanifested: Unmanifested[];
  /** Every dataset either holds, by identityKey. */
  datasets: Map<string, DatasetIdentity>;
}

/** The key of a stored partition object: its dataset's folders, its range, its name. */
const OBJECT_KEY = /^([^/]+)\/([^/]+)\/([^/]+)\/([^/]+)\/range=(\d+)-(\d+)\/([^/]+)$/;

export async function listPartitions(
  store: ObjectStore,
  filter: DatasetFilter,
  log: Logger,
): Promise<Listing> {
  const folders = new Map<string, Omit<Manifested, "manifest"> & { manifest: ObjectInfo | null }>();
  const datasets = new Map<string, DatasetIdentity>();
  if (filter.dataset !== undefined && filter.dataset !== TABLE) {
    return { partitions: [], unmanifested: [], datasets };
  }
  const fixed = [filter.network, filter.eraId, filter.version];
  const prefix = fixed.findIndex((f) => f === undefined) === -1
    ? `${fixed.join("/")}/${TABLE}/`
    : fixed.slice(0, fixed.indexOf(undefined)).map((f) => `${f}/`).join("");
  log.info("rebuild", `listing ${prefix ? objectUrl(store, prefix) : store.url}`);
  // The storage root is a boundary: what leads out of it through a link is named, not followed.
  const skipped = (key: string, why: string) =>
    log.warn("rebuild", `${objectUrl(store, key)}: ${why}`);
  for await (const obj of store.list(prefix, { skipped })) {
    const m = OBJECT_KEY.exec(obj.key);
    if (!m) continue;
    const [, network, eraId, version, table, a, b, name] = m;
    if (table !== TABLE) continue;
    if (filter.network !== undefined && network !== filter.network) continue;
    if (filter.eraId !== undefined && eraId !== filter.eraId) continue;
    if (filter.version !== undefined && version !== filter.version) continue;
    const range = { start: Number(a), end: Number(b) };
    if (range.start < 1 || range.end < range.start) continue; // no partition's folder
    const isManifest = name === MANIFEST;
    if (!isManifest && name !== `part-${a}-${b}.parquet`) continue;
    const ds: DatasetIdentity = { domain: DOMAIN, dataset: TABLE, network, eraId, version };
    const dir = obj.key.slice(0, obj.key.length - name.length);
    let folder = folders.get(dir);
    if (!folder) folders.set(dir, folder = { ds, range, dir, manifest: null, file: null });
    if (isManifest) folder.manifest = obj;
    else folder.file = obj;
    datasets.set(identityKey(ds), ds);
  }
  const partitions: Manifested[] = [];
  const unmanifested: Unmanifested[] = [];
  for (const { manifest, file, ...f } of folders.values()) {
    if (manifest) partitions.push({ ...f, manifest, file });
    else if (file) unmanifested.push({ ds: f.ds, range: f.range, file });
  }
  return { partitions, unmanifested, datasets };
}
