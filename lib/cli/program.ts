/**
 * The command line: commander wiring from each command's settings list to its plain function.
 * `run(args)` returns the process's exit code; nothing here keeps state between runs.
 */
import { Command, CommanderError, Option } from "commander";
import { BronzeError, EXIT } from "../runtime/errors.ts";
import { gitSha, VERSION } from "../runtime/version.ts";
import { COMMAND_SETTINGS, type CommandName, type Flags, SPECS } from "../settings.ts";
import { migrateCommand, parseMigrateArgs } from "./commands/migrate.ts";
import { copyCommand, parseCopyArgs } from "./commands/copy.ts";
import { checkpointShowCommand, parseCheckpointShowArgs } from "./commands/checkpoint.ts";
import { coverageCommand, parseCoverageArgs } from "./commands/coverage.ts";
import { parseVerifyArgs, verifyCommand } from "./commands/verify.ts";
import { fleetCommand, parseFleetArgs } from "./commands/fleet.ts";
import { parseRepairArgs, repairCommand } from "./commands/repair.ts";
import { compactCommand, parseCompactArgs } from "./commands/compact.ts";
import { lineageCommand, parseLineageArgs } from "./commands/lineage.ts";
import { catalogRebuildCommand, parseCatalogRebuildArgs } from "./commands/catalog.ts";
import { gcCommand, parseGcArgs } from "./commands/gc.ts";
import { parseRetireArgs, retireCommand } from "./commands/retire.ts";

/** Exit code of an error that is not a BronzeError: a bug (BSD's EX_SOFTWARE). */
export const EXIT_INTERNAL = EXIT.internal;

/**
 * Adds a command's flags, with their defaults and environment variables in the help text. Unknown
 * flags and stray words are not commander's errors but reach the command's settings check, to be
 * reported with every other problem at once.
 */
function withOptions(cmd: Command, name: CommandName): Command {
  cmd.allowUnknownOption().allowExcessArguments();
  for (const key of COMMAND_SETTINGS[name]) {
    const spec = SPECS[key];
    const flag = spec.boolean ? spec.flag : `${spec.flag} <value>`;
    // Defaults are applied by resolveSettings (after the environment), so they are only shown.
    const fallback = spec.shown ?? spec.default?.({});
    const shown = spec.boolean || fallback === undefined ? "" : ` (default: ${fallback})`;
    cmd.addOption(new Option(flag, spec.help + shown + (spec.env ? ` [env: ${spec.env}]` : "")));
  }
  return cmd;
}

