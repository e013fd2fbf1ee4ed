/**
 * Opening the catalog, embedded or external. A Catalog is an opaque handle: the queries that use
 * it are the functions of this folder (writer.ts, coverage.ts, claims.ts, migrate.ts).
 */
import { join } from "node:path";
import { BronzeError, EXIT } from "../runtime/errors.ts";
import type { Retrier } from "../runtime/retry.ts";
import { attachDb, Db } from "./_db.ts";
import { redactDsn, validateDsn } from "./dsn.ts";
import { type EmbeddedCatalog, startEmbeddedCatalog } from "./embedded.ts";

export interface CatalogOptions {
  /** postgres:// URL of an external catalog; undefined selects the embedded one. */
  dsn?: string;
  stateDir: string;
  /**
   * Progress notes (creating the embedded catalog, migrations applied, waits). Without one they
   * go to stderr as `[catalog] ...`: a wait is never silent.
   */
  log?: (line: string) => void;
  /**
   * Embedded catalog: this process keeps the catalog open for long (a copy), so it only uses
   * another process's catalog when that one does too, and otherwise waits for it to close the
   * catalog and runs it itself (see EmbeddedOptions.holdsLong).
   */
  holdsLong?: boolean;
  /**
   * A command that only reads (coverage, verify, checkpoint show, fleet) never creates an
   * embedded catalog: with none in the state dir yet, it says so instead.
   */
  mustExist?: boolean;
  /**
   * A PostgreSQL catalog that goes away once reached (a restart, a failover) is reconnected to
   * under this retrier's bound (--catalog-retry-for), instead of failing the command, and so is an
   * embedded catalog whose serving process exits (to the next one, or this process runs it): for
   * a command that holds the catalog long (copy). The first connection is never retried.
   */
  retry?: Retrier;
}

export class Catalog {
  readonly #db: Db;
  #embedded: EmbeddedCatalog | undefined;

  constructor(db: Db, embedded?: EmbeddedCatalog) {
    this.#db = db;
    this.#embedded = embedded;
    attachDb(this, db);
    // A client whose owner went away may run the catalog itself from then on: closed with it.
    if (db instanceof EmbeddedClientDb) db.renewed = (e) => this.#embedded = e;
  }

  /** Printable description: the DSN with its password redacted, or the embedded data dir. */
  get label(): string {
    return this.#db.label;
  }

  /** The embedded catalog, whether this process serves it (owner) or uses another's (client). */
  get embedded(): boolean {
    return this.#embedded !== undefined;
  }

  /**
   * "owner": this process runs the embedded catalog (and serves it to other bronze processes on
   * the same state dir); "client": another bronze process does; undefined for PostgreSQL.
   */
  get embeddedRole(): "owner" | "client" | undefined {
    return this.#embedded?.role;
  }

