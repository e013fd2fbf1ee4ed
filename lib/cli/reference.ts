/**
 * The README's reference sections, made from the code that defines them, so they cannot drift:
 * the commands (each one's summary), every setting (SPECS and COMMAND_SETTINGS) and every exit
 * code (EXIT_MEANINGS). `deno task readme` writes them into README.md between
 * `<!-- reference:NAME -->` and `<!-- /reference:NAME -->`; tests/cli/reference_test.ts holds the
 * README equal to them.
 */
import type { Command } from "commander";
import { EXIT_MEANINGS } from "../runtime/errors.ts";
import { COMMAND_REQUIRED, COMMAND_SETTINGS, type CommandName, SPECS } from "../settings.ts";
import { buildProgram } from "./program.ts";

export type SectionName = "commands" | "settings" | "exit-codes";

export const SECTIONS: Record<SectionName, () => string> = {
  commands: commandList,
  settings: settingsTable,
  "exit-codes": exitCodeTable,
};

/** `bronze <command>  # summary` for every command that runs, in help order, as a code block. */
function commandList(): string {
  const lines: [string, string][] = [];
  const walk = (cmd: Command, path: string[]) => {
    for (const sub of cmd.commands) {
      if (sub.name() === "help") continue;
      const here = [...path, sub.name()];
      if (sub.commands.length) walk(sub, here);
      else lines.push([["bronze", ...here].join(" "), sub.summary() || sub.description()]);
    }
  };
  walk(buildProgram(() => {}), []);
  const width = Math.max(...lines.map(([c]) => c.length)) + 2;
  return ["```", ...lines.map(([c, s]) => `${c.padEnd(width)}# ${s}`), "```"].join("\n");
}

/** "checkpointShow" → "checkpoint show": the words a user types. */
function commandWords(name: CommandName): string {
  return name.replace(/[A-Z]/g, (c) => ` ${c.toLowerCase()}`);
}

/** One row per setting: flag, variable, default, meaning and the commands that take it. */
function settingsTable(): string {
  const names = Object.keys(COMMAND_SETTINGS) as CommandName[];
  const rows = Object.entries(SPECS).map(([key, spec]) => {
    const takers = names.filter((n) => (COMMAND_SETTINGS[n] as readonly string[]).includes(key));
    const fallback = spec.shown ?? (spec.boolean ? "off" : spec.default?.({}));
    const needs = names.filter((n) =>
      (COMMAND_REQUIRED as Partial<Record<CommandName, readonly string[]>>)[n]?.includes(key)
    );
    return [
      code(spec.flag),
      spec.env ? code(spec.env) : "",
      fallback !== undefined
        ? code(String(fallback))
        : needs.length
        ? `required (${needs.map(commandWords).join(", ")})`
        : "none",
      spec.help,
      takers.length === names.length ? "all" : takers.map(commandWords).join(", "),
    ];
  });
  return table(["flag", "environment", "default", "meaning", "commands"], rows);
}

function exitCodeTable(): string {
  return table(["code", "meaning"], EXIT_MEANINGS.map(([c, m]) => [c, m]));
}

const code = (s: string) => `\`${s}\``;

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** `readme` with every reference section replaced by what the code says now. */
export function regenerate(readme: string): string {
  let out = readme;
  for (const [name, make] of Object.entries(SECTIONS)) {
    const [open, close] = markers(name);
    const at = out.indexOf(open);
    const end = out.indexOf(close);
    if (at < 0 || end < at) throw new Error(`README.md has no ${open} … ${close} section`);
    out = `${out.slice(0, at + open.length)}\n\n${make()}\n\n${out.slice(end)}`;
  }
  return out;
}

/** The text of section `name` in `readme` (between its markers), or null. */
export function sectionOf(readme: string, name: string): string | null {
  const [open, close] = markers(name);
  const at = readme.indexOf(open);
  const end = readme.indexOf(close);
  return at < 0 || end < at ? null : readme.slice(at + open.length, end).trim();
}

function markers(name: string): [string, string] {
  return [`<!-- reference:${name} -->`, `<!-- /reference:${name} -->`];
}
