/**
 * ObjectStore over a local directory (a bare path or a file:// URL).
 *
 * Every write goes to a hidden temp file in the destination folder (`.<name>.tmp-<random>`),
 * is fsynced, and is then installed atomically: by link(2) for put-if-absent (which fails instead
 * of replacing) and by rename(2) for versioned overwrites; the folder is fsynced afterwards so the
 * new name survives a power cut. Temp files are removed on every error path and skipped by list();
 * listTemp() finds those a killed writer left behind.
 *
 * Compare-and-swap (putIfVersion with a version, delete): POSIX has no "rename/unlink only if
 * the name still points at inode X", so the compare and the change are made atomic by a lock:
 * flock(2) on the object's current inode, held from the compare to the rename/unlink. Every
 * conditional operation of every FileStore (any process, any machine sharing the filesystem over
 * NFS, where the lock becomes a POSIX lock) takes it, so two of them cannot both win. The window
 * that remains: a writer that does not take the lock (a person's cp/mv/rm, another program) can
 * still replace or remove the object between our compare and our rename/unlink. Creates need no
 * lock: link(2) refuses an existing name. A crashed holder's lock dies with its process.
 *
 * A confined store (storage, the checkpoint's folder: everything but a lake) treats its root as a
 * boundary: a key whose path leads out of it through a symbolic link is never read, written or
 * deleted (OutsideRootError), and list() leaves such entries out, telling `skipped`. Links that
 * stay inside the root are followed; the root itself may be a link.
 *
 * The machine's refusals (a full disk, a folder that is not writable, too many open files) are one
 * line naming the path, exit 74 (runtime/errors.ts environmentError).
 *
 * The store is its reads and its calls; the helpers it leans on are apart, each one concern:
 * _file_write.ts (temp file, link/rename, the object lock, folder fsync), _file_list.ts (the
 * ordered walk), _file_confine.ts (where a path really leads), _file_info.ts (version, time).
 */
import { dirname, join, resolve } from "node:path";
import { BronzeError, fsError } from "../runtime/errors.ts";
import { outsideWhy, resolveExisting, within } from "./_file_confine.ts";
import { objectInfo, versionOf } from "./_file_info.ts";
import { walk, type Walker } from "./_file_list.ts";
import { linkIfAbsent, syncDir, withObjectLock, withTemp } from "./_file_write.ts";
import { checkKey, checkPrefix } from "./keys.ts";
import {
  type CallOptions,
  type ListOptions,
  NotFoundError,
  type ObjectInfo,
  type ObjectStore,
  OutsideRootError,
  PreconditionFailedError,
  type ReadOptions,
  type VersionedObject,
} from "./store.ts";

export interface FileStoreOptions {
  /** Refuse paths that lead out of the root through a symbolic link (see the top of this file). */
  confine?: boolean;
}

export class FileStore implements ObjectStore {
  readonly url: string;
  /** Absolute path of the root folder. */
  readonly root: string;
  readonly #confine: boolean;

  /**
   * The store of the folder at `path` (a local path); `url` is how it names itself, by default its
   * absolute path, so a storage_uri recorded from `--storage data` still finds the file from
   * another working directory.
   */
  constructor(path: string, url?: string, opts: FileStoreOptions = {}) {
    this.root = resolve(path);
    this.url = url ?? this.root;
    this.#confine = opts.confine ?? false;
  }

  get localRoot(): string {
    return this.root;
  }

  /** The local path of `key`; it names the object in error messages. */
  path(key: string): string {
    return join(this.root, ...checkKey(this.url, key).split("/"));
  }

  localPath(key: string): string {
    return this.path(key);
  }

