/**
 * lib/metadata/_catalog_template.ts: the embedded catalog's first use unpacks the template shipped
 * with bronze instead of running initdb and the migrations; what it unpacks is the catalog those
 * would make, and a template older than the migrations is brought up to date.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readTemplate } from "../../lib/metadata/_catalog_template.ts";
import { dbOf } from "../../lib/metadata/_db.ts";
import { type Catalog, openCatalog } from "../../lib/metadata/catalog.ts";
import {
  migrate,
  MIGRATIONS_DIR,
  migrationStatus,
  openReadyCatalog,
} from "../../lib/metadata/migrate.ts";
import { makeTemplate } from "../../scripts/catalog-template.ts";
import { testTempDir } from "../support/leftovers.ts";

const SHIPPED = [...Deno.readDirSync(MIGRATIONS_DIR)].map((e) => e.name)
  .filter((n) => n.endsWith(".sql")).map((n) => n.slice(0, -4)).sort();

/**
 * Everything a schema is: relations, columns, constraints, indexes, functions, triggers, views,
 * extensions, roles and databases, each as its definition; then every table's row count and the
 * migrations table's names in order.
 */
async function fingerprint(catalog: Catalog): Promise<string[]> {
  const db = dbOf(catalog);
  const defs = await db.query<{ k: string; v: string }>(
    `SELECT 'rel' AS k, n.nspname || '.' || c.relname || ' ' || c.relkind::text AS v
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
     UNION ALL
     SELECT 'col', table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable ||
                   ' ' || coalesce(column_default, '')
       FROM information_schema.columns WHERE table_schema = 'public'
     UNION ALL
     SELECT 'con', conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
       FROM pg_constraint WHERE connamespace = 'public'::regnamespace
     UNION ALL
     SELECT 'idx', indexdef FROM pg_indexes WHERE schemaname = 'public'
     UNION ALL
     SELECT 'fn', pg_get_functiondef(p.oid) FROM pg_proc p
      WHERE pronamespace = 'public'::regnamespace AND prokind IN ('f', 'p')
     UNION ALL
     SELECT 'trg', pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
     UNION ALL
     SELECT 'view', viewname || ' ' || definition FROM pg_views WHERE schemaname = 'public'
     UNION ALL
     SELECT 'ext', extname || ' ' || extversion FROM pg_extension
     UNION ALL
     SELECT 'role', rolname FROM pg_roles
     UNION ALL
     SELECT 'db', datname FROM pg_database
     ORDER BY 1, 2`,
  );
  const out = defs.map((r) => `${r.k} ${r.v}`);
  const tables = await db.query<{ t: string }>(
    `SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`,
  );
  for (const { t } of tables) {
    const [{ n }] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${t}"`);
    out.push(`rows ${t} ${n}`);
  }
  const names = await db.query<{ name: string }>(`SELECT name FROM pgmigrations ORDER BY id`);
  out.push(`migrations ${names.map((r) => r.name).join(",")}`);
  return out;
}

Deno.test("the template shipped with bronze holds every shipped migration (else: deno task catalog-template)", async () => {
  const template = await readTemplate();
  assert.ok(template, "lib/metadata/_catalog_template.zst is missing");
  assert.deepEqual(template.migrations, SHIPPED);
});

Deno.test("a first use unpacks the template: the same catalog as a fresh initdb + migrate, its migrations reported as applied", async () => {
  const fromTemplate = await testTempDir("from-template");
  const made = await testTempDir("initdb-migrate");
  try {
    await makeTemplate(made); // initdb + every migration, as a first use without template would
    const a = await openCatalog({ stateDir: fromTemplate, log: () => {} });
    let expected: string[];
    try {
      assert.deepEqual(a.createdWith, SHIPPED);
      // `bronze migrate` on a new state dir still says what the catalog got.
      assert.deepEqual(await migrate(a), SHIPPED);
      assert.ok((await migrationStatus(a)).every((m) => m.appliedAt !== null));
      expected = await fingerprint(a);
    } finally {
      await a.close();
    }
    const b = await openCatalog({ stateDir: made });
    try {
      assert.equal(b.createdWith, undefined);
      assert.deepEqual(await fingerprint(b), expected);
      assert.ok(expected.some((l) => l.startsWith("ext btree_gist")), "btree_gist installed");
      assert.ok(expected.some((l) => l.startsWith("con ")), "constraints compared");
    } finally {
      await b.close();
    }
    // Opened again, it is an existing catalog: nothing created, nothing to apply.
    const again = await openCatalog({ stateDir: fromTemplate });
    try {
      assert.equal(again.createdWith, undefined);
      assert.deepEqual(await migrate(again), []);
    } finally {
      await again.close();
    }
  } finally {
    await Deno.remove(fromTemplate, { recursive: true });
    await Deno.remove(made, { recursive: true });
  }
});

Deno.test("a catalog from an older bronze's template (one migration short) is brought up to date, saying which it applied", async () => {
  const older = await testTempDir("older-template");
  const state = await testTempDir("older-state");
  try {
    const packed = await makeTemplate(join(older, "make"), SHIPPED.length - 1);
    const file = join(older, "template.zst");
    await Deno.writeFile(file, packed);
    const template = await readTemplate(new URL(`file://${file}`));
    assert.deepEqual(template?.migrations, SHIPPED.slice(0, -1));
    await template!.unpack(join(state, "catalog"));
    const lines: string[] = [];
    const catalog = await openReadyCatalog({ stateDir: state, log: (l) => lines.push(l) });
    try {
      assert.deepEqual(lines, [`applied migration ${SHIPPED.at(-1)}`]);
      assert.ok((await migrationStatus(catalog)).every((m) => m.appliedAt !== null));
    } finally {
      await catalog.close();
    }
  } finally {
    await Deno.remove(older, { recursive: true });
    await Deno.remove(state, { recursive: true });
  }
});
