/**
 * Store URLs, parsed in one place: a bare path or file:// (local disk), gs://bucket[/prefix] or
 * s3://bucket[/prefix]. Settings parse each URL once and hand the parsed value on; openStore and
 * the checkpoint take it as it is. A URL that comes from elsewhere (a lineage row's storage_uri)
 * is parsed here too.
 */
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BronzeError, EXIT } from "../runtime/errors.ts";

/** A folder on this machine. */
export interface FileUrl {
  scheme: "file";
  /** The local path, as given (a file:// URL's path, decoded). */
  path: string;
  /** How the store names itself: the file:// URL as given, else the absolute path. */
  url: string;
}

/** A bucket, and a prefix inside it. */
export interface BucketUrl {
  scheme: "gs" | "s3";
  bucket: string;
  /** "" or ends in '/'. */
  prefix: string;
  /** How the store names itself: `scheme://bucket[/prefix]`, no user:password, no trailing '/'. */
  url: string;
}

export type StoreUrl = FileUrl | BucketUrl;

/** One object (the checkpoint file): the store of its folder, and its name there. */
export interface ObjectUrl {
  root: StoreUrl;
  name: string;
  /** Its path on this machine, or null in a bucket. */
  local: string | null;
}

/** A URL that names no store: the reason, one line, to follow the flag it came from. */
export interface UrlProblem {
  problem: string;
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/is;

/** The scheme of `url` in lower case (`rpc+https`, `s3`...), or null for a bare path. */
export function schemeOf(url: string): string | null {
  return SCHEME.exec(url)?.[1]?.toLowerCase() ?? null;
}

export function parseStoreUrl(raw: string): StoreUrl | UrlProblem {
  if (!raw.trim()) return { problem: "must not be empty" };
  const m = SCHEME.exec(raw);
  // Absolute, so a storage_uri recorded from `--storage data` still finds the file from another
  // working directory.
  if (!m) return { scheme: "file", path: raw, url: resolve(raw) };
  const scheme = m[1].toLowerCase();
  if (scheme === "file") {
    if (!m[2]) return { problem: `names no path: "${raw}"` };
    try {
      return { scheme: "file", path: fileURLToPath(raw), url: raw };
    } catch {
      return { problem: `names no path on this machine: "${raw}" (expected file:///path)` };
    }
  }
  if (scheme !== "gs" && scheme !== "s3") {
    return {
      problem: `must be a local path, file://, gs://bucket[/prefix] or s3://bucket[/prefix], got "${
        redactUrl(raw)
      }"`,
    };
  }
  const shown = redactUrl(raw);
  const [bucket, ...rest] = shown.slice(scheme.length + 3).split("/");
  if (!bucket) {
    return { problem: `names no bucket: "${shown}" (expected ${scheme}://bucket[/prefix])` };
  }
  const prefix = rest.filter((p) => p !== "").join("/");
  return {
    scheme,
    bucket,
    prefix: prefix === "" ? "" : prefix + "/",
    url: shown.replace(/\/+$/, ""),
  };
}

/**
 * A URL naming one object (the checkpoint file): `gs://b/state/ck.json` is `ck.json` in the
 * store `gs://b/state`; `./state/ck.json` is `ck.json` in `./state`.
 */
export function parseObjectUrl(raw: string): ObjectUrl | UrlProblem {
  const whole = parseStoreUrl(raw);
  if ("problem" in whole) return whole;
  if (raw.endsWith("/")) return { problem: `must name a file, not a folder: "${raw}"` };
  if (whole.scheme !== "file" && whole.prefix === "") {
    return {
      problem:
        `must name an object, e.g. ${whole.scheme}://${whole.bucket}/state/checkpoint.json, got "${
          redactUrl(raw)
        }"`,
    };
  }
  const cut = raw.lastIndexOf("/");
  const folder = cut === -1 ? "." : raw.slice(0, cut);
  const root = parseStoreUrl(folder === "" || folder === "file://" ? folder + "/" : folder);
  if ("problem" in root) return root;
  const local = whole.scheme === "file" ? whole.path : null;
  return { root, name: raw.slice(cut + 1), local };
}

/**
 * `url` parsed, if it is not already (a URL from elsewhere than the settings: a lineage row's);
 * one naming no store is a configuration error naming `what`.
 */
export function toStoreUrl(url: string | StoreUrl, what = "storage"): StoreUrl {
  if (typeof url !== "string") return url;
  const parsed = parseStoreUrl(url);
  if ("problem" in parsed) throw new BronzeError(`${what} ${parsed.problem}`, EXIT.usage);
  return parsed;
}

/** Like toStoreUrl, for a URL naming one object. */
export function toObjectUrl(url: string | ObjectUrl, what = "checkpoint location"): ObjectUrl {
  if (typeof url !== "string") return url;
  const parsed = parseObjectUrl(url);
  if ("problem" in parsed) throw new BronzeError(`${what} ${parsed.problem}`, EXIT.usage);
  return parsed;
}

/** Removes user:password from a URL so it can be printed; non-URLs (bare paths) pass through. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1");
}

/**
 * A storage root as the catalog records it with a dataset, and as DuckDB reads it: a local root as
 * its absolute path (`./data` and `file:///abs/data` both `/abs/data`), a bucket as
 * `gs://bucket[/prefix]` or `s3://bucket[/prefix]`, never with a trailing '/'. Equal roots give
 * equal strings, so a flag and a dataset's root compare as strings.
 */
export function storageRootOf(url: string | StoreUrl): string {
  const u = toStoreUrl(url);
  return u.scheme === "file" ? resolve(u.path) : u.url;
}

/** How a store URL was given: a local path as typed, a URL as it names itself. */
export function storeShown(url: StoreUrl): string {
  return url.scheme === "file" ? url.path : url.url;
}

/**
 * Whether store `inner` is `outer` itself, or lies inside it (null when neither), where they
 * really are: paths after resolving (`./lake` is `lake/`, a symbolic link is its target), buckets
 * by scheme, bucket and prefix. A path under a file is inside nothing.
 */
export function storeWithin(inner: StoreUrl, outer: StoreUrl): "same" | "inside" | null {
  let a: string, b: string;
  if (inner.scheme === "file" && outer.scheme === "file") {
    a = _realPath(inner.path);
    b = _realPath(outer.path);
    // A file holds no folder (the source's own probe says it is no lake).
    if (_isFile(b)) return null;
  } else if (inner.scheme !== "file" && inner.scheme === outer.scheme) {
    if (inner.bucket !== outer.bucket) return null;
    a = `/${inner.prefix}`.replace(/\/$/, "");
    b = `/${outer.prefix}`.replace(/\/$/, "");
  } else return null;
  if (a === b) return "same";
  return a.startsWith(b === "/" ? b : `${b}/`) ? "inside" : null;
}

function _isFile(path: string): boolean {
  try {
    return !Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/**
 * An absolute path with every symbolic link resolved, for a path that may not exist yet (storage
 * is created on first use): its nearest existing ancestor resolved, the rest appended.
 */
function _realPath(path: string): string {
  const rest: string[] = [];
  let at = resolve(path);
  for (;;) {
    try {
      return join(Deno.realPathSync(at), ...rest.reverse());
    } catch {
      const up = dirname(at);
      if (up === at) return resolve(path);
      rest.push(basename(at));
      at = up;
    }
  }
}