  /** The path of `key`, checked to stay inside the root when the store is confined. */
  #inside(key: string): string {
    const path = this.path(key);
    if (this.#confine) {
      const target = resolveExisting(path);
      if (!within(target, resolveExisting(this.root))) {
        throw new OutsideRootError(path, target, this.root);
      }
    }
    return path;
  }

  async get(key: string, _call?: CallOptions): Promise<Uint8Array> {
    const path = this.#inside(key);
    try {
      return await Deno.readFile(path);
    } catch (e) {
      throw _notFound(e, path);
    }
  }

  #scratch = new Uint8Array(64 << 10);

  /**
   * A synchronous get() into one reused buffer: valid until this store's next getSync() (the lake
   * reader decompresses it at once). For many objects read one after another in a build worker,
   * this spares a hop through the runtime's I/O threads and a fresh buffer per object, which
   * the allocator does not give back (70 MB of a worker's memory at 1 MB ledgers).
   */
  getSync(key: string): Uint8Array {
    const path = this.#inside(key);
    try {
      const file = Deno.openSync(path);
      try {
        const size = file.statSync().size;
        if (this.#scratch.byteLength < size + 1) {
          this.#scratch = new Uint8Array(Math.max(size + 1, 2 * this.#scratch.byteLength));
        }
        let n = 0;
        // Up to one byte past the size: a file that grew since fstat is read whole or refused.
        while (n <= size) {
          const got = file.readSync(this.#scratch.subarray(n, size + 1));
          if (!got) break;
          n += got;
        }
        if (n > size) throw new BronzeError(`${path}: changed while being read`);
        return this.#scratch.subarray(0, n);
      } finally {
        file.close();
      }
    } catch (e) {
      throw _notFound(e, path);
    }
  }

  async getVersioned(key: string, _call?: CallOptions): Promise<VersionedObject | null> {
    const path = this.#inside(key);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw fsError(e, { path });
    }
    // Version and bytes from one open file, so they describe the same inode even if a writer
    // renames a new version into place meanwhile.
    try {
      const version = versionOf(await file.stat());
      const data = new Uint8Array(await new Response(file.readable).arrayBuffer());
      return { data, version };
    } catch (e) {
      try {
        file.close();
      } catch { /* already closed by the stream */ }
      throw fsError(e, { path });
    }
  }

  async getStream(key: string, read: ReadOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const path = this.#inside(key);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      throw _notFound(e, path);
    }
    try {
      // The version and the bytes from one open file: the same inode, whatever is renamed in.
      if (read.version !== undefined && versionOf(await file.stat()) !== read.version) {
        throw new PreconditionFailedError(path);
      }
      if (read.offset) await file.seek(read.offset, Deno.SeekMode.Start);
    } catch (e) {
      file.close();
      throw fsError(e, { path });
    }
    return file.readable; // closes the file when consumed or cancelled
  }

  async head(key: string, _call?: CallOptions): Promise<ObjectInfo | null> {
    const path = this.#inside(key);
    try {
      const info = await Deno.stat(path);
      return info.isFile ? objectInfo(key, info, path) : null;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw fsError(e, { path });
    }
  }

  /**
   * A `{ file }` source on the same filesystem is installed by hard-linking it into place, after an
   * fsync: atomic, zero-copy, and it fails instead of replacing. The file then *is* the object:
   * the caller must not modify it afterwards (removing its name is fine). Elsewhere (another
   * filesystem, no hard links) it is copied through a temp file like bytes are.
   */
  async putIfAbsent(
    key: string,
    data: Uint8Array | { file: string },
    _call?: CallOptions,
  ): Promise<"created" | "exists"> {
    const path = this.#inside(key);
    try {
      if (!(data instanceof Uint8Array)) {
        const linked = await linkIfAbsent(data.file, path);
        if (linked) return linked;
      }
      return await withTemp(path, data, async (temp) => {
        try {
          await Deno.link(temp, path);
        } catch (e) {
          if (e instanceof Deno.errors.AlreadyExists) return "exists";
          throw e;
        }
        return "created";
      });
    } catch (e) {
      throw fsError(e, { path, writing: true });
    }
  }

  /**
   * Create by link(2) when `ifVersion` is null; otherwise compare and rename(2) under the object's
   * lock (see the top of this file). A `{ file }` on the same filesystem is hard-linked to the temp
   * name rather than copied, so a multi-gigabyte replacement costs no copy.
   */
  async putIfVersion(
    key: string,
    data: Uint8Array | { file: string },
    ifVersion: string | null,
    _call?: CallOptions,
  ): Promise<string> {
    const path = this.#inside(key);
    return await withTemp(path, data, async (temp, version) => {
      if (ifVersion === null) {
        try {
          await Deno.link(temp, path);
        } catch (e) {
          if (e instanceof Deno.errors.AlreadyExists) throw new PreconditionFailedError(path);
          throw e;
        }
      } else {
        await withObjectLock(path, async (current) => {
          if (current === null || versionOf(current) !== ifVersion) {
            throw new PreconditionFailedError(path);
          }
          await Deno.rename(temp, path);
        });
      }
      return version;
    }).catch((e) => {
      throw fsError(e, { path, writing: true });
    });
  }

  /** unlink(2) under the object's lock, after comparing its version when one is given. */
  async delete(key: string, ifVersion?: string, _call?: CallOptions): Promise<void> {
    const path = this.#inside(key);
    try {
      const deleted = await withObjectLock(path, async (current) => {
        if (current === null) return false;
        if (ifVersion !== undefined && versionOf(current) !== ifVersion) {
          throw new PreconditionFailedError(path);
        }
        await Deno.remove(path); // the locked inode is a regular file: never removes a folder
        return true;
      });
      if (deleted) await syncDir(dirname(path));
    } catch (e) {
      throw fsError(e, { path, writing: true });
    }
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    yield* this.#walk(prefix, false, opts);
  }

  /**
   * Temp files (`<folder>/.<name>.tmp-<16 hex>`) whose own key starts with `prefix`. A writer
   * that is alive removes or renames its temp file within moments of its last write, so one whose
   * `modified` is older than a grace period was left by a killed writer. Should gc delete one a
   * live (stalled) writer still holds, that writer fails with an error; it never installs
   * partial bytes.
   */
  async *listTemp(prefix: string, opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    yield* this.#walk(prefix, true, opts);
  }

  async *#walk(prefix: string, temp: boolean, opts: ListOptions): AsyncIterable<ObjectInfo> {
    checkPrefix(this.url, prefix);
    const slash = prefix.lastIndexOf("/");
    const dirKey = prefix.slice(0, slash + 1); // "" or ends with '/'
    const dir = join(this.root, ...dirKey.split("/"));
    const walker: Walker = {
      temp,
      after: opts.startAfter,
      // Confined: a link is followed only while it stays inside the root.
      root: this.#confine ? resolveExisting(this.root) : null,
      skipped: opts.skipped,
    };
    if (walker.root !== null && dirKey !== "") {
      const target = resolveExisting(dir);
      if (!within(target, walker.root)) {
        opts.skipped?.(dirKey.slice(0, -1), outsideWhy(target));
        return;
      }
    }
    for await (const info of walk(walker, dir, dirKey, prefix.slice(slash + 1))) {
      if (info.key.startsWith(prefix)) yield info;
    }
  }
}

function _notFound(e: unknown, path: string): unknown {
  return e instanceof Deno.errors.NotFound ? new NotFoundError(path) : e;
}
