/**
 * The README's reference sections, made from the code that defines them, so they cannot drift:
 * the commands (each one's summary), every setting (SPECS and COMMANDS) and every exit
 * code (EXIT_MEANINGS). `deno task readme` writes them into README.md between
 * `<!-- reference:NAME -->` and `<!-- /reference:NAME -->`; tests/cli/reference_test.ts holds the
 * README equal to them.
 */
import type { Command } from "commander";
import { EXIT_MEANINGS } from "../runtime/errors.ts";
import { type CommandName, COMMANDS, type Key, specOf, SPECS } from "../settings/mod.ts";
import { commandWords } from "./command.ts";
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

/**
 * One row per setting, and one more for each command's own spec of it (copy's --end): flag,
 * variable, default, meaning and the commands that take it so.
 */
function settingsTable(): string {
  const names = Object.keys(COMMANDS) as CommandName[];
  const rows: string[][] = [];
  for (const key of Object.keys(SPECS) as Key[]) {
    const takers = names.filter((n) => (COMMANDS[n].settings as readonly Key[]).includes(key));
    const specs = [SPECS[key], ...new Set(takers.map((n) => specOf(n, key)))];
    for (const spec of new Set(specs)) {
      const these = takers.filter((n) => specOf(n, key) === spec);
      if (these.length === 0) continue;
      const fallback = spec.shown ?? (spec.boolean ? "off" : spec.default?.({}));
      const needs = these.filter((n) =>
        (COMMANDS[n] as { required?: readonly Key[] }).required?.includes(key)
      );
      rows.push([
        code(spec.flag),
        spec.env ? code(spec.env) : "",
        fallback !== undefined
          ? code(String(fallback))
          : needs.length
          ? `required (${needs.map(words).join(", ")})`
          : "none",
        spec.help,
        these.length === names.length ? "all" : these.map(words).join(", "),
      ]);
    }
  }
  return table(["flag", "environment", "default", "meaning", "commands"], rows);
}

const words = (name: CommandName) => commandWords(name).join(" ");

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
