/**
 * A DSN's `sslmode`, as libpq defines it (https://www.postgresql.org/docs/current/libpq-ssl.html),
 * turned into node-postgres's TLS options. node-postgres reads `sslmode` itself, but treats
 * `prefer`, `require` and `verify-ca` as `verify-full` and prints a nine-line warning about it on
 * every run; so the SSL parameters are taken out of the connection string and handled here:
 *
 * - `disable`: no TLS. `allow`: no TLS, and TLS (unverified) if the server refuses that.
 * - `prefer` (libpq's default, and so bronze's): TLS without verification, and no TLS if the server
 *   has none.
 * - `require`: TLS without verification (with `sslrootcert`, as `verify-ca`).
 * - `verify-ca`: TLS, the server's certificate signed by the root certificate (`sslrootcert`, else
 *   ~/.postgresql/root.crt; `system`: the system's roots), whatever its host name.
 * - `verify-full`: that, and the certificate names the host connected to.
 *
 * `sslcert`/`sslkey` give a client certificate. The `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and
 * `PGSSLKEY` variables stand in for absent parameters, as for libpq.
 */
import type { ConnectionOptions } from "node:tls";
import { homedir } from "node:os";
import { join } from "node:path";
import { BronzeError, EXIT } from "../runtime/errors.ts";

export const SSL_MODES = [
  "disable",
  "allow",
  "prefer",
  "require",
  "verify-ca",
  "verify-full",
] as const;
export type SslMode = typeof SSL_MODES[number];

/** The connection parameters this file handles (node-postgres would otherwise read them). */
const SSL_PARAMS = ["sslmode", "sslrootcert", "sslcert", "sslkey", "ssl", "uselibpqcompat"];

/** TLS options for a connection, or false for none. */
export type Tls = false | ConnectionOptions;

/** How to connect: the connection string without its SSL parameters, and TLS to try in order. */
export interface SslPlan {
  connectionString: string;
  mode: SslMode;
  /** The first attempt's TLS. */
  first: Tls;
  /**
   * What to try when the first attempt is refused for its (lack of) encryption (`prefer`,
   * `allow`); undefined when there is no second way.
   */
  fallback?: Tls;
}

type Env = (name: string) => string | undefined;

/** The problem with a DSN's sslmode value, or undefined (absent counts as fine: `prefer`). */
export function sslModeProblem(url: URL, env: Env = (n) => Deno.env.get(n)): string | undefined {
  const raw = url.searchParams.get("sslmode") ?? env("PGSSLMODE");
  if (raw === undefined || raw === null || (SSL_MODES as readonly string[]).includes(raw)) {
    return undefined;
  }
  const from = url.searchParams.has("sslmode") ? "sslmode" : "PGSSLMODE";
  const hint = raw === "no-verify" ? " (node-postgres's no-verify is libpq's require)" : "";
  return `${from} must be one of ${SSL_MODES.join(", ")}, got "${raw}"${hint}`;
}

/**
 * The plan for `dsn` (a valid postgres:// URL). Reads the certificate files it names: a missing
 * or unreadable one is a configuration error naming it.
 */
export function sslPlan(dsn: string, env: Env = (n) => Deno.env.get(n)): SslPlan {
  const url = new URL(dsn);
  const problem = sslModeProblem(url, env);
  if (problem) throw new BronzeError(`catalog DSN ${problem}`, EXIT.usage);
  const param = (name: string, variable: string) =>
    url.searchParams.get(name) ?? env(variable) ?? undefined;
  const mode = (param("sslmode", "PGSSLMODE") ?? "prefer") as SslMode;
  const rootcert = param("sslrootcert", "PGSSLROOTCERT");
  const cert = param("sslcert", "PGSSLCERT");
  const key = param("sslkey", "PGSSLKEY");
  for (const p of SSL_PARAMS) url.searchParams.delete(p);
  const connectionString = url.toString();

  const client: ConnectionOptions = {
    ...(cert ? { cert: _read(cert, "sslcert") } : {}),
    ...(key ? { key: _read(key, "sslkey") } : {}),
  };
  const unverified: ConnectionOptions = { ...client, rejectUnauthorized: false };
  switch (mode) {
    case "disable":
      return { connectionString, mode, first: false };
    case "allow":
      return { connectionString, mode, first: false, fallback: unverified };
    case "prefer":
      return { connectionString, mode, first: unverified, fallback: false };
    case "require":
      if (rootcert === undefined) return { connectionString, mode, first: unverified };
      return { connectionString, mode, first: _verified(client, rootcert, false) };
    case "verify-ca":
    case "verify-full":
      return {
        connectionString,
        mode,
        first: _verified(client, rootcert ?? _defaultRoot(mode), mode === "verify-full"),
      };
  }
}

/**
 * The server's certificate checked against `rootcert` (`system`: the system's roots), and its
 * host name too when `host` (node's check, as verify-full).
 */
function _verified(client: ConnectionOptions, rootcert: string, host: boolean): ConnectionOptions {
  return {
    ...client,
    rejectUnauthorized: true,
    ...(rootcert === "system" ? {} : { ca: _read(rootcert, "sslrootcert") }),
    ...(host ? {} : { checkServerIdentity: () => undefined }),
  };
}

/** libpq's default root certificate, which must exist for a verifying mode without sslrootcert. */
function _defaultRoot(mode: SslMode): string {
  const path = join(homedir(), ".postgresql", "root.crt");
  try {
    Deno.statSync(path);
    return path;
  } catch {
    throw new BronzeError(
      `catalog DSN sslmode=${mode} needs the root certificate to check the server's against: ` +
        `${path} does not exist; name one with sslrootcert=<file> (or sslrootcert=system for the ` +
        `system's trusted roots)`,
      EXIT.usage,
    );
  }
}

function _read(path: string, param: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    // The OS's reason, without the operation and path Deno appends (the path is named already).
    const reason = String((err as Error).message).replace(/: [a-z]+ '.*'$/, "").replace(
      / \(os error \d+\)$/,
      "",
    );
    throw new BronzeError(`catalog DSN ${param} ${path} cannot be read: ${reason}`, EXIT.usage);
  }
}
