/**
 * What a local file says of the object it holds: its version and when it was published. One
 * place, because the store's reads, its compare-and-swap and its listing must all agree on them:
 * a version read by head() or list() is the one putIfVersion() and delete() compare against.
 */
import { BronzeError } from "../runtime/errors.ts";
import type { ObjectInfo } from "./store.ts";

/**
 * Every write installs a new inode, which cannot share its number with the inode it replaces
 * while that one is still linked, so the inode number alone changes on each write; size and
 * mtime guard against a number reused later. Not ctime: link, unlink and rename change it.
 */
export function versionOf(info: Deno.FileInfo): string {
  return `${info.ino ?? 0}-${info.size}-${info.mtime?.getTime() ?? 0}`;
}

export function objectInfo(key: string, info: Deno.FileInfo, path: string): ObjectInfo {
  return { key, size: info.size, version: versionOf(info), modified: _modifiedOf(info, path) };
}

/**
 * When the object was published: mtime is when its bytes were last written, which for a file
 * built earlier and then linked into place predates the publish; link and rename move ctime, and
 * nothing can set ctime back. So the later of the two (ctime is in whole seconds in Deno). No
 * time at all is an error: an object of unknown age must not look old to gc.
 */
function _modifiedOf(info: Deno.FileInfo, path: string): Date {
  if (info.mtime === null) throw new BronzeError(`${path}: the filesystem reports no mtime`);
  return new Date(Math.max(info.mtime.getTime(), info.ctime?.getTime() ?? 0));
}
