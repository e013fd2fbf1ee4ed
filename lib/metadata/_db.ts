/**
 * The catalog's connection pool and the one place PostgreSQL errors become bronze's errors.
 * Private to lib/metadata/: every other wing talks to the catalog through the functions of this
 * folder, never through SQL of its own.
 */
import pg from "pg";
import { BronzeError, EXIT, inArea } from "../runtime/errors.ts";
import { failpoint } from "../runtime/failpoint.ts";
import type { Attempts, Retrier } from "../runtime/retry.ts";
import { sleep } from "../runtime/time.ts";
import { transientReason } from "../runtime/transient.ts";
import { sslPlan, type Tls } from "./_ssl.ts";
import { catalogError } from "./_db_errors.ts";

export type Row = Record<string, unknown>;

/** A connection inside a transaction: queries only, COMMIT/ROLLBACK are the Db's. */
export interface Tx {
  query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<R[]>;
}

/**
 * How a transaction is run again when the catalog went away under it (a Db with a retrier only).
 * Lost before COMMIT was sent, it was rolled back: it is simply run again. Lost after (the answer
 * never came), it may have committed: `resolve` reads the catalog and returns what the committed
 * transaction would have returned, or undefined when it did not commit (then it is run again);
 * `idempotent` says running it again is harmless. With neither, an unknown outcome is final.
 */
export interface TxOptions<T> {
  resolve?: () => Promise<T | undefined>;
  idempotent?: boolean;
}

/** COMMIT was sent and its answer lost: whether the transaction committed is unknown. */
export class CommitUnknownError extends BronzeError {}

