/**
 * The catalog's connection pool and the one place PostgreSQL errors become bronze's errors.
 * Private to lib/metadata/: every other wing talks to the catalog through the functions of this
 * folder, never through SQL of its own.
 */
import pg from "pg";
import { BronzeError, EXIT, inArea } from "../runtime/errors.ts";
import { scrubSecret } from "./dsn.ts";
import { sslPlan, type Tls } from "./_ssl.ts";

export type Row = Record<string, unknown>;

/** A connection inside a transaction: queries only, COMMIT/ROLLBACK are the Db's. */
export interface Tx {
  query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<R[]>;
}

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

// BIGINT comes back from pg as a string; ledger numbers and sizes fit a double exactly.
const types = {
  getTypeParser(oid: number, format?: string) {
    if (oid === 20) return (v: string) => Number(v);
    // deno-lint-ignore no-explicit-any
    return (pg.types.getTypeParser as any)(oid, format);
  },
};

/**
 * Server-side settings of every session to an external catalog: a client that vanishes in the
 * middle of a transaction (a commit holding its fleet claim's row) is dropped within a minute,
 * its locks with it, instead of after the kernel's hours. No JIT: bronze's statements run in
 * milliseconds, and compiling one whose estimate crosses jit_above_cost (the status page's, on a
 * catalog of thousands of cells: 25 ms to run, 450 ms to compile) only makes it slower. (A DSN's
 * own `options` wins.)
 */
const SESSION_OPTIONS = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 " +
  "-c tcp_keepalives_count=3 -c tcp_user_timeout=60000 -c idle_in_transaction_session_timeout=60000 " +
  "-c jit=off";

export class Db {
  #pool: pg.Pool;
  readonly #config: pg.PoolConfig;
  /** The other way to connect (sslmode prefer/allow), until the first connection settles it. */
  #fallback: Tls | undefined;
  readonly #mode: string | undefined;

  constructor(
    connectionString: string,
    readonly label: string,
    private readonly dsn?: string,
    { external = true } = {},
  ) {
    // An external catalog's sslmode as libpq means it (_ssl.ts); the embedded one is local.
    const plan = external ? sslPlan(connectionString) : { connectionString, first: false as const };
    this.#config = {
      connectionString: plan.connectionString,
      max: 8,
      connectionTimeoutMillis: 10_000,
      types,
      ...(external ? { options: SESSION_OPTIONS } : {}),
    };
    this.#fallback = "fallback" in plan ? plan.fallback : undefined;
    this.#mode = "mode" in plan ? plan.mode : undefined;
    this.#pool = this.#poolWith(plan.first);
  }

  #poolWith(ssl: Tls): pg.Pool {
    const pool = new pg.Pool({ ...this.#config, ssl });
    // An idle client that loses its server emits 'error' on the pool; without a listener that
    // would crash the process instead of failing the next query with a clear message.
    pool.on("error", () => {});
    return pool;
  }

  async query<R extends Row = Row>(sql: string, params: unknown[] = []): Promise<R[]> {
    if (this.#fallback !== undefined) (await this.connect()).release();
    try {
      return (await this.#pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw this.error(err);
    }
  }

  /** Runs `fn` in one transaction: committed if it returns, rolled back if it throws. */
  async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const client = await this.connect();
    try {
      await client.query("BEGIN");
      const result = await fn({
        query: async <R extends Row>(sql: string, params: unknown[] = []) =>
          (await client.query<R>(sql, params)).rows,
      });
      await client.query("COMMIT");
      return result;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw this.error(err);
    } finally {
      client.release();
    }
  }

  /** A dedicated connection (claims hold session locks on one); the caller releases it. */
  async connect(): Promise<pg.PoolClient> {
    try {
      const client = await this.#pool.connect();
      this.#fallback = undefined;
      return client;
    } catch (err) {
      // sslmode prefer against a server without TLS, allow against one that insists on it: the
      // other way, once, and for good (it is the same server every time).
      if (this.#fallback !== undefined && refusedForEncryption(err)) {
        const tried = this.#pool;
        this.#pool = this.#poolWith(this.#fallback);
        this.#fallback = undefined;
        await tried.end().catch(() => {});
        return await this.connect();
      }
      throw this.error(err);
    }
  }

  /** The pg pool itself: for tests that inspect the catalog with SQL of their own. */
  get pool(): pg.Pool {
    return this.#pool;
  }

  async end(): Promise<void> {
    await this.#pool.end();
  }

  /** The one line a PostgreSQL or connection error becomes: it names the catalog, never a password. */
  error(err: unknown): BronzeError {
    return inArea(this.#error(err), "catalog");
  }

  #error(err: unknown): BronzeError {
    if (err instanceof BronzeError) return err;
    const e = err as {
      code?: string;
      constraint?: string;
      message?: string;
      errors?: { code?: string }[];
    };
    const code = e.code ?? e.errors?.[0]?.code;
    const raw = scrubSecret(String(e.message ?? err), this.dsn);
    const label = this.label;
    const say = (m: string) => scrubSecret(m, this.dsn);
    if (/does not support SSL/i.test(raw)) {
      return new BronzeError(say(
        `catalog ${label}: the server does not offer TLS, which sslmode=${this.#mode} demands; ` +
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
}

/**
 * The server refused the connection for its encryption: it has no TLS (to a TLS request), or its
 * pg_hba.conf has no entry for a connection with (or without) TLS (28000, naming SSL or
 * encryption).
 */
function refusedForEncryption(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  const message = String(e?.message ?? err);
  return /does not support SSL/i.test(message) ||
    (e?.code === "28000" && /SSL|encryption/i.test(message));
}

const dbs = new WeakMap<object, Db>();

/** Ties a Catalog handle to its Db (catalog.ts does this once, when it opens one). */
export function attachDb(catalog: object, db: Db): void {
  dbs.set(catalog, db);
}

/** The Db behind a Catalog handle: for lib/metadata/ (and tests that inspect the catalog). */
export function dbOf(catalog: object): Db {
  const db = dbs.get(catalog);
  if (!db) throw new Error("not an open catalog");
  return db;
}
