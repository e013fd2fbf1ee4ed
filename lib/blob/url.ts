/**
 * Store URLs, parsed in one place: a bare path or file:// (local disk), gs://bucket[/prefix] or
 * s3://bucket[/prefix]. Settings validation, openStore and the checkpoint all read URLs here.
 */

export type StoreUrl =
  | { scheme: "file"; path: string }
  /** prefix is "" or ends in '/'. */
  | { scheme: "gs" | "s3"; bucket: string; prefix: string };

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
  if (!m) return { scheme: "file", path: raw };
  const scheme = m[1].toLowerCase();
  if (scheme === "file") {
    return m[2] ? { scheme: "file", path: m[2] } : { problem: `names no path: "${raw}"` };
  }
  if (scheme !== "gs" && scheme !== "s3") {
    return {
      problem: `must be a local path, file://, gs://bucket[/prefix] or s3://bucket[/prefix], got "${
        redactUrl(raw)
      }"`,
    };
  }
  const [bucket, ...rest] = m[2].split("/");
  if (!bucket) {
    return { problem: `names no bucket: "${raw}" (expected ${scheme}://bucket[/prefix])` };
  }
  const prefix = rest.filter((p) => p !== "").join("/");
  return { scheme, bucket, prefix: prefix === "" ? "" : prefix + "/" };
}

/**
 * Splits a URL naming one object (the checkpoint file) into the store URL of its folder and its
 * name: `gs://b/state/ck.json` → `gs://b/state` and `ck.json`; `./state/ck.json` → `./state`.
 */
export function splitObjectUrl(raw: string): { root: string; name: string } | UrlProblem {
  const parsed = parseStoreUrl(raw);
  if ("problem" in parsed) return parsed;
  if (raw.endsWith("/")) return { problem: `must name a file, not a folder: "${raw}"` };
  const cut = raw.lastIndexOf("/");
  if (parsed.scheme !== "file" && parsed.prefix === "") {
    return {
      problem:
        `must name an object, e.g. ${parsed.scheme}://${parsed.bucket}/state/checkpoint.json, got "${
          redactUrl(raw)
        }"`,
    };
  }
  if (cut === -1) return { root: ".", name: raw };
  const root = raw.slice(0, cut);
  return { root: root === "" || root === "file://" ? root + "/" : root, name: raw.slice(cut + 1) };
}

/** Removes user:password from a URL so it can be printed; non-URLs (bare paths) pass through. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1");
}
