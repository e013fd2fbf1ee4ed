import pg from "pg";
import { cp, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Catalog, openCatalog } from "../../lib/metadata/catalog.ts";
import { dbOf } from "../../lib/metadata/_db.ts";
import { migrate } from "../../lib/metadata/migrate.ts";
import { PG_ADMIN_URL, sweepLeftovers, testDatabaseName, testTempDir } from "./leftovers.ts";

export { PG_ADMIN_URL };

/**
 * Isolated catalogs for tests: a fresh PostgreSQL database per test on the local server, and a
 * fresh embedded catalog per test (copied from one made once).
 */

export interface TestDatabase {
  dsn: string;
  name: string;
  drop(): Promise<void>;
}

/** A new database, named for this test process (swept by the next run if this one is killed). */
export async function createTestDatabase(): Promise<TestDatabase> {
  await sweepLeftovers();
  const name = testDatabaseName();
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    dsn: url.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

const TEMPLATE_DIR = join(tmpdir(), "bronze-test-embedded-template-v1");

/** A new state dir whose embedded catalog already exists (made from bronze's template). */
export async function freshStateDir(): Promise<string> {
  const dir = await testTempDir("state");
  if (!(await exists(join(TEMPLATE_DIR, "catalog", "PG_VERSION")))) {
    // Build the template aside and rename it into place: parallel test files may race here.
    const building = await testTempDir("template");
    const c = await openCatalog({ stateDir: building });
    await c.close();
    await rm(join(building, "catalog.lock"), { force: true });
    await rename(building, TEMPLATE_DIR).catch(() =>
      rm(building, { recursive: true, force: true })
    );
  }
  await cp(join(TEMPLATE_DIR, "catalog"), join(dir, "catalog"), { recursive: true });
  return dir;
}

export type CatalogKind = "postgres" | "embedded";
export const CATALOG_KINDS: CatalogKind[] = ["postgres", "embedded"];

/** A migrated catalog of the given kind, and how to tear it down. */
export async function withCatalog<T>(
  kind: CatalogKind,
  fn: (catalog: Catalog, where: { dsn?: string; stateDir: string }) => Promise<T>,
  opts: { migrated?: boolean } = {},
): Promise<T> {
  const stateDir = await freshStateDir();
  const db = kind === "postgres" ? await createTestDatabase() : undefined;
  const catalog = await openCatalog({ dsn: db?.dsn, stateDir });
  try {
    if (opts.migrated !== false) await migrate(catalog);
    return await fn(catalog, { dsn: db?.dsn, stateDir });
  } finally {
    await catalog.close();
    await db?.drop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

export interface CatalogTarget {
  kind: CatalogKind;
  /** undefined for the embedded catalog. */
  dsn?: string;
  stateDir: string;
  /** Opens a connection to inspect the catalog (close it before the copier needs the embedded one). */
  open(): Promise<Catalog>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A migrated catalog for commands that open their own connection (copy, coverage, verify): a new
 * PostgreSQL database, or a new state dir whose embedded catalog the command migrates itself.
 */
export async function catalogTarget(kind: CatalogKind): Promise<CatalogTarget> {
  const stateDir = await freshStateDir();
  const db = kind === "postgres" ? await createTestDatabase() : undefined;
  if (db) {
    const c = await openCatalog({ dsn: db.dsn, stateDir });
    await migrate(c).finally(() => c.close());
  }
  return {
    kind,
    dsn: db?.dsn,
    stateDir,
    open: () => openCatalog({ dsn: db?.dsn, stateDir }),
    async [Symbol.asyncDispose]() {
      await db?.drop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * The pg pool behind a catalog, for tests that inspect it with SQL of their own (lib code never
 * does: SQL lives in lib/metadata/ alone).
 */
export function poolOf(catalog: Catalog): pg.Pool {
  return dbOf(catalog).pool;
}