  /**
   * Where the embedded catalog's PostgreSQL wire-protocol server listens (host and port, user
   * postgres, database postgres), for readers such as DuckDB; undefined for PostgreSQL.
   */
  get embeddedAddress(): { host: string; port: number } | undefined {
    if (!this.#embedded) return undefined;
    const u = new URL(this.#embedded.url);
    return { host: u.hostname, port: Number(u.port) };
  }

  /** The pid of the bronze process that runs the embedded catalog (undefined for PostgreSQL). */
  get embeddedOwnerPid(): number | undefined {
    return this.#embedded?.ownerPid;
  }

  /**
   * The migrations the template shipped with bronze brought to the embedded catalog this process
   * just created (already applied); undefined when it did not create one.
   */
  get createdWith(): readonly string[] | undefined {
    return this.#embedded?.created;
  }

  /**
   * Embedded owner: from now on other bronze processes connect to this one's catalog (migrate.ts
   * calls it once the schema is current). Otherwise nothing.
   */
  async publish(): Promise<void> {
    await this.#embedded?.publish();
  }

  async close(): Promise<void> {
    try {
      await this.#db.end();
    } finally {
      await this.#embedded?.stop();
    }
  }
}

/**
 * A client of another process's embedded catalog loses it when that process exits: say so in one
 * line, instead of pg's "Connection terminated unexpectedly" or a "connection refused" that
 * suggests starting PostgreSQL.
 */
class EmbeddedClientDb extends Db {
  /** Told of the catalog this process uses after a renewal (it may now run it itself). */
  renewed: (embedded: EmbeddedCatalog) => void = () => {};
  #renewing: Promise<void> | undefined;
  #ownerPid: number;

  constructor(
    url: string,
    private readonly dataDir: string,
    ownerPid: number,
    private readonly reopen?: () => Promise<EmbeddedCatalog>,
    retry?: Retrier,
  ) {
    super(url, `embedded catalog at ${dataDir} (served by bronze process ${ownerPid})`, undefined, {
      external: false,
      retry,
    });
    this.#ownerPid = ownerPid;
  }

  /**
   * The serving process went away: with a retrier (a copy), the election is run again, as at
   * start: this process connects to the next owner, or, the lock being free, runs the catalog
   * itself (PGlite recovers it from its WAL). Once per lost owner, however many calls lost it.
   */
  override async renew(err: unknown, generation: number): Promise<void> {
    if (!this.reopen || !this.lostOwner(err)) return;
    if (this.#renewing) return await this.#renewing;
    if (generation !== this.generation) return; // renewed since that attempt
    this.#renewing = (async () => {
      const embedded = await this.reopen!();
      this.#ownerPid = embedded.ownerPid;
      this.retarget(embedded.url);
      if (embedded.role === "owner") await embedded.publish();
      this.renewed(embedded);
    })();
    try {
      await this.#renewing;
    } finally {
      this.#renewing = undefined;
    }
  }

  /** The error says the serving process went away (or is going). */
  lostOwner(err: unknown): boolean {
    const cause = (err as { cause?: unknown })?.cause;
    if (cause !== undefined && cause !== err && this.lostOwner(cause)) return true;
    if (err instanceof BronzeError) return err.message.startsWith(this.#lost);
    const e = err as { code?: string; message?: string; errors?: { code?: string }[] };
    const code = e.code ?? e.errors?.[0]?.code;
    return code === "ECONNREFUSED" || code === "ECONNRESET" || code === "EPIPE" ||
      code === "57P01" ||
      /Connection terminated|connection error|not queryable/i.test(String(e.message ?? err));
  }

  get #lost(): string {
    return `lost the embedded catalog at ${this.dataDir}:`;
  }

  override error(err: unknown): BronzeError {
    if (err instanceof BronzeError) return err;
    if (this.lostOwner(err)) {
      return new BronzeError(
        `${this.#lost} bronze process ${this.#ownerPid}, which served it, ` +
          `has exited; run this command again`,
      );
    }
    return super.error(err);
  }
}

export async function openCatalog(opts: CatalogOptions): Promise<Catalog> {
  if (opts.dsn !== undefined) {
    const problem = validateDsn(opts.dsn, "catalog DSN");
    if (problem) throw new BronzeError(problem, EXIT.usage);
    const db = new Db(opts.dsn, redactDsn(opts.dsn), opts.dsn, { retry: opts.retry });
    try {
      await db.probe();
    } catch (err) {
      await db.end().catch(() => {});
      throw err;
    }
    return new Catalog(db);
  }
  if (opts.mustExist && !(await embeddedCatalogExists(opts.stateDir))) {
    throw new BronzeError(
      `no catalog yet in ${opts.stateDir} (no embedded catalog at ${
        join(opts.stateDir, "catalog")
      }): ` +
        `\`bronze copy\` or \`bronze migrate\` makes one; or point --state-dir or --catalog at yours`,
    );
  }
  const say = opts.log ?? ((line: string) => console.error(`[catalog] ${line}`));
  // An owner may exit between our finding its server and connecting to it: start over, and
  // most likely own the catalog this time.
  for (let attempt = 1;; attempt++) {
    const embedded = await startEmbeddedCatalog(opts.stateDir, say, {
      holdsLong: opts.holdsLong,
    });
    const db = embedded.role === "owner"
      ? new Db(embedded.url, `embedded catalog at ${embedded.dataDir}`, undefined, {
        external: false,
      })
      : new EmbeddedClientDb(
        embedded.url,
        embedded.dataDir,
        embedded.ownerPid,
        opts.retry &&
          (() => startEmbeddedCatalog(opts.stateDir, say, { holdsLong: opts.holdsLong })),
        opts.retry,
      );
    try {
      await db.probe();
      return new Catalog(db, embedded);
    } catch (err) {
      await db.end().catch(() => {});
      await embedded.stop();
      if (!(db instanceof EmbeddedClientDb && db.lostOwner(err) && attempt < 3)) throw err;
    }
  }
}

async function embeddedCatalogExists(stateDir: string): Promise<boolean> {
  try {
    await Deno.stat(join(stateDir, "catalog", "PG_VERSION"));
    return true;
  } catch {
    return false;
  }
}
