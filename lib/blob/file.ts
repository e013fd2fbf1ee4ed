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
 */
import { dirname, join, resolve } from "node:path";
import { BronzeError, fsError } from "../runtime/errors.ts";
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

const TEMP_NAME = /^\..+\.tmp-[0-9a-f]{16}$/;

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
      throw notFound(e, path);
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
      throw notFound(e, path);
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
      throw notFound(e, path);
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
    const walker = {
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

interface Walker {
  temp: boolean;
  /** Keys up to this one are left out (a listing going on from there). */
  after?: string;
  /** The resolved root, when links out of it are left out; null: follow every link. */
  root: string | null;
  skipped?: (key: string, why: string) => void;
}

function outsideWhy(target: string): string {
  return `a symbolic link out of the storage root (to ${target}): left alone`;
}

/**
 * Objects under `dir` (whose key prefix is `keyPrefix`) in lexicographic key order: the temp files
 * when `w.temp`, all other files otherwise.
 */
async function* walk(
  w: Walker,
  dir: string,
  keyPrefix: string,
  namePrefix = "",
): AsyncIterable<ObjectInfo> {
  const entries: { name: string; sortKey: string; isDir: boolean; info?: Deno.FileInfo }[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.name.startsWith(namePrefix)) continue;
      if (!e.isDirectory && TEMP_NAME.test(e.name) !== w.temp) continue;
      const path = join(dir, e.name);
      const key = keyPrefix + e.name;
      // A folder's keys all start with "name/": skip it whole when they all come before `after`.
      if (w.after !== undefined && !e.isDirectory && !e.isSymlink && key <= w.after) continue;
      let isDir = e.isDirectory;
      let info: Deno.FileInfo | undefined;
      if (e.isSymlink || e.isFile) {
        try {
          if (e.isSymlink && w.root !== null) {
            const target = Deno.realPathSync(path);
            if (!within(target, w.root)) {
              w.skipped?.(key, outsideWhy(target));
              continue;
            }
          }
          info = await Deno.stat(path);
        } catch (err) {
          if (err instanceof Deno.errors.NotFound) continue; // removed since readDir (or dangling)
          throw err;
        }
        isDir = info.isDirectory;
      }
      if (w.after !== undefined && isDir && key + "/\uffff" < w.after) continue;
      // A folder sorts as "name/" so that "a-b" < "a/x" < "a0", as the flat keys do.
      entries.push({ name: e.name, sortKey: isDir ? e.name + "/" : e.name, isDir, info });
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return;
    throw fsError(e, { path: dir });
  }
  entries.sort((a, b) => a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0);
  for (const e of entries) {
    const key = keyPrefix + e.name;
    if (e.isDir) yield* walk(w, join(dir, e.name), key + "/");
    else if (e.info?.isFile && (w.after === undefined || key > w.after)) {
      yield objectInfo(key, e.info, join(dir, e.name));
    }
  }
}

/**
 * `path` with every link resolved: the real path of its deepest existing ancestor, with the rest
 * (not made yet) appended.
 */
function resolveExisting(path: string): string {
  const rest: string[] = [];
  for (let at = path;;) {
    try {
      return join(Deno.realPathSync(at), ...rest);
    } catch (e) {
      const parent = dirname(at);
      const absent = e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory;
      if (!absent || parent === at) return path;
      rest.unshift(at.slice(parent.length).replace(/^\//, ""));
      at = parent;
    }
  }
}

function within(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith("/") ? root : root + "/");
}

/**
 * Writes `data` to a fresh temp file next to `path`, fsyncs it, runs `install` (which links or
 * renames it into place), then removes whatever is left of the temp file and fsyncs the folder.
 */
async function withTemp<T>(
  path: string,
  data: Uint8Array | { file: string },
  install: (temp: string, version: string) => Promise<T>,
): Promise<T> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  const temp = join(dir, `.${path.slice(dir.length + 1)}.tmp-${randomHex()}`);
  try {
    if (data instanceof Uint8Array) {
      await Deno.writeFile(temp, data, { createNew: true, mode: 0o644 });
    } else {
      // A second name for the caller's file where the filesystem allows (zero-copy; the fsync
      // below then makes the caller's bytes durable), else a kernel-side copy. Never in memory.
      await Deno.link(data.file, temp).catch(() => Deno.copyFile(data.file, temp));
    }
    const file = await Deno.open(temp, { read: true, write: true });
    let version: string;
    try {
      await file.sync();
      version = versionOf(await file.stat()); // rename and link keep the inode, hence the version
    } finally {
      file.close();
    }
    const result = await install(temp, version);
    await syncDir(dir);
    return result;
  } finally {
    await Deno.remove(temp).catch(() => {}); // after link, or on error; gone already after rename
  }
}

