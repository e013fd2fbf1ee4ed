/**
 * The root of a confined FileStore as a boundary (file.ts): where a path really leads once every
 * symbolic link on the way is resolved, and whether that is still inside the root. Apart from the
 * store because the reads and writes (one key) and the listing (every entry of a folder) both ask.
 */
import { dirname, join } from "node:path";

/**
 * `path` with every link resolved: the real path of its deepest existing ancestor, with the rest
 * (not made yet) appended, so a key about to be created is judged by the folders it would go in.
 */
export function resolveExisting(path: string): string {
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

/** `path` is `root` or below it (both resolved). */
export function within(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith("/") ? root : root + "/");
}

/** What list() tells its `skipped` listener of an entry it leaves out. */
export function outsideWhy(target: string): string {
  return `a symbolic link out of the storage root (to ${target}): left alone`;
}
