import pg from "pg";
import { BronzeError } from "../errors.ts";
import { redactDsn, scrubSecret, validateDsn } from "./dsn.ts";
import { type EmbeddedCatalog, startEmbeddedCatalog } from "./embedded.ts";

/**
 * A connection pool to the catalog, embedded or external. Everything above this module speaks
 * plain SQL through `pool`; nothing else knows which kind of catalog it is talking to.
 */
export interface Catalog {
  readonly pool: pg.Pool;
  /** Printable description: the DSN with its password redacted, or the embedded data dir. */
  readonly label: string;
  readonly embedded: boolean;
  close(): Promise<void>;
}

export interface CatalogOptions {
  /** postgres:// URL of an external catalog; undefined selects the embedded one. */
  dsn?: string;
  stateDir: string;
  log?: (line: string) => void;
}

// BIGINT comes back from pg as a string; ledger numbers and sizes fit a double exactly.
const types = {
  getTypeParser(oid: number, format?: string) {
    if (oid === 20) return (v: string) => Number(v);
    // deno-lint-ignore no-explicit-any
    return (pg.types.getTypeParser as any)(oid, format);
  },
};

export async function openCatalog(opts: CatalogOptions): Promise<Catalog> {
  let embedded: EmbeddedCatalog | undefined;
  let connectionString: string;
  let label: string;
  if (opts.dsn !== undefined) {
    const problem = validateDsn(opts.dsn, "catalog DSN");
    if (problem) throw new BronzeError(problem, 2);
    connectionString = opts.dsn;
    label = redactDsn(opts.dsn);
  } else {
    embedded = await startEmbeddedCatalog(opts.stateDir, opts.log);
    connectionString = embedded.url;
    label = `embedded catalog at ${embedded.dataDir}`;
  }
  const pool = new pg.Pool({
    connectionString,
    max: 8,
    connectionTimeoutMillis: 10_000,
    types,
  });
  // An idle client that loses its server emits 'error' on the pool; without a listener that
  // would crash the process instead of failing the next query with a clear message.
  pool.on("error", () => {});
  try {
    const client = await pool.connect();
    client.release();
  } catch (err) {
    await pool.end().catch(() => {});
    await embedded?.stop();
    throw catalogError(err, label, opts.dsn);
  }
  return {
    pool,
    label,
    embedded: embedded !== undefined,
    async close() {
      try {
        await pool.end();
      } finally {
        await embedded?.stop();
      }
    },
  };
}

/** One line that names the catalog (password redacted) and says what to do. */
export function catalogError(err: unknown, label: string, dsn?: string): BronzeError {
  if (err instanceof BronzeError) return err;
  const e = err as { code?: string; message?: string; errors?: { code?: string }[] };
  const code = e.code ?? e.errors?.[0]?.code;
  const raw = scrubSecret(String(e.message ?? err), dsn);
  let message: string;
  switch (code) {
    case "ECONNREFUSED":
      message = `cannot reach catalog ${label}: connection refused; is PostgreSQL running there? ` +
        `(set --catalog or CATALOG_DSN, or omit both for the embedded catalog)`;
      break;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      message = `cannot reach catalog ${label}: host not found`;
      break;
    case "ETIMEDOUT":
      message = `cannot reach catalog ${label}: connection timed out`;
      break;
    case "28P01":
    case "28000":
      message =
        `catalog ${label} refused the login: ${raw}; check the user and password in the DSN`;
      break;
    case "3D000":
      message = `catalog ${label}: ${raw}; create it first (createdb) or fix the DSN`;
      break;
    default:
      message = `catalog ${label}: ${raw}`;
  }
  return new BronzeError(scrubSecret(message, dsn));
}
