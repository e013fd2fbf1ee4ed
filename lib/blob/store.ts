/**
 * One object-store abstraction over local paths / file://, gs:// and s3://. The lake reader,
 * partition storage and the checkpoint all go through it so cloud code is written once.
 *
 * Keys are relative, '/'-separated, never starting with '/'. They are resolved under the store's
 * root (the path or bucket prefix of the URL the store was opened with).
 */
import { BronzeError } from "../errors.ts";

export interface ObjectInfo {
  key: string;
  size: number;
  /**
   * Opaque version token for conditional writes (file: inode+size+mtime, fresh on
   * every write because writes install a new inode; gs: generation; s3: ETag).
   */
  version: string;
  /**
   * When the object's current version was published, for age checks such as gc's grace period.
   * file: the later of mtime and ctime (ctime moves when a name is linked or renamed into place,
   * so a file built long ago and published now counts as new; Deno reports ctime in whole
   * seconds); s3: LastModified, in whole seconds as S3 reports it (AWS sets it when the upload
   * *started*); gs: timeCreated of the live generation (when those bytes were published;
   * `updated` also moves on metadata-only changes).
   */
  modified: Date;
}

export interface VersionedObject {
  data: Uint8Array;
  version: string;
}

export interface ObjectStore {
  /** The store's URL with any credentials removed; safe to print. */
  readonly url: string;
  /** Whole object. Throws NotFoundError when absent. */
  get(key: string): Promise<Uint8Array>;
  /** Whole object and its version token, or null when absent. */
  getVersioned(key: string): Promise<VersionedObject | null>;
  /** Streamed read for large objects. Throws NotFoundError when absent. */
  getStream(key: string): Promise<ReadableStream<Uint8Array>>;
  head(key: string): Promise<ObjectInfo | null>;
  /**
   * Atomically create `key` with `data` (bytes, or the contents of a local file streamed from
   * `{ file: path }`) only if it does not exist. Returns "created", or "exists" when an object was
   * already there (its bytes are NOT compared or replaced; the caller decides). A local store may
   * hard-link `{ file: path }` into place: the caller must not modify that file afterwards.
   */
  putIfAbsent(key: string, data: Uint8Array | { file: string }): Promise<"created" | "exists">;
  /**
   * Conditional overwrite for small mutable objects (the checkpoint): succeeds only if the current
   * version equals `ifVersion` (or the object is absent when `ifVersion` is null). Returns the new
   * version. Throws PreconditionFailedError when another writer got there first.
   */
  putIfVersion(key: string, data: Uint8Array, ifVersion: string | null): Promise<string>;
  /** Every object whose key starts with `prefix`, in lexicographic key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /**
   * In-progress or abandoned temp files (a writer killed mid-write leaves them) whose own key
   * starts with `prefix`, in key order; list() never shows them. Only stores that write through
   * temp files have this (the file store); cloud uploads are never visible until complete.
   * Their `modified` tells their age.
   */
  listTemp?(prefix: string): AsyncIterable<ObjectInfo>;
  close?(): Promise<void>;
}

/** User-facing (a BronzeError) so an unexpected miss reaches the user as one line naming the object. */
export class NotFoundError extends BronzeError {
  constructor(readonly url: string) {
    super(`object not found: ${url}`);
  }
}

export class PreconditionFailedError extends BronzeError {
  constructor(readonly url: string) {
    super(`${url} was changed by another writer (precondition failed)`);
  }
}
