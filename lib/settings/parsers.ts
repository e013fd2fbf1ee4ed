/**
 * The parsers of setting values: each takes the raw text of a flag or environment variable and
 * returns the value, or an Invalid whose message follows the flag or variable name it came from
 * (`--concurrency must be between 1 and 64, got 0`).
 */
import { type ObjectUrl, parseObjectUrl, parseStoreUrl, type StoreUrl } from "../blob/url.ts";
import { parseSourceUrl, type SourceUrl } from "../source/url.ts";
import { validateDsn } from "../metadata/dsn.ts";
import { parseListenAddress } from "../metrics/server.ts";

/** A rejected value; the message follows the flag or variable name it came from. */
export class Invalid {
  constructor(readonly message: string) {}
}

export type Parser<T> = (raw: string) => T | Invalid;

export const UINT32_MAX = 0xffffffff;

export const intIn = (min: number, max: number): Parser<number> => (raw) => {
  if (!/^\d+$/.test(raw.trim())) return new Invalid(`must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) return new Invalid(`must be between ${min} and ${max}, got ${n}`);
  return n;
};

/** A ledger sequence number. `latest` is copy's alone (ledgerOrLatest): say so. */
export const ledger: Parser<number> = (raw) =>
  raw.trim() === "latest"
    ? new Invalid("latest is for copy (the newest ledger of its source); give a ledger")
    : intIn(1, UINT32_MAX)(raw);

/** A ledger, or `latest`: the source's newest ledger, found when the run starts. */
export const ledgerOrLatest: Parser<number | "latest"> = (raw) =>
  raw.trim() === "latest" ? "latest" : intIn(1, UINT32_MAX)(raw);

/** A duration such as 500ms, 5s, 10m or 1h, in seconds. */
export const duration: Parser<number> = (raw) => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(raw.trim());
  if (!m) return new Invalid(`must be a duration such as 500ms, 5s, 10m or 1h, got "${raw}"`);
  const seconds = Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as "ms"];
  return seconds > 0 ? seconds : new Invalid(`must be more than 0, got "${raw}"`);
};

/** An age such as 0s, 30m, 24h or 7d, in seconds: like duration, but 0 is allowed and so are days. */
export const age: Parser<number> = (raw) => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(raw.trim());
  if (!m) return new Invalid(`must be an age such as 0s, 30m, 24h or 7d, got "${raw}"`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as "ms"];
};

export const oneOf = <T extends string>(choices: readonly T[]): Parser<T> => (raw) =>
  (choices as readonly string[]).includes(raw)
    ? raw as T
    : new Invalid(`must be one of ${choices.join(", ")}, got "${raw}"`);

export const label: Parser<string> = (raw) =>
  /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(raw)
    ? raw
    : new Invalid(`must be 1-64 letters, digits, '_', '.' or '-', got "${raw}"`);

export const nonEmpty: Parser<string> = (raw) =>
  raw.trim() ? raw : new Invalid("must not be empty");

export const bool: Parser<boolean> = (raw) => {
  const v = raw.toLowerCase();
  if (["1", "true", "yes"].includes(v)) return true;
  if (["0", "false", "no"].includes(v)) return false;
  return new Invalid(`must be true or false, got "${raw}"`);
};

export const dsn: Parser<string> = (raw) => {
  const problem = validateDsn(raw, "");
  return problem ? new Invalid(problem.trimStart()) : raw;
};

/** A local path, file://, gs://bucket[/prefix] or s3://bucket[/prefix]. */
export const storeUrl: Parser<StoreUrl> = (raw) => {
  const parsed = parseStoreUrl(raw);
  return "problem" in parsed ? new Invalid(parsed.problem) : parsed;
};

/** A Galexie lake (a store URL) or a Stellar RPC node: rpc+https://host[:port][/path]. */
export const sourceUrl: Parser<SourceUrl> = (raw) => {
  const parsed = parseSourceUrl(raw);
  return "problem" in parsed ? new Invalid(parsed.problem) : parsed;
};

/** Like storeUrl, but naming one object (the checkpoint file). */
export const objectUrl: Parser<ObjectUrl> = (raw) => {
  const parsed = parseObjectUrl(raw);
  return "problem" in parsed ? new Invalid(parsed.problem) : parsed;
};

/** host:port of a server to listen on. */
export const listenAddress: Parser<string> = (raw) => {
  const parsed = parseListenAddress(raw);
  return typeof parsed === "string" ? new Invalid(parsed) : raw;
};

/** A PostgreSQL role name that needs no quoting. */
export const roleName = (raw: string): string | Invalid =>
  /^[a-z_][a-z0-9_]{0,62}$/.test(raw)
    ? raw
    : new Invalid(`must be a lower-case PostgreSQL role name (a-z, 0-9, _), got "${raw}"`);
