/**
 * A command as the command line shows and runs it: its texts and one plain function from its
 * resolved settings to an exit code. What settings it takes, and their rules, is its entry in
 * COMMANDS (lib/settings/commands.ts), by the same name.
 */
import type { CommandName, SettingsOf } from "../settings/mod.ts";

export interface CliCommand<C extends CommandName> {
  readonly name: C;
  /** One line, in `bronze --help` and the README's command list. */
  readonly summary: string;
  /** The first paragraph of `bronze <command> --help`. */
  readonly description: string;
  run(settings: SettingsOf<C>): Promise<number>;
}

/** Any one command (a union, so each keeps its own settings type). */
export type AnyCliCommand = { [C in CommandName]: CliCommand<C> }[CommandName];

/** The words a user types: "checkpointShow" → ["checkpoint", "show"]. */
export function commandWords(name: CommandName): string[] {
  return name.replace(/[A-Z]/g, (c) => ` ${c.toLowerCase()}`).split(" ");
}
