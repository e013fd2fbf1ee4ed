import { sslModeProblem } from "./_ssl.ts";

/** The DSN with its password (if any) replaced by `***`, safe to print anywhere. */
export function redactDsn(dsn: string): string {
  try {
    const url = new URL(dsn);
    if (url.password) url.password = "***";
    return url.toString();
  } catch {
    // Not a URL: blank anything that looks like password=... (libpq keyword form).
    return dsn.replace(/(password\s*=\s*)(\S+)/gi, "$1***");
  }
}

/** Removes the DSN's password from arbitrary text (driver errors can echo connection strings). */
export function scrubSecret(text: string, dsn: string | undefined): string {
  if (!dsn) return text;
  let out = text.replaceAll(dsn, redactDsn(dsn));
  const password = passwordOf(dsn);
  if (password) {
    out = out.replaceAll(password, "***");
    const encoded = encodeURIComponent(password);
    if (encoded !== password) out = out.replaceAll(encoded, "***");
  }
  return out;
}

function passwordOf(dsn: string): string | undefined {
  try {
    const raw = new URL(dsn).password;
    return raw ? decodeURIComponent(raw) : undefined;
  } catch {
    return /password\s*=\s*(\S+)/i.exec(dsn)?.[1];
  }
}

/**
 * Checks the DSN's shape before any connection attempt. Only a well-formed postgres URL is ever
 * echoed (redacted); anything else might carry its password where no parser can find it.
 */
export function validateDsn(dsn: string, source: string): string | undefined {
  const notShown = "(value not shown: it may contain a password)";
  let url: URL;
  try {
    url = new URL(dsn);
  } catch {
    return `${source} is not a valid URL; expected postgres://user:password@host:5432/database ${notShown}`;
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    return `${source} must be a postgres:// or postgresql:// URL ${notShown}`;
  }
  if (!url.hostname) return `${source} has no host: ${redactDsn(dsn)}`;
  const ssl = sslModeProblem(url);
  if (ssl) return `${source} ${ssl}`;
  return undefined;
}
