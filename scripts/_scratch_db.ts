/**
 * A PostgreSQL database of its own for one bench run: created, migrated, handed to `fn`, dropped
 * however `fn` ends.
 */
import pg from "pg";
import { openCatalog } from "../lib/metadata/catalog.ts";
import { migrate } from "../lib/metadata/migrate.ts";

export const PG_ADMIN = Deno.env.get("BENCH_PG_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

export async function withScratchDb<T>(
  prefix: string,
  fn: (dsn: string) => Promise<T>,
  admin = PG_ADMIN,
): Promise<T> {
  const name = `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const run = async (sql: string) => {
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await run(`CREATE DATABASE ${name}`);
  try {
    const url = new URL(admin);
    url.pathname = `/${name}`;
    const catalog = await openCatalog({ dsn: url.toString(), stateDir: "./state", log: () => {} });
    try {
      await migrate(catalog);
    } finally {
      await catalog.close();
    }
    return await fn(url.toString());
  } finally {
    await run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}
