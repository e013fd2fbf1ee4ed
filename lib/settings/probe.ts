/**
 * Probes of local paths, run with the other settings checks before any catalog, lake or build
 * work: a bad path is one line naming the setting, the path and the OS's reason, not a crash
 * deep inside a run. Each returns the problem, or undefined when the path will do.
 */
import { dirname, join, resolve } from "node:path";
import type { ObjectUrl, StoreUrl } from "../blob/url.ts";
import type { SourceUrl } from "../source/url.ts";

/** What a probe is given: a path (--state-dir) or a parsed URL. */
export type Located = string | StoreUrl | ObjectUrl | SourceUrl;

/** Checks a setting's value before any work: the problem, or undefined when it will do. */
export type Probe = (value: Located) => string | undefined;

/** The probe of the local path a value names: nothing to check in a bucket or an RPC node. */
export const onDisk = (probe: (path: string) => string | undefined): Probe => (value) => {
  const path = localPath(value);
  return path === null ? undefined : probe(path);
};

/** The local path a value names, or null for a bucket, an object in one, or an RPC node. */
export function localPath(value: Located): string | null {
  if (typeof value === "string") return value;
  if ("local" in value) return value.local;
  return value.scheme === "file" ? value.path : null;
}

/** The OS's reason, without the operation and path Deno appends (we name the path ourselves). */
function reason(err: unknown): string {
  return String((err as Error)?.message ?? err).replace(/: [a-z]+ '.*'$/, "").replace(
    / \(os error \d+\)$/,
    "",
  );
}

/**
 * A directory that exists or can be made, and where a file can be written, checked without
 * making anything (a refused run leaves nothing behind): the nearest existing ancestor must be a
 * directory that takes a probe file.
 */
export function writableDir(path: string): string | undefined {
  const problem = _dirProblem(path);
  return problem && `${path}: ${problem}`;
}

/** A file whose directory exists or can be made, writable; the file itself not a directory. */
export function writableFile(path: string): string | undefined {
  try {
    if (Deno.statSync(path).isDirectory) return `${path}: is a directory, not a file`;
  } catch { /* absent: it will be created */ }
  const dir = dirname(path);
  const problem = _dirProblem(dir);
  if (problem === "not a directory") return `${path}: ${dir} is not a directory`;
  return problem && `${path}: ${problem.replace(" the directory", ` its directory ${dir}`)}`;
}

function _dirProblem(path: string): string | undefined {
  const target = resolve(path);
  let at = target;
  let info: Deno.FileInfo;
  for (;;) {
    try {
      info = Deno.statSync(at);
      break;
    } catch (err) {
      const absent = err instanceof Deno.errors.NotFound ||
        err instanceof Deno.errors.NotADirectory;
      if (!absent || dirname(at) === at) return reason(err);
      at = dirname(at);
    }
  }
  if (!info.isDirectory) {
    return at === target
      ? "not a directory"
      : `cannot create the directory: ${at} is not a directory`;
  }
  const probe = join(at, `.bronze-probe-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  try {
    Deno.writeFileSync(probe, new Uint8Array(0), { createNew: true });
    Deno.removeSync(probe);
  } catch (err) {
    return at === target
      ? `cannot write in the directory: ${reason(err)}`
      : `cannot create the directory: cannot write in ${at}: ${reason(err)}`;
  }
  return undefined;
}

/** A directory that exists. */
export function existingDir(path: string): string | undefined {
  try {
    if (!Deno.statSync(path).isDirectory) return `${path}: not a directory`;
  } catch (err) {
    return `${path}: ${reason(err)}`;
  }
  return undefined;
}

/** A Galexie lake on local disk: a directory holding `.config.json`. */
export function lakeDir(path: string): string | undefined {
  const problem = existingDir(path);
  if (problem) return `${problem} (expected a Galexie data lake)`;
  try {
    Deno.statSync(join(path, ".config.json"));
  } catch {
    return `${path}: not a Galexie data lake (no .config.json in it)`;
  }
  return undefined;
}
