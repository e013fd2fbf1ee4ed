/**
 * How FileStore changes a name, durably and atomically (the why is at the top of file.ts): new
 * bytes go to a hidden temp file beside the name, are fsynced, and are installed by link(2) (a
 * create, which fails instead of replacing) or rename(2) (a replacement); the folder is fsynced
 * after. A compare-and-swap holds flock(2) on the object's inode from the compare to the change.
 */
import { dirname, join } from "node:path";
import { versionOf } from "./_file_info.ts";

/** A temp file's name: `.<name>.tmp-<16 hex>`, so listings can leave them out and gc find them. */
export const TEMP_NAME = /^\..+\.tmp-[0-9a-f]{16}$/;

/**
 * Writes `data` to a fresh temp file next to `path`, fsyncs it, runs `install` (which links or
 * renames it into place), then removes whatever is left of the temp file and fsyncs the folder.
 */
export async function withTemp<T>(
  path: string,
  data: Uint8Array | { file: string },
  install: (temp: string, version: string) => Promise<T>,
): Promise<T> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  const temp = join(dir, `.${path.slice(dir.length + 1)}.tmp-${_randomHex()}`);
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
export async function linkIfAbsent(
  source: string,
  path: string,
): Promise<"created" | "exists" | null> {
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
export async function withObjectLock<T>(
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

/** fsync of a folder: a name just created, replaced or removed in it survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  const d = await Deno.open(dir, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

function _randomHex(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}