export {
  ConstraintError,
  NotMigratedError,
  PermissionDeniedError,
  ReadOnlyCatalogError,
} from "./_db_errors.ts";

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

  /**
   * Reconnects with backoff under the catalog's bound (--catalog-retry-for), when the catalog goes
   * away (a restart, a failover): a run that holds it long (copy) passes one; other commands fail
   * at once, as before.
   */
  readonly retry: Retrier | undefined;

  constructor(
    connectionString: string,
    readonly label: string,
    private readonly dsn?: string,
    { external = true, retry }: { external?: boolean; retry?: Retrier } = {},
  ) {
    this.retry = retry;
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
    const tries = this.retry?.begin("catalog", { what: `catalog ${this.label}` });
    for (;;) {
      const generation = this.#generation;
      try {
        if (this.#fallback !== undefined) (await this.#connectOnce()).release();
        const rows = (await this.#pool.query<R>(sql, params)).rows;
        tries?.succeeded();
        return rows;
      } catch (err) {
        await this.#again(tries, err, generation);
      }
    }
  }

  /**
   * Runs `fn` in one transaction: committed if it returns, rolled back if it throws. With a
   * retrier, a catalog that went away is waited for and the transaction run again (TxOptions).
   */
  async transaction<T>(fn: (tx: Tx) => Promise<T>, opts: TxOptions<T> = {}): Promise<T> {
    const tries = this.retry?.begin("catalog", { what: `catalog ${this.label}` });
    for (;;) {
      const generation = this.#generation;
      let committing = false;
      let client: pg.PoolClient | undefined;
      let broken: unknown;
      // A checked-out client has no listener of the pool's: a server gone between two statements
      // would otherwise be an unheard 'error' event, fatal to the process.
      const heard = (err: unknown) => void (broken ??= err);
      try {
        client = await this.#connectOnce();
        client.on("error", heard);
        await client.query("BEGIN");
        const c = client;
        const result = await fn({
          query: async <R extends Row>(sql: string, params: unknown[] = []) =>
            (await c.query<R>(sql, params)).rows,
        });
        committing = true;
        await client.query("COMMIT");
        // Tests lose the answer of a COMMIT the server did (mode cut), as a network would.
        if (opts.resolve) await failpoint("catalog-commit-answer");
        tries?.succeeded();
        return result;
      } catch (err) {
        const lost = transientReason(err) !== null || broken !== undefined;
        if (!committing) await client?.query("ROLLBACK").catch(() => {});
        client?.removeListener("error", heard);
        client?.release(lost ? true : undefined);
        client = undefined;
        if (!(committing && lost && tries)) {
          await this.#again(tries, err, generation);
          continue;
        }
        // The answer to COMMIT was lost: the transaction may well be in the catalog.
        const outcome = await this.#resolve(tries, err, opts, generation);
        if (outcome.known) {
          tries.succeeded();
          return outcome.value;
        }
      } finally {
        client?.removeListener("error", heard);
        client?.release();
      }
    }
  }

  /**
   * After a COMMIT whose answer was lost: waits for the catalog (counting the failure against the
   * bound) and reads whether it committed. `known` with the transaction's value, or not (run it
   * again).
   */
  async #resolve<T>(
    tries: Attempts,
    err: unknown,
    opts: TxOptions<T>,
    generation: number,
  ): Promise<{ known: true; value: T } | { known: false }> {
    if (!opts.resolve && !opts.idempotent) {
      throw inArea(
        new CommitUnknownError(
          `catalog ${this.label}: the connection was lost after COMMIT was sent, so whether the ` +
            `transaction committed is unknown (${this.error(err).message}); run again`,
          EXIT.tempfail,
        ),
        "catalog",
      );
    }
    await this.#again(tries, err, generation);
    if (!opts.resolve) return { known: false };
    const value = await opts.resolve();
    return value === undefined ? { known: false } : { known: true, value };
  }

  /**
   * One failed attempt: thrown as bronze's one line when it is final or there is no retrier (or
   * the bound ran out: exit 75); otherwise waited out with backoff, for the next attempt.
   */
  async #again(tries: Attempts | undefined, err: unknown, generation: number): Promise<void> {
    if (!tries) throw this.error(err);
    // The catalog answered (a refusal, or ours after its answers: a claim found gone): it is back,
    // whatever the answer; the burst ends recovered, and the answer is thrown below.
    if (answered(err)) tries.succeeded();
    await sleep(tries.failed(this.named(err)));
    await this.renew(err, generation);
  }

  /** Which server the pool connects to: the count of renewals so far (see renew). */
  get generation(): number {
    return this.#generation;
  }

  #generation = 0;

  /**
   * After a failure of an attempt made on `generation`: a Db whose server may move (an embedded
   * catalog's client, whose serving process went away) finds where it went and connects there from
   * now on (retarget). Here, nothing: a PostgreSQL catalog's address is its DSN's.
   */
  renew(_err: unknown, _generation: number): Promise<void> {
    return Promise.resolve();
  }

  /** From now on, connections go to `connectionString` (a renewal's new server). */
  protected retarget(connectionString: string): void {
    const old = this.#pool;
    this.#config.connectionString = connectionString;
    this.#pool = this.#poolWith(false);
    this.#generation++;
    // Not waited for: a client still checked out of it (a claim session's) is dropped by its user.
    void old.end().catch(() => {});
  }

  /**
   * The error as its one line (naming the catalog), keeping the driver's as the cause (where what
   * is transient finds it).
   */
  named(err: unknown): BronzeError {
    const named = this.error(err);
    if (named !== err) (named as { cause?: unknown }).cause ??= err;
    return named;
  }

  /**
   * A dedicated connection (claims hold session locks on one); the caller releases it. With a
   * retrier, a catalog not there yet (restarting) is waited for, unless `once` (the caller
   * retries, as a ClaimSession reconnecting does).
   */
  async connect({ once = false } = {}): Promise<pg.PoolClient> {
    if (once) {
      try {
        return await this.#connectOnce();
      } catch (err) {
        throw this.named(err);
      }
    }
    const tries = this.retry?.begin("catalog", { what: `catalog ${this.label}` });
    for (;;) {
      const generation = this.#generation;
      try {
        const client = await this.#connectOnce();
        tries?.succeeded();
        return client;
      } catch (err) {
        await this.#again(tries, err, generation);
      }
    }
  }

  /**
   * One connection made and given back, never retried: a catalog that cannot be reached when a
   * command starts is a misconfiguration more often than a restart, and is said at once.
   */
  async probe(): Promise<void> {
    try {
      (await this.#connectOnce()).release();
    } catch (err) {
      throw this.error(err);
    }
  }

  async #connectOnce(): Promise<pg.PoolClient> {
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
        return await this.#connectOnce();
      }
      throw err;
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
    return inArea(catalogError(err, this.label, this.dsn, this.#mode), "catalog");
  }
}

/** An error the catalog answered with (a SQLSTATE), or ours, thrown after its answers. */
function answered(err: unknown): boolean {
  if ((err as { final?: unknown })?.final === true) return false; // a bound ran out: not back
  if (err instanceof BronzeError) return transientReason(err) === null;
  const code = (err as { code?: unknown })?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && transientReason(err) === null;
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
