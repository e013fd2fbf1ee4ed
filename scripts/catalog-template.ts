/**
 * `deno task catalog-template`: makes the embedded catalog's template that ships with bronze
 * (lib/metadata/_catalog_template.zst, see lib/metadata/_catalog_template.ts): PGlite's initdb and
 * every migration in migrations/, the way a first use without a template would make the catalog,
 * then packed. Run it after adding a migration (tests/metadata/catalog_template_test.ts fails
 * until then; bronze still works meanwhile, applying the migrations the template lacks).
 */
import { join } from "node:path";
import { initdbDataDir } from "../lib/metadata/_embedded_initdb.ts";
import { packTemplate, TEMPLATE_URL } from "../lib/metadata/_catalog_template.ts";
import { openCatalog } from "../lib/metadata/catalog.ts";
import { migrate, migrateFirst, migrationStatus } from "../lib/metadata/migrate.ts";

/**
 * A catalog made by initdb and the migrations (all, or the first `count`), packed. `stateDir`
 * must not hold a catalog yet.
 */
export async function makeTemplate(stateDir: string, count = Infinity): Promise<Uint8Array> {
  const dataDir = join(stateDir, "catalog");
  await Deno.mkdir(stateDir, { recursive: true });
  await initdbDataDir(dataDir);
  const catalog = await openCatalog({ stateDir });
  let applied: string[];
  try {
    if (count === Infinity) await migrate(catalog);
    else await migrateFirst(catalog, count);
    applied = (await migrationStatus(catalog)).filter((m) => m.appliedAt).map((m) => m.name);
  } finally {
    await catalog.close();
  }
  return await packTemplate(dataDir, applied);
}

if (import.meta.main) {
  const stateDir = await Deno.makeTempDir({ prefix: "bronze-catalog-template-" });
  try {
    const packed = await makeTemplate(stateDir);
    await Deno.writeFile(TEMPLATE_URL, packed);
    console.error(`wrote ${TEMPLATE_URL.pathname} (${(packed.length / 1e6).toFixed(1)} MB)`);
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
}
