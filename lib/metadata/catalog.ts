/**
 * Opening the catalog, embedded or external. A Catalog is an opaque handle: the queries that use
 * it are the functions of this folder (writer.ts, coverage.ts, claims.ts, migrate.ts).
 */
import { BronzeError } from "../errors.ts";
import { attachDb, Db } from "./_db.ts";
import { redactDsn, validateDsn } from "./dsn.ts";
import { type EmbeddedCatalog, startEmbeddedCatalog } from "./embedded.ts";

export interface CatalogOptions {
  /** postgres:// URL of an external catalog; undefined selects the embedded one. */
  dsn?: string;
  stateDir: string;
  log?: (line: string) => void;
}

export class Catalog {
  readonly #db: Db;
  readonly #embedded: EmbeddedCatalog | undefined;

  constructor(db: Db, embedded?: EmbeddedCatalog) {
    this.#db = db;
    this.#embedded = embedded;
    attachDb(this, db);
  }

  /** Printable description: the DSN with its password redacted, or the embedded data dir. */
  get label(): string {
    return this.#db.label;
  }

  get embedded(): boolean {
    return this.#embedded !== undefined;
  }

  async close(): Promise<void> {
    try {
      await this.#db.end();
    } finally {
      await this.#embedded?.stop();
    }
  }
}

export async function openCatalog(opts: CatalogOptions): Promise<Catalog> {
  let embedded: EmbeddedCatalog | undefined;
  let db: Db;
  if (opts.dsn !== undefined) {
    const problem = validateDsn(opts.dsn, "catalog DSN");
    if (problem) throw new BronzeError(problem, 2);
    db = new Db(opts.dsn, redactDsn(opts.dsn), opts.dsn);
  } else {
    embedded = await startEmbeddedCatalog(opts.stateDir, opts.log);
    db = new Db(embedded.url, `embedded catalog at ${embedded.dataDir}`, undefined, {
      external: false,
    });
  }
  try {
    (await db.connect()).release();
  } catch (err) {
    await db.end().catch(() => {});
    await embedded?.stop();
    throw err;
  }
  return new Catalog(db, embedded);
}