/** put-if-absent by link(2) of a local file; null when linking is impossible here (EXDEV...). */
async function linkIfAbsent(source: string, path: string): Promise<"created" | "exists" | null> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  const file = await Deno.open(source, { read: true });
  try {
    await file.sync(); // its bytes are durable before any name points at them
  } finally {
    file.close();
  }
  try {
    await Deno.link(source, path);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return "exists";
    return null; // another filesystem, or one without hard links: copy instead
  }
  await syncDir(dir);
  return "created";
}

/**
 * Runs `fn` with the object at `path` locked (flock, exclusive), passing it the stat of the
 * locked inode, which is the one `path` names for as long as `fn` runs (provided every writer
 * takes this lock). Passes null, without a lock, when there is no object at `path`.
 */
async function withObjectLock<T>(
  path: string,
  fn: (current: Deno.FileInfo | null) => Promise<T>,
): Promise<T> {
  for (;;) {
    let file: Deno.FsFile;
    try {
      // Read-write where possible: over NFS an exclusive lock needs a file open for writing.
      file = await Deno.open(path, { read: true, write: true }).catch((e) => {
        if (e instanceof Deno.errors.PermissionDenied) return Deno.open(path, { read: true });
        throw e;
      });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.IsADirectory) {
        return await fn(null);
      }
      throw e;
    }
    try {
      await file.lock(true);
      const locked = await file.stat();
      if (!locked.isFile) return await fn(null);
      // A writer that held the lock may have renamed a new inode into place, or removed the
      // object, while we waited: then lock whatever is there now.
      const now = await Deno.stat(path).catch((e) => {
        if (e instanceof Deno.errors.NotFound) return null;
        throw e;
      });
      if (now?.ino === locked.ino && now?.dev === locked.dev) return await fn(locked);
    } finally {
      file.close(); // releases the lock
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await Deno.open(dir, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

/**
 * Every write installs a new inode, which cannot share its number with the inode it replaces
 * while that one is still linked, so the inode number alone changes on each write; size and
 * mtime guard against a number reused later. Not ctime: link, unlink and rename change it.
 */
function versionOf(info: Deno.FileInfo): string {
  return `${info.ino ?? 0}-${info.size}-${info.mtime?.getTime() ?? 0}`;
}

function objectInfo(key: string, info: Deno.FileInfo, path: string): ObjectInfo {
  return { key, size: info.size, version: versionOf(info), modified: modifiedOf(info, path) };
}

/**
 * When the object was published: mtime is when its bytes were last written, which for a file
 * built earlier and then linked into place predates the publish; link and rename move ctime, and
 * nothing can set ctime back. So the later of the two (ctime is in whole seconds in Deno). No
 * time at all is an error: an object of unknown age must not look old to gc.
 */
function modifiedOf(info: Deno.FileInfo, path: string): Date {
  if (info.mtime === null) throw new BronzeError(`${path}: the filesystem reports no mtime`);
  return new Date(Math.max(info.mtime.getTime(), info.ctime?.getTime() ?? 0));
}

function notFound(e: unknown, path: string): unknown {
  return e instanceof Deno.errors.NotFound ? new NotFoundError(path) : e;
}

function randomHex(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}
