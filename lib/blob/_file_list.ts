/**
 * FileStore's listing: a folder tree walked as an object store lists, in lexicographic key order
 * and going on after a given key, leaving out temp files (or listing only them, for gc), and in a
 * confined store the links that lead out of the root. Apart from the store because ordering
 * folders among flat keys and resuming mid-tree is a concern of its own.
 */
import { join } from "node:path";
import { fsError } from "../runtime/errors.ts";
import { outsideWhy, within } from "./_file_confine.ts";
import { objectInfo } from "./_file_info.ts";
import { TEMP_NAME } from "./_file_write.ts";
import type { ObjectInfo } from "./store.ts";

export interface Walker {
  /** The temp files of killed writers (listTemp) rather than the objects (list). */
  temp: boolean;
  /** Keys up to this one are left out (a listing going on from there). */
  after?: string;
  /** The resolved root, when links out of it are left out; null: follow every link. */
  root: string | null;
  skipped?: (key: string, why: string) => void;
}

/**
 * Objects under `dir` (whose key prefix is `keyPrefix`) in lexicographic key order: the temp files
 * when `w.temp`, all other files otherwise.
 */
export async function* walk(
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
