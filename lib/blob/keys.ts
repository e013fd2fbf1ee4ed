/** Key and URL helpers shared by every ObjectStore backend. */
import { BronzeError, inArea } from "../runtime/errors.ts";

/**
 * Joins key parts with '/', dropping empty parts and stray slashes at the joins, so
 * `joinKey("a/", "/b", "", "c")` is "a/b/c". Slashes inside a part are kept.
 */
export function joinKey(...parts: string[]): string {
  return parts.map((p) => p.replace(/^\/+|\/+$/g, "")).filter((p) => p !== "").join("/");
}

/**
 * Rejects keys that could escape the store's root or alias another key: the file backend maps
 * keys to paths, so "..", "." and empty segments must never reach it, and the cloud backends
 * refuse them too so a key means the same object everywhere.
 */
export function checkKey(storeUrl: string, key: string): string {
  if (
    key === "" || key.startsWith("/") || key.includes("\\") || key.includes("\0") ||
    key.split("/").some((s) => s === "" || s === "." || s === "..")
  ) {
    throw new BronzeError(
      `invalid object key ${
        JSON.stringify(key)
      } in ${storeUrl}: keys are relative, '/'-separated, ` +
        `with no empty, "." or ".." segments`,
    );
  }
  return key;
}

/** A list prefix may be empty or end in '/' or mid-name, but must not contain bad segments. */
export function checkPrefix(storeUrl: string, prefix: string): string {
  if (prefix !== "") checkKey(storeUrl, prefix.endsWith("/") ? prefix + "x" : prefix);
  return prefix;
}

/** The printable URL of `key` in a store: its root URL and the key, joined by one '/'. */
export function objectUrl(store: { readonly url: string }, key: string): string {
  return `${store.url.replace(/\/+$/, "")}/${key}`;
}

/**
 * Wraps a backend failure into one user-facing line naming the object, keeping the original as
 * `cause`. Our own errors (bad key, not found...) already say what they mean and pass through.
 */
export function storeError(op: string, url: string, e: unknown): BronzeError {
  if (e instanceof BronzeError) return inArea(e, "storage");
  const err = e as {
    name?: string;
    message?: string;
    code?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  // An answer without a body (HEAD, a proxy's error page) leaves the SDK only the status to say.
  const status = err?.$metadata?.httpStatusCode;
  const what = err?.name === "Unknown" && status !== undefined
    ? `HTTP ${status}`
    : [err?.name === "Error" ? undefined : err?.name, err?.code, err?.message]
      .filter((x) => x !== undefined && x !== "").join(": ");
  const wrapped = inArea(new BronzeError(`${op} ${url} failed: ${what || String(e)}`), "storage");
  (wrapped as { cause?: unknown }).cause = e;
  return wrapped;
}
