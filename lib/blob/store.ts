/**
 * One object-store abstraction over local paths / file://, gs:// and s3://. The lake reader,
 * partition storage and the checkpoint all go through it so cloud code is written once.
 *
 * Keys are relative, '/'-separated, never starting with '/'. They are resolved under the store's
 * root (the path or bucket prefix of the URL the store was opened with).
 */
import { BronzeError } from "../runtime/errors.ts";

export interface ObjectInfo {
  key: string;
  size: number;
  /**
   * Opaque version token for conditional writes and deletes (file: inode+size+mtime, fresh on
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

/**
 * Per call: the signal the retrying layer (retrying.ts) aborts when an attempt's deadline passes,
 * so a backend abandons a stalled request. Callers above that layer pass nothing.
 */
export interface CallOptions {
  signal?: AbortSignal;
}

/** A streamed read of one version, from a byte on: how a cut stream resumes where it stopped. */
export interface ReadOptions extends CallOptions {
  /** Only this version (else PreconditionFailedError). */
  version?: string;
  /** From this byte on (with `version`). */
  offset?: number;
}

export interface ListOptions extends CallOptions {
  /** Only keys after this one: a listing cut midway goes on from its last key. */
  startAfter?: string;
  /**
   * Told of each entry left out because it leads out of the store's root (a symbolic link to a
   * folder or file elsewhere): the file store never lists, reads, writes or deletes through one.
   */
  skipped?: (key: string, why: string) => void;
}

export interface ObjectStore {
  /** The store's URL with any credentials removed; safe to print. */
  readonly url: string;
  /** Whole object. Throws NotFoundError when absent. */
  get(key: string, call?: CallOptions): Promise<Uint8Array>;
  /**
   * A local store's synchronous get(): for many objects read one after another (a lake's
   * ledgers, in a build worker), cheaper than get(), which hands each read to the runtime's I/O
   * threads and back (a third of a 2 KB ledger's cost). It blocks the calling thread, and the
   * bytes are the store's reused buffer: valid until its next getSync().
   */
  getSync?(key: string): Uint8Array;
  /** Whole object and its version token, or null when absent. */
  getVersioned(key: string, call?: CallOptions): Promise<VersionedObject | null>;
  /**
   * Streamed read for large objects. Throws NotFoundError when absent. Through openStore the
   * stream rides out a connection cut midway (it resumes at the byte it stopped, from the same
   * version): its consumer sees every byte once, or an error.
   */
  getStream(key: string, read?: ReadOptions): Promise<ReadableStream<Uint8Array>>;
  head(key: string, call?: CallOptions): Promise<ObjectInfo | null>;
  /**
   * Atomically create `key` with `data` (bytes, or the contents of a local file streamed from
   * `{ file: path }`) only if it does not exist. Returns "created", or "exists" when an object was
   * already there (its bytes are NOT compared or replaced; the caller decides). A local store may
   * hard-link `{ file: path }` into place: the caller must not modify that file afterwards.
   */
  putIfAbsent(
    key: string,
    data: Uint8Array | { file: string },
    call?: CallOptions,
  ): Promise<"created" | "exists">;
  /**
   * Compare-and-swap: replaces `key` with `data` (bytes, or a local file streamed from
   * `{ file: path }`, never read whole into memory) only if its current version equals
   * `ifVersion`, or creates it only if absent when `ifVersion` is null. Readers see the old
   * object or the new one, never a mix. Returns the new version. Throws PreconditionFailedError
   * when the object is absent, or at another version, or present when `ifVersion` is null.
   * Serves the checkpoint and repair's replacement of a corrupt partition. As with putIfAbsent,
   * a local store may hard-link `{ file: path }` into place: do not modify that file afterwards.
   */
  putIfVersion(
    key: string,
    data: Uint8Array | { file: string },
    ifVersion: string | null,
    call?: CallOptions,
  ): Promise<string>;
  /**
   * Deletes `key`; with `ifVersion`, only if that is still its version (else
   * PreconditionFailedError, and the object stays). Idempotent: an absent object (never there,
   * or deleted meanwhile) is success, with or without `ifVersion`, since what the caller wanted
   * is true. Empty folders are left in place. (s3: the precondition holds only where the service
   * honours If-Match on DeleteObject, as AWS does; see s3.ts.)
   */
  delete(key: string, ifVersion?: string, call?: CallOptions): Promise<void>;
  /** Every object whose key starts with `prefix`, in lexicographic key order. */
  list(prefix: string, opts?: ListOptions): AsyncIterable<ObjectInfo>;
  /**
   * In-progress or abandoned temp files (a writer killed mid-write leaves them) whose own key
   * starts with `prefix`, in key order; list() never shows them. Only stores that write through
   * temp files have this (the file store); cloud uploads are never visible until complete.
   * Their `modified` tells their age; `delete(key, version)` removes one.
   */
  listTemp?(prefix: string, opts?: ListOptions): AsyncIterable<ObjectInfo>;
  /** Where `key` lives on this machine's disk (the file store only), for reading it in place. */
  localPath?(key: string): string;
  /** The root folder on this machine's disk (the file store only). */
  readonly localRoot?: string;
  close?(): Promise<void>;
}

/** User-facing (a BronzeError) so an unexpected miss reaches the user as one line naming the object. */
export class NotFoundError extends BronzeError {
  constructor(readonly url: string) {
    super(`object not found: ${url}`);
  }
}

/** A key whose path leads out of a file store's root, through a symbolic link: never followed. */
export class OutsideRootError extends BronzeError {
  constructor(readonly path: string, readonly target: string, readonly root: string) {
    super(
      `${path} leads out of the storage root ${root} (to ${target}, through a symbolic link): ` +
        `bronze never reads, writes or deletes through one; left alone`,
    );
  }
}

export class PreconditionFailedError extends BronzeError {
  constructor(readonly url: string) {
    super(`${url} was changed by another writer (precondition failed)`);
  }
}
