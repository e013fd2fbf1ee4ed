/**
 * lib/metadata/migrate.ts: the catalog's schema is applied by `bronze migrate` (never implicitly to
 * an external catalog), once, whoever runs it at the same moment.
 */
import assert from "node:assert/strict";
import { CATALOG_KINDS, createTestDatabase, withCatalog } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { openCatalog } from "../../lib/metadata/catalog.ts";
import {
  migrate,
  MIGRATIONS_DIR,
  migrationStatus,
  requireSchema,
} from "../../lib/metadata/migrate.ts";
import { CatalogWriter } from "../../lib/metadata/writer.ts";

/** The migrations this build ships, in order (from the folder, so a new one needs no test edit). */
const SHIPPED = [...Deno.readDirSync(MIGRATIONS_DIR)].map((e) => e.name).filter((n) =>
  n.endsWith(".sql")
)
  .map((n) => n.slice(0, -4)).sort();

for (const kind of CATALOG_KINDS) {
  Deno.test(`migrate is idempotent [${kind}]`, async () => {
    await withCatalog(kind, async (catalog) => {
      assert.deepEqual(await migrate(catalog), []);
      const states = await migrationStatus(catalog);
      assert.ok(states.length >= 1);
      assert.ok(states.every((s) => s.appliedAt instanceof Date));
    });
  });
}

Deno.test("two concurrent migrates on one PostgreSQL database: one applies, the other waits and applies nothing", async () => {
  const db = await createTestDatabase();
  const a = await openCatalog({ dsn: db.dsn, stateDir: "unused" });
  const b = await openCatalog({ dsn: db.dsn, stateDir: "unused" });
  try {
    const results = await Promise.all([migrate(a), migrate(b)]);
    const applied = results.map((r) => r.length).sort();
    assert.equal(applied[0], 0);
    assert.ok(applied[1] >= 1);
    await requireSchema(a);
  } finally {
    await a.close();
    await b.close();
    await db.drop();
  }
});

Deno.test("an external catalog is never migrated implicitly: requireSchema says to run bronze migrate", async () => {
  const db = await createTestDatabase();
  const c = await openCatalog({ dsn: db.dsn, stateDir: "unused" });
  try {
    await assert.rejects(() => requireSchema(c), (err: Error) => {
      assert.equal(
        err.message,
        `catalog ${db.dsn} is not migrated (${SHIPPED.length} pending: ${SHIPPED.join(", ")}); ` +
          "run `bronze migrate` against it first",
      );
      return true;
    });
    const w = new CatalogWriter(c);
    const dataset = { domain: "bronze", dataset: "ledgers_lcm_raw", version: "v1", eraId: "e" };
    const info = { ...dataset, network: "pubnet", schemaHash: "a".repeat(64) };
    await assert.rejects(() => w.ensureDataset(info), (err: Error) => {
      assert.equal(
        err.message,
        `catalog ${db.dsn} has no _meta_* schema; run \`bronze migrate\` against it first`,
      );
      return true;
    });
  } finally {
    await c.close();
    await db.drop();
  }
});

Deno.test("bronze migrate end to end: applies, then says there is nothing to apply, then --status lists", async () => {
  const db = await createTestDatabase();
  try {
    const first = await runCli(["migrate", "--catalog", db.dsn]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(
      first.stdout,
      SHIPPED.map((m) => `applied ${m}\n`).join("") +
        `catalog ${db.dsn}: ${SHIPPED.length} migrations applied\n`,
    );
    const second = await runCli(["migrate"], { env: { CATALOG_DSN: db.dsn } });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, `catalog ${db.dsn} is up to date: no migrations to apply\n`);
    const status = await runCli(["migrate", "--status", "--json", "--catalog", db.dsn]);
    const report = JSON.parse(status.stdout);
    assert.deepEqual(report.migrations.map((m: { name: string }) => m.name), SHIPPED);
    assert.ok(report.migrations[0].appliedAt);
    const psql = new Deno.Command("psql", {
      args: [db.dsn, "-c", "\\d _meta_lineage"],
      stdout: "piped",
    }).outputSync();
    const d = new TextDecoder().decode(psql.stdout);
    assert.match(d, /_meta_lineage_no_overlap" EXCLUDE USING gist/);
    assert.match(d, /last_ledger_hash/);
  } finally {
    await db.drop();
  }
});
