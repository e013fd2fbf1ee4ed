/**
 * Publication of partitions: steps 2 and 3 of the commit protocol. A partition file is created only
 * if absent; an object already there is adopted when its bytes hash to ours and refused otherwise.
 * Nothing here ever overwrites or deletes a stored object.
 */
import { BronzeError } from "../runtime/errors.ts";
import { hashObject, type ObjectStore, objectUrl } from "../blob/mod.ts";
import {
  encodeManifest,
  type Manifest,
  parseManifest,
  type StoredManifest,
} from "../table/manifest.ts";

export class StoredPartitionMismatchError extends BronzeError {
  constructor(readonly url: string, readonly stored: string, readonly produced: string) {
    super(
      `stored partition ${url} differs from what this run produces ` +
        `(stored sha256:${stored}, produced sha256:${produced}); refusing to overwrite it`,
    );
  }
}

/**
 * Publishes a local file at `key` unless an object is there already. Returns "created", or
 * "adopted" when the stored object has the same sha256 (a previous run published it and died
 * before its catalog commit).
 */
export async function publishPartition(
  store: ObjectStore,
  key: string,
  localFile: string,
  sha256: string,
): Promise<"created" | "adopted"> {
  // The HEAD first is for S3-compatible stores that ignore If-None-Match (s3rver, some older
  // gateways): there a conditional PUT would silently replace different bytes. The conditional
  // create still settles a race between two writers where it is enforced.
  if (await store.head(key) === null) {
    if (await store.putIfAbsent(key, { file: localFile }) === "created") return "created";
  }
  const stored = await hashObject(store, key);
  if (stored.sha256 !== sha256) {
    throw new StoredPartitionMismatchError(objectUrl(store, key), stored.sha256, sha256);
  }
  return "adopted";
}

/**
 * Writes `_manifest.json` beside the partition if absent. A manifest already there (from the
 * run that first published the file) must describe the same checksum; it is kept as it is.
 * Returns the manifest that is in storage now: `manifest`, or the one kept.
 */
export async function writeManifest(
  store: ObjectStore,
  key: string,
  manifest: Manifest,
): Promise<StoredManifest> {
  if (await store.putIfAbsent(key, encodeManifest(manifest)) === "created") return manifest;
  const existing = parseManifest(await store.get(key), objectUrl(store, key));
  if (existing?.table?.checksum !== manifest.table.checksum) {
    throw new BronzeError(
      `manifest ${objectUrl(store, key)} records checksum ${existing?.table?.checksum}, ` +
        `but the partition beside it is ${manifest.table.checksum}`,
    );
  }
  return existing;
}
