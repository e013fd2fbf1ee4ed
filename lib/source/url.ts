/**
 * Source URLs, parsed in one place: a Galexie lake (a store URL: lib/blob/url.ts) or a Stellar RPC
 * node, `rpc+https://host[:port][/path]` or `rpc+http://…`. Settings parse --source once and hand
 * the parsed value on; openSource and openRpc take it as it is.
 */
import { parseStoreUrl, schemeOf, type StoreUrl, type UrlProblem } from "../blob/url.ts";
import { BronzeError, EXIT } from "../runtime/errors.ts";

/** A Stellar RPC node: where to call and how to print it, its credentials kept apart. */
export interface RpcUrl {
  scheme: "rpc+https" | "rpc+http";
  /** The URL the calls go to, without user:password but with its query (an API key, say). */
  call: string;
  /** `https://host[:port]/path`: safe to print. */
  printable: string;
  /** `Basic …` for the URL's user:password, sent as a header. */
  authorization?: string;
  /** What must never be printed: the query, and its long values (taken for keys). */
  secrets: string[];
  /** How the source names itself: `rpc+` and the printable URL. */
  url: string;
}

export type SourceUrl = StoreUrl | RpcUrl;

export function isRpcUrl(url: SourceUrl): url is RpcUrl {
  return url.scheme === "rpc+https" || url.scheme === "rpc+http";
}

export function parseSourceUrl(raw: string): SourceUrl | UrlProblem {
  const scheme = schemeOf(raw);
  if (!scheme?.startsWith("rpc+")) return parseStoreUrl(raw);
  // Never print user:password, nor a query (it may hold an API key).
  const shown = raw.replace(/^([a-z+]+:\/\/)[^/@?#]*@/i, "$1").replace(/[?#].*$/, "");
  if (scheme !== "rpc+https" && scheme !== "rpc+http") {
    return {
      problem: `must be rpc+https:// or rpc+http:// for a Stellar RPC node, got "${shown}"`,
    };
  }
  let u: URL | undefined;
  try {
    u = new URL(raw.slice("rpc+".length));
  } catch { /* reported below */ }
  if (!u?.hostname) {
    return { problem: `names no RPC host: "${shown}" (expected ${scheme}://host[:port][/path])` };
  }
  let authorization: string | undefined;
  if (u.username || u.password) {
    const userPass = `${decoded(u.username)}:${decoded(u.password)}`;
    authorization = `Basic ${new TextEncoder().encode(userPass).toBase64()}`;
    u.username = u.password = "";
  }
  u.hash = "";
  const printable = `${u.protocol}//${u.host}${u.pathname}`;
  // Long query values are taken for secrets wherever they appear; short ones (a flag) would
  // mangle the numbers in a message.
  const secrets = [u.search, ...[...u.searchParams.values()].filter((v) => v.length >= 8)]
    .filter((s) => s !== "" && s !== "?");
  return { scheme, call: u.href, printable, authorization, secrets, url: `rpc+${printable}` };
}

/** `url` parsed, if it is not already; one naming no source is a configuration error. */
export function toSourceUrl(url: string | SourceUrl): SourceUrl {
  if (typeof url !== "string") return url;
  const parsed = parseSourceUrl(url);
  if ("problem" in parsed) throw new BronzeError(`source ${parsed.problem}`, EXIT.usage);
  return parsed;
}

function decoded(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // a stray '%': taken as typed
  }
}
