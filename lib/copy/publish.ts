/**
 * Publication of partitions: step 2 and 3 of the commit protocol. A partition file is created only
 * if absent; an object already there is adopted when its bytes hash to ours and refused otherwise.
 * Nothing here ever overwrites or deletes a stored object.
 */
import { createHash } from "node:crypto";
import { BronzeError } from "../errors.ts";
import type { ObjectStore } from "../blob/store.ts";
import { objectUrl } from "../blob/keys.ts";

export class StoredPartitionMismatchError extends BronzeError {
  constructor(readonly url: string, readonly stored: string, readonly produced: string) {
    super(
      `stored partition ${url} differs from what this run produces ` +
        `(stored sha256:${stored}, produced sha256:${produced}); refusing to overwrite it`,
    );
  }
}

/**
 * sha256 (hex) and size of a stored object, streamed: partition files can be gigabytes. With
 * `copyTo`, the bytes are also written to that new local file on the way (verify reads it back).
 */
export async function hashObject(
  store: ObjectStore,
  key: string,
  copyTo: string | null = null,
): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  const file = copyTo ? await Deno.open(copyTo, { write: true, createNew: true }) : null;
  try {
    for await (const chunk of await store.getStream(key)) {
      hash.update(chunk);
      bytes += chunk.length;
      if (file) {
        let written = 0;
        while (written < chunk.length) written += await file.write(chunk.subarray(written));
      }
    }
  } finally {
    file?.close();
  }
  return { sha256: hash.digest("hex"), bytes };
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

export interface Manifest {
  partition: { start: number; end: number; table: string; file: string };
  table: { checksum: string; rows: number; bytes: number };
  producer: { version: string; git_sha: string | null };
  created_at: string;
}

/**
 * Writes `_manifest.json` beside the partition if absent. A manifest already there (from the
 * run that first published the file) must describe the same checksum; it is kept as it is.
 */
export async function writeManifest(
  store: ObjectStore,
  key: string,
  manifest: Manifest,
): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n");
  if (await store.putIfAbsent(key, bytes) === "created") return;
  let existing: Manifest;
  try {
    existing = JSON.parse(new TextDecoder().decode(await store.get(key)));
  } catch (err) {
    throw new BronzeError(
      `manifest ${objectUrl(store, key)} is not valid JSON (${(err as Error).message})`,
    );
  }
  if (existing?.table?.checksum !== manifest.table.checksum) {
    throw new BronzeError(
      `manifest ${objectUrl(store, key)} records checksum ${existing?.table?.checksum}, ` +
        `but the partition beside it is ${manifest.table.checksum}`,
    );
  }
}
