import { fileURLToPath } from "node:url";
import { BronzeError } from "../runtime/errors.ts";
import { dbOf, NotMigratedError } from "./_db.ts";
import { type Catalog, type CatalogOptions, openCatalog } from "./catalog.ts";
import { syncDuckLake } from "./ducklake.ts";

/** Shipped with the binary (`deno compile --include migrations`). */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations", import.meta.url));
const MIGRATIONS_TABLE = "pgmigrations";

export interface MigrationState {
  name: string;
  appliedAt: Date | null;
}

/**
 * Applies every pending migration, in one transaction, under node-pg-migrate's advisory lock in
 * "wait" mode: a concurrent `bronze migrate` blocks until this one is done, then finds nothing to
 * apply; then registers the DuckLake table of every dataset that lacks one (a catalog older than
 * migration 008), replaying its lineage. Returns the names applied (empty when the schema was
 * already current).
 *
 * The embedded catalog is migrated by the process that runs it (its owner), which only then lets
 * other bronze processes connect: a client finds the schema current, or refuses to change it.
 */
export async function migrate(catalog: Catalog): Promise<string[]> {
  if (catalog.embeddedRole === "client") return await clientMigrate(catalog);
  // A catalog created from the template: its migrations were applied there, for this catalog.
  const brought = catalog.createdWith ?? [];
  const applied = await current(catalog) ? [] : await runMigrations(catalog);
  // Datasets registered before the catalog was a DuckLake get their tables, with their history.
  await syncDuckLake(catalog);
  await catalog.publish();
  return [...brought, ...applied];
}

/**
 * The catalog has exactly the shipped migrations, in order: nothing for node-pg-migrate to do
 * (and no need to load it: most commands open a current catalog). Anything else, a catalog
 * behind or ahead of this binary, is node-pg-migrate's to apply or refuse.
 */
async function current(catalog: Catalog): Promise<boolean> {
  const shipped = await shippedMigrations();
  try {
    const rows = await dbOf(catalog).query<{ name: string }>(
      `SELECT name FROM ${MIGRATIONS_TABLE} ORDER BY run_on, id`,
    );
    return rows.length === shipped.length && rows.every((r, i) => r.name === shipped[i]);
  } catch (err) {
    if (err instanceof NotMigratedError) return false;
    throw err;
  }
}

/**
 * The first `count` shipped migrations only, and nothing else (no DuckLake registration): a
 * catalog as an older bronze left it, for the template script's and the tests' past schemas.
 */
export function migrateFirst(catalog: Catalog, count: number): Promise<string[]> {
  return runMigrations(catalog, count);
}

async function runMigrations(catalog: Catalog, count = Infinity): Promise<string[]> {
  const { runner } = await import("node-pg-migrate");
  const db = dbOf(catalog);
  const client = await db.connect();
  try {
    return (await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      migrationsTable: MIGRATIONS_TABLE,
      direction: "up",
      count,
      singleTransaction: true,
      advisoryLockMode: "wait",
      checkOrder: true,
      logger: { debug() {}, info() {}, warn() {}, error() {} },
    })).map((m) => m.name);
  } catch (err) {
    throw db.error(err);
  } finally {
    client.release();
  }
}

/**
 * A client of another process's embedded catalog never migrates it: that process did when it
 * opened it, and one backend cannot run two migrations at once under node-pg-migrate's lock (the
 * session advisory lock is shared). A schema behind this binary means an older bronze serves it.
 */
async function clientMigrate(catalog: Catalog): Promise<string[]> {
  const pending = (await migrationStatus(catalog)).filter((m) => m.appliedAt === null);
  if (pending.length === 0) return [];
  throw new BronzeError(
    `${catalog.label} lacks ${pending.length} migration(s) of this bronze ` +
      `(${pending.map((m) => m.name).join(", ")}): an older bronze serves it; run this command ` +
      `again once bronze process ${catalog.embeddedOwnerPid} has exited`,
  );
}

/** Every shipped migration with the time it was applied, or null while pending. */
export async function migrationStatus(catalog: Catalog): Promise<MigrationState[]> {
  const shipped = await shippedMigrations();
  const applied = new Map<string, Date>();
  try {
    const rows = await dbOf(catalog).query<{ name: string; run_on: Date }>(
      `SELECT name, run_on FROM ${MIGRATIONS_TABLE} ORDER BY run_on, id`,
    );
    for (const r of rows) applied.set(r.name, r.run_on);
  } catch (err) {
    if (!(err instanceof NotMigratedError)) throw err;
  }
  return shipped.map((name) => ({ name, appliedAt: applied.get(name) ?? null }));
}

/**
 * Refuses to go on against a catalog whose schema is behind this binary. External catalogs are
 * never migrated implicitly: changing a shared database's schema is an explicit act.
 */
export async function requireSchema(catalog: Catalog): Promise<void> {
  const pending = (await migrationStatus(catalog)).filter((m) => m.appliedAt === null);
  if (pending.length > 0) {
    throw new BronzeError(
      `catalog ${catalog.label} is not migrated (${pending.length} pending: ` +
        `${pending.map((m) => m.name).join(", ")}); run \`bronze migrate\` against it first`,
    );
  }
}

async function shippedMigrations(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(MIGRATIONS_DIR)) {
    if (entry.isFile && entry.name.endsWith(".sql")) names.push(entry.name.slice(0, -4));
  }
  return names.sort();
}

/**
 * The catalog every command but `migrate` works on: the embedded one migrates itself on first
 * use (it belongs to this state dir alone; a client finds it migrated by its owner); an external
 * one must already be migrated.
 */
export async function prepareSchema(catalog: Catalog, log: (line: string) => void): Promise<void> {
  if (!catalog.embedded) return await requireSchema(catalog);
  // A new catalog gets every migration: that is what "creating" means, not news. An older one
  // brought up to this binary's schema says which it got.
  const fresh = catalog.createdWith !== undefined ||
    (await migrationStatus(catalog)).every((m) => m.appliedAt === null);
  const applied = await migrate(catalog);
  if (!fresh) { for (const name of applied) log(`applied migration ${name}`); }
}

/** openCatalog, then prepareSchema: the catalog every command but `migrate` works on. */
export async function openReadyCatalog(opts: CatalogOptions): Promise<Catalog> {
  const catalog = await openCatalog(opts);
  try {
    await prepareSchema(catalog, opts.log ?? (() => {}));
    return catalog;
  } catch (err) {
    await catalog.close();
    throw err;
  }
}
