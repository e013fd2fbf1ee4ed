/**
 * The one place PostgreSQL and connection errors become bronze's: a line naming the catalog
 * (never its password), and the typed errors the writer turns into its own. Private to
 * lib/metadata/ (_db.ts re-exports the classes).
 */
import { BronzeError, EXIT } from "../runtime/errors.ts";
import { scrubSecret } from "./dsn.ts";

/**
 * A unique or exclusion constraint refused a write (23505, 23P01). The writer turns it into the
 * typed error that names the rows in the way (DuplicatePartitionError, ...).
 */
export class ConstraintError extends BronzeError {
  constructor(readonly code: string, readonly constraint: string | undefined, message: string) {
    super(message);
  }
}

/** The catalog has no _meta_* schema, or an older one than this binary (42P01, 42883, 42703). */
export class NotMigratedError extends BronzeError {}

/** The catalog is a read-only standby, or read-only by configuration (25006). */
export class ReadOnlyCatalogError extends BronzeError {}

/** The catalog's user lacks a privilege the statement needs (42501). */
export class PermissionDeniedError extends BronzeError {}

/**
 * `err` as its one line: `label` names the catalog, `dsn`'s password is scrubbed from whatever the
 * driver said, `mode` is the DSN's sslmode (for a server without TLS).
 */
export function catalogError(
  err: unknown,
  label: string,
  dsn: string | undefined,
  mode: string | undefined,
): BronzeError {
  if (err instanceof BronzeError) return err;
  const e = err as {
    code?: string;
    constraint?: string;
    message?: string;
    errors?: { code?: string }[];
  };
  const code = e.code ?? e.errors?.[0]?.code;
  const raw = scrubSecret(String(e.message ?? err), dsn);
  const say = (m: string) => scrubSecret(m, dsn);
  if (/does not support SSL/i.test(raw)) {
    return new BronzeError(say(
      `catalog ${label}: the server does not offer TLS, which sslmode=${mode} demands; ` +
        `turn ssl on in the server, or use sslmode=prefer (TLS if there is any) or disable`,
    ));
  }
  switch (code) {
    case "23505":
    case "23P01":
      return new ConstraintError(code, e.constraint, say(`catalog ${label}: ${raw}`));
    case "42P01":
      return new NotMigratedError(
        `catalog ${label} has no _meta_* schema; run \`bronze migrate\` against it first`,
      );
    case "25006":
      return new ReadOnlyCatalogError(say(`catalog ${label} is read-only: ${raw}`));
    case "42501":
      return new PermissionDeniedError(say(`catalog ${label}: ${raw}`));
    case "53100": // disk_full: the machine's, not a bug (exit 74, as a full disk of ours)
      return new BronzeError(
        say(`catalog ${label}: its disk is full (${raw}): free space there and run again`),
        EXIT.io,
      );
    case "ECONNREFUSED":
      return new BronzeError(say(
        `cannot reach catalog ${label}: connection refused; is PostgreSQL running there? ` +
          `(set --catalog or CATALOG_DSN, or omit both for the embedded catalog)`,
      ));
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new BronzeError(say(`cannot reach catalog ${label}: host not found`));
    case "ETIMEDOUT":
      return new BronzeError(say(`cannot reach catalog ${label}: connection timed out`));
    case "28P01":
    case "28000":
      return new BronzeError(
        say(`catalog ${label} refused the login: ${raw}; check the user and password in the DSN`),
      );
    case "3D000":
      return new BronzeError(
        say(`catalog ${label}: ${raw}; create it first (createdb) or fix the DSN`),
      );
    default:
      return new BronzeError(say(`catalog ${label}: ${raw}`));
  }
}
