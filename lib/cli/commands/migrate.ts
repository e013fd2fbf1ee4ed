import { BronzeError } from "../../runtime/errors.ts";
import { PermissionDeniedError } from "../../metadata/_db.ts";
import { openCatalog } from "../../metadata/catalog.ts";
import { grantReader, readerRoleSql } from "../../metadata/ducklake.ts";
import { migrate, migrationStatus } from "../../metadata/migrate.ts";
import type { SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

export type MigrateOptions = SettingsOf<"migrate">;

export const MIGRATE: CliCommand<"migrate"> = {
  name: "migrate",
  summary: "apply the _meta_* and DuckLake schema (idempotent)",
  description:
    "apply the catalog schema, _meta_* and DuckLake tables (idempotent); with --reader-role, make a role that may only read them",
  run: migrateCommand,
};

/**
 * `bronze migrate`: applies pending migrations (or, with --status, lists them). Writes the report
 * to `out`; progress notes go to `err`. Returns the exit code.
 */
export async function migrateCommand(
  opts: MigrateOptions,
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  const catalog = await openCatalog({
    dsn: opts.catalog,
    stateDir: opts.stateDir,
    log: (m) => err(`[catalog] ${m}`),
  });
  try {
    if (opts.status) {
      const states = await migrationStatus(catalog);
      if (opts.json) {
        out(JSON.stringify({ catalog: catalog.label, migrations: states }));
        return 0;
      }
      out(`catalog: ${catalog.label}`);
      for (const s of states) {
        out(
          `${s.appliedAt ? "applied" : "pending"}  ${s.name}${
            s.appliedAt ? `  ${s.appliedAt.toISOString()}` : ""
          }`,
        );
      }
      return 0;
    }
    const applied = await migrate(catalog);
    const reader = opts.readerRole === undefined
      ? undefined
      : await readerRole(catalog, opts.readerRole, out);
    if (opts.json) {
      out(JSON.stringify({ catalog: catalog.label, applied, reader_role: reader ?? null }));
    } else if (applied.length === 0) {
      out(`catalog ${catalog.label} is up to date: no migrations to apply`);
    } else {
      for (const name of applied) out(`applied ${name}`);
      out(
        `catalog ${catalog.label}: ${applied.length} migration${
          applied.length === 1 ? "" : "s"
        } applied`,
      );
    }
    if (reader && !opts.json) {
      out(
        `role ${reader.role} may read the DuckLake and _meta_* tables and write nothing ` +
          `(set its password: ALTER ROLE ${reader.role} PASSWORD '…')`,
      );
    }
    return 0;
  } finally {
    await catalog.close();
  }
}

/**
 * --reader-role: the role DuckDB readers attach as. A user that may not create or grant prints
 * the statements for one that may (stdout) and fails in one line.
 */
async function readerRole(
  catalog: Awaited<ReturnType<typeof openCatalog>>,
  role: string,
  out: (line: string) => void,
): Promise<{ role: string; statements: string[] }> {
  const statements = await readerRoleSql(catalog, role);
  try {
    await grantReader(catalog, statements);
  } catch (err) {
    if (!(err instanceof PermissionDeniedError)) throw err;
    for (const s of statements) out(`${s};`);
    throw new BronzeError(
      `${err.message}: run the statements above as a role that may create roles and grant ` +
        `on these tables (a superuser, or their owner with CREATEROLE)`,
    );
  }
  return { role, statements };
}
