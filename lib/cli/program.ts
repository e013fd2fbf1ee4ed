/**
 * The command line: commander wiring from each command's settings list to its plain function.
 * `run(args)` returns the process's exit code; nothing here keeps state between runs.
 */
import { Command, CommanderError, Option } from "commander";
import { BronzeError, environmentError, EXIT } from "../runtime/errors.ts";
import { gitSha, VERSION } from "../runtime/version.ts";
import {
  type CommandName,
  COMMANDS,
  type Flags,
  resolveSettings,
  specOf,
} from "../settings/mod.ts";
import { type AnyCliCommand, type CliCommand, commandWords } from "./command.ts";
import { CATALOG_REBUILD, CATALOG_SERVE } from "./commands/catalog.ts";
import { CHECKPOINT_SHOW } from "./commands/checkpoint.ts";
import { COMPACT } from "./commands/compact.ts";
import { COPY } from "./commands/copy.ts";
import { COVERAGE } from "./commands/coverage.ts";
import { FLEET } from "./commands/fleet.ts";
import { GC } from "./commands/gc.ts";
import { LINEAGE } from "./commands/lineage.ts";
import { MIGRATE } from "./commands/migrate.ts";
import { REPAIR } from "./commands/repair.ts";
import { RETIRE } from "./commands/retire.ts";
import { STATUS } from "./commands/status.ts";
import { VERIFY } from "./commands/verify.ts";

/** Exit code of an error that is not a BronzeError: a bug (BSD's EX_SOFTWARE). */
export const EXIT_INTERNAL = EXIT.internal;

/** Every command, in help order. */
export const CLI_COMMANDS: readonly AnyCliCommand[] = [
  MIGRATE,
  COPY,
  COVERAGE,
  VERIFY,
  REPAIR,
  COMPACT,
  LINEAGE,
  FLEET,
  STATUS,
  GC,
  RETIRE,
  CHECKPOINT_SHOW,
  CATALOG_REBUILD,
  CATALOG_SERVE,
];

/** The commands that only group others (`bronze checkpoint show`). */
const GROUPS: Record<string, string> = {
  checkpoint: "inspect a copier's checkpoint",
  catalog: "recover the catalog; serve the embedded one to DuckLake readers",
};

/**
 * Adds a command's flags, with their defaults and environment variables in the help text. Unknown
 * flags and stray words are not commander's errors but reach the command's settings check, to be
 * reported with every other problem at once.
 */
function withOptions(cmd: Command, name: CommandName): Command {
  cmd.allowUnknownOption().allowExcessArguments();
  for (const key of COMMANDS[name].settings) {
    const spec = specOf(name, key);
    const flag = spec.boolean ? spec.flag : `${spec.flag} <value>`;
    // Defaults are applied by resolveSettings (after the environment), so they are only shown.
    const fallback = spec.shown ?? spec.default?.({});
    const shown = spec.boolean || fallback === undefined ? "" : ` (default: ${fallback})`;
    cmd.addOption(new Option(flag, spec.help + shown + (spec.env ? ` [env: ${spec.env}]` : "")));
  }
  return cmd;
}

/** Resolves a command's settings and runs it: its exit code. */
function runCommand<C extends CommandName>(
  command: CliCommand<C>,
  flags: Flags,
  unknown: readonly string[],
): Promise<number> {
  return command.run(resolveSettings(command.name, flags, undefined, unknown));
}

/**
 * The program; each command's action hands its exit code to `exit`. `forVersion`: the version may
 * be asked for (`-V`), so it names the git commit; otherwise that is not looked up (from source it
 * asks git, a process of its own, on every start).
 */
export function buildProgram(exit: (code: number) => void, forVersion = true): Command {
  const sha = forVersion ? gitSha() ?? "unknown" : "not looked up";
  const program = new Command("bronze")
    .description(
      "Copy Stellar ledger history from a Galexie data lake into deterministic Parquet, with lineage and checkpoints",
    )
    .version(`bronze ${VERSION} (git ${sha})`, "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    // -V/--version belong to bronze itself, before a command: `copy --version v2` is a slip
    // for --version-label, not a request for the version.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });

  for (const command of CLI_COMMANDS) {
    let parent = program;
    const words = commandWords(command.name);
    for (const group of words.slice(0, -1)) {
      parent = parent.commands.find((c) => c.name() === group) ??
        parent.command(group).description(GROUPS[group]);
    }
    withOptions(
      parent.command(words.at(-1)!).summary(command.summary).description(command.description),
      command.name,
    ).action(async (flags: Flags, cmd: Command) =>
      exit(await runCommand(command, flags, cmd.args))
    );
  }
  return program;
}

/** Runs the command line `args` (without the program name); returns the exit code. */
export async function run(args: string[]): Promise<number> {
  // `bronze help --help` (or `help copy -h`) asks for the help: commander would take --help for
  // the name of a command.
  if (args[0] === "help") args = args.filter((a, i) => i === 0 || (a !== "--help" && a !== "-h"));
  let code = 0;
  const program = buildProgram((c) => code = c, args.some((a) => a === "-V" || a === "--version"));
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
 * The one line an error becomes: a BronzeError's own message; the machine's refusals (a full
 * disk, permissions, too many open files) that no layer named, as an I/O error (exit 74) with the
 * path the OS gave; anything else an internal error (a bug) whose stack trace BRONZE_DEBUG=1
 * shows. Returns the exit code.
 */
export function report(err: unknown): number {
  const env = environmentError(err, { path: osPathOf(err), writing: true });
  if (env) err = env;
  if (err instanceof BronzeError) {
    console.error(`bronze: ${err.message}`);
    return err.exitCode;
  }
  const message = String((err as Error)?.message ?? err).split("\n")[0];
  console.error(`bronze: internal error: ${message} (BRONZE_DEBUG=1 shows where)`);
  if (Deno.env.get("BRONZE_DEBUG") === "1") console.error((err as Error)?.stack ?? err);
  return EXIT_INTERNAL;
}

/** The path an OS error names: node's `path`, or the `op 'path'` Deno appends to its message. */
function osPathOf(err: unknown): string {
  const e = err as { path?: unknown; message?: unknown };
  if (typeof e?.path === "string") return e.path;
  // `link 'from' -> 'to'`: the name being made is the one refused.
  const m = /: [a-z]+ '([^']*)'(?: -> '([^']*)')?$/.exec(String(e?.message ?? ""));
  return m?.[2] ?? m?.[1] ?? "(a path the system did not name)";
}
