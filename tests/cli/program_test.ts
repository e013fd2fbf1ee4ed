/**
 * lib/cli/program.ts: every command is wired to its settings and texts, its help says what that
 * command takes, and asking for help is never an error.
 */
import assert from "node:assert/strict";
import type { Command } from "commander";
import { commandWords } from "../../lib/cli/command.ts";
import { buildProgram, CLI_COMMANDS } from "../../lib/cli/program.ts";
import { COMMANDS, type Key, SPECS } from "../../lib/settings/mod.ts";
import { runCli } from "../support/cli.ts";

function find(words: string[]): Command {
  let cmd = buildProgram(() => {});
  for (const w of words) cmd = cmd.commands.find((c) => c.name() === w)!;
  return cmd;
}

Deno.test("program: every command of COMMANDS runs, under its words, with exactly its flags", () => {
  assert.deepEqual(CLI_COMMANDS.map((c) => c.name).sort(), Object.keys(COMMANDS).sort());
  for (const c of CLI_COMMANDS) {
    const cmd = find(commandWords(c.name));
    assert.equal(cmd.summary(), c.summary);
    assert.deepEqual(
      cmd.options.map((o) => o.long),
      (COMMANDS[c.name].settings as readonly Key[]).map((k) => SPECS[k].flag),
    );
  }
});

Deno.test("program: --end's help says `latest` for copy only", () => {
  for (const c of CLI_COMMANDS) {
    const end = find(commandWords(c.name)).options.find((o) => o.long === "--end");
    if (!end) continue;
    if (c.name === "copy") assert.match(end.description, /latest/);
    else assert.doesNotMatch(end.description, /latest|copy/, c.name);
  }
});

Deno.test("program: `bronze help --help` and `bronze help copy --help` print help and exit 0", async () => {
  const top = await runCli(["help", "--help"]);
  assert.equal(top.code, 0, top.stderr);
  assert.match(top.stdout, /^Usage: bronze \[options\] \[command\]/);
  const copy = await runCli(["help", "copy", "--help"]);
  assert.equal(copy.code, 0, copy.stderr);
  assert.match(copy.stdout, /^Usage: bronze copy \[options\]/);
});