/** The program; each command's action hands its exit code to `exit`. */
export function buildProgram(exit: (code: number) => void): Command {
  const program = new Command("bronze")
    .description(
      "Copy Stellar ledger history from a Galexie data lake into deterministic Parquet, with lineage and checkpoints",
    )
    .version(`bronze ${VERSION} (git ${gitSha() ?? "unknown"})`, "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    // -V/--version belong to bronze itself, before a command: `copy --version v2` is a slip
    // for --version-label, not a request for the version.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });

  /**
   * A command under `parent` (named `text.name`, else `settings`): its flags from its settings
   * list; its action parses them and runs the command's plain function.
   */
  const add = <A>(
    parent: Command,
    settings: CommandName,
    text: { name?: string; summary: string; description: string },
    parse: (flags: Flags, env: undefined, unknown: readonly string[]) => A,
    command: (args: A) => Promise<number>,
  ) =>
    withOptions(
      parent.command(text.name ?? settings).summary(text.summary).description(text.description),
      settings,
    ).action(async (flags: Flags, cmd: Command) =>
      exit(await command(parse(flags, undefined, cmd.args)))
    );

  add(
    program,
    "migrate",
    {
      summary: "apply the _meta_* schema (idempotent)",
      description: "apply the _meta_* catalog schema (idempotent)",
    },
    parseMigrateArgs,
    migrateCommand,
  );
  add(
    program,
    "copy",
    {
      summary: "copy a ledger range, resumably; or follow the network",
      description:
        "copy a ledger range from a Galexie lake or a Stellar RPC node into Parquet partitions, resumably; with --follow, keep copying as the network grows",
    },
    parseCopyArgs,
    copyCommand,
  );
  add(
    program,
    "coverage",
    {
      summary: "which ledgers does the catalog hold, and where are the gaps?",
      description:
        "per dataset: ledgers held, partitions, rows, bytes and every gap (exit 3 on gaps with --fail-on-gaps)",
    },
    parseCoverageArgs,
    coverageCommand,
  );
  add(
    program,
    "verify",
    {
      summary: "are the stored bytes what the catalog recorded?",
      description:
        "re-read stored partitions and check them against their lineage (exit 4 on any failure)",
    },
    parseVerifyArgs,
    verifyCommand,
  );
  add(
    program,
    "repair",
    {
      summary: "rebuild missing or corrupt partitions from the source",
      description:
        "rebuild from the source every partition whose stored file is missing or corrupt, publishing only bytes that match the lineage (exit 4 when one cannot be)",
    },
    parseRepairArgs,
    repairCommand,
  );
  add(
    program,
    "compact",
    {
      summary: "merge each complete cell's partial partitions into one file",
      description:
        "replace the partial partitions of each complete grid cell by one file, byte-identical to a backfill's (the partials stay in lineage, marked superseded)",
    },
    parseCompactArgs,
    compactCommand,
  );
  add(
    program,
    "lineage",
    {
      summary: "the partitions the catalog records (--history: superseded too)",
      description:
        "the partitions the catalog records, in ledger order (--history: the superseded ones too)",
    },
    parseLineageArgs,
    lineageCommand,
  );
  add(
    program,
    "fleet",
    {
      summary: "who is copying what, across machines, and how fast",
      description:
        "who is copying what: each fleet's cells committed, claimed and left, its pace and ETA, and every copier working",
    },
    parseFleetArgs,
    fleetCommand,
  );
  add(
    program,
    "gc",
    {
      summary: "list what no lineage row keeps (orphans, superseded, retired); --apply deletes",
      description:
        "list what no lineage row keeps (temp files, never-committed partitions, partials a compaction superseded) and the files of retired datasets, older than --older-than; delete them with --apply",
    },
    parseGcArgs,
    gcCommand,
  );
  add(
    program,
    "retire",
    {
      summary: "retire a dataset version: copy refuses it, gc deletes its files later",
      description:
        "mark the matching datasets retired (--reason required): their lineage stays, copy refuses them, gc --apply deletes their files",
    },
    parseRetireArgs,
    retireCommand,
  );

  const checkpoint = program.command("checkpoint").description("inspect a copier's checkpoint");
  add(
    checkpoint,
    "checkpointShow",
    {
      name: "show",
      summary: "where is this copier?",
      description: "print the checkpoint and the catalog's view beside it",
    },
    parseCheckpointShowArgs,
    checkpointShowCommand,
  );

  const catalogCmd = program.command("catalog").description("recover the catalog");
  add(
    catalogCmd,
    "catalogRebuild",
    {
      name: "rebuild",
      summary: "recover a lost catalog from storage alone",
      description:
        "record the lineage of every partition under --storage from its _manifest.json, each file checked against it (exit 4 when one fails or conflicts with the catalog)",
    },
    parseCatalogRebuildArgs,
    catalogRebuildCommand,
  );

  return program;
}

/** Runs the command line `args` (without the program name); returns the exit code. */
export async function run(args: string[]): Promise<number> {
  let code = 0;
  const program = buildProgram((c) => code = c);
  try {
    await program.parseAsync(args, { from: "user" });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; usage errors were already printed by commander.
      return err.exitCode === 0 ? 0 : 2;
    }
    return report(err);
  }
}

/**
 * The one line an error becomes: a BronzeError's own message, anything else an internal error
 * (a bug) whose stack trace BRONZE_DEBUG=1 shows. Returns the exit code.
 */
export function report(err: unknown): number {
  if (err instanceof BronzeError) {
    console.error(`bronze: ${err.message}`);
    return err.exitCode;
  }
  const message = String((err as Error)?.message ?? err).split("\n")[0];
  console.error(`bronze: internal error: ${message} (BRONZE_DEBUG=1 shows where)`);
  if (Deno.env.get("BRONZE_DEBUG") === "1") console.error((err as Error)?.stack ?? err);
  return EXIT_INTERNAL;
}
