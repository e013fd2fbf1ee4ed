import { openCatalog } from "../../metadata/catalog.ts";
import { migrate, migrationStatus } from "../../metadata/migrate.ts";
import type { SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

export type MigrateOptions = SettingsOf<"migrate">;

export const MIGRATE: CliCommand<"migrate"> = {
  name: "migrate",
  summary: "apply the _meta_* schema (idempotent)",
  description: "apply the _meta_* catalog schema (idempotent)",
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
    if (opts.json) {
      out(JSON.stringify({ catalog: catalog.label, applied }));
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
    return 0;
  } finally {
    await catalog.close();
  }
}
