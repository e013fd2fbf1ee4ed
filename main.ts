#!/usr/bin/env -S deno run -A
import "./lib/quiet.ts";
import { Command, CommanderError, Option } from "commander";
import { BronzeError } from "./lib/errors.ts";
import { gitSha, VERSION } from "./lib/version.ts";
import { type Flags, type Settings, SPECS } from "./lib/settings.ts";
import { MIGRATE_SETTINGS, migrateCommand, parseMigrateArgs } from "./lib/cli/commands/migrate.ts";
import { COPY_SETTINGS, copyCommand, parseCopyArgs } from "./lib/cli/commands/copy.ts";
import {
  CHECKPOINT_SHOW_SETTINGS,
  checkpointShowCommand,
  parseCheckpointShowArgs,
} from "./lib/cli/commands/checkpoint.ts";
import {
  COVERAGE_SETTINGS,
  coverageCommand,
  parseCoverageArgs,
} from "./lib/cli/commands/coverage.ts";
import { parseVerifyArgs, VERIFY_SETTINGS, verifyCommand } from "./lib/cli/commands/verify.ts";

/** Adds the flags of the given settings, with their environment variables in the help text. */
function withOptions(cmd: Command, keys: readonly (keyof Settings)[]): Command {
  for (const key of keys) {
    const spec = SPECS[key];
    const flag = spec.boolean ? spec.flag : `${spec.flag} <value>`;
    // Defaults are applied by resolveSettings (after the environment), so they are only shown.
    const fallback = key === "checkpoint" ? "<state-dir>/checkpoint.json" : spec.default?.({});
    const shown = spec.boolean || fallback === undefined ? "" : ` (default: ${fallback})`;
    cmd.addOption(new Option(flag, spec.help + shown + (spec.env ? ` [env: ${spec.env}]` : "")));
  }
  return cmd;
}

export function buildProgram(): Command {
  const program = new Command("bronze")
    .description(
      "Copy Stellar ledger history from a Galexie data lake into deterministic Parquet, with lineage and checkpoints",
    )
    .version(`bronze ${VERSION} (git ${gitSha() ?? "unknown"})`, "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });

  withOptions(
    program.command("migrate").description("apply the _meta_* catalog schema (idempotent)"),
    MIGRATE_SETTINGS,
  ).action(async (flags: Flags) => {
    await migrateCommand(parseMigrateArgs(flags));
  });

  withOptions(
    program.command("copy").description(
      "copy a ledger range from a Galexie lake into Parquet partitions, resumably",
    ),
    COPY_SETTINGS,
  ).action(async (flags: Flags) => {
    exitCode = await copyCommand(parseCopyArgs(flags));
  });

  withOptions(
    program.command("coverage").description(
      "per dataset: ledgers held, partitions, rows, bytes and every gap (exit 3 on gaps with --fail-on-gaps)",
    ),
    COVERAGE_SETTINGS,
  ).action(async (flags: Flags) => {
    exitCode = await coverageCommand(parseCoverageArgs(flags));
  });

  withOptions(
    program.command("verify").description(
      "re-read stored partitions and check them against their lineage (exit 4 on any failure)",
    ),
    VERIFY_SETTINGS,
  ).action(async (flags: Flags) => {
    exitCode = await verifyCommand(parseVerifyArgs(flags));
  });

  const checkpoint = program.command("checkpoint").description("inspect a copier's checkpoint");
  withOptions(
    checkpoint.command("show").description("print the checkpoint and the catalog's view beside it"),
    CHECKPOINT_SHOW_SETTINGS,
  ).action(async (flags: Flags) => {
    await checkpointShowCommand(parseCheckpointShowArgs(flags));
  });

  return program;
}

/** Set by a command that finishes without an error but must not exit 0 (an interrupted copy). */
let exitCode = 0;

export async function main(args: string[]): Promise<number> {
  const program = buildProgram();
  try {
    exitCode = 0;
    await program.parseAsync(args, { from: "user" });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; usage errors were already printed by commander.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof BronzeError) {
      console.error(`bronze: ${err.message}`);
      return err.exitCode;
    }
    console.error("bronze: internal error:", err);
    return 70;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
