/**
 * lib/settings/commands.ts: what each command declares is what its settings check does, for every
 * command: unknown flags refused, required settings demanded, declared local paths probed before
 * any work, and a setting that means something else for a command parsed and shown its way.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { commandWords } from "../../lib/cli/command.ts";
import { ConfigError } from "../../lib/runtime/errors.ts";
import {
  type CommandName,
  COMMANDS,
  type Flags,
  type Key,
  optionName,
  resolveSettings,
  specOf,
  SPECS,
} from "../../lib/settings/mod.ts";
import { tempDir } from "../support/lakes.ts";

const NAMES = Object.keys(COMMANDS) as CommandName[];

function problemsOf(name: CommandName, flags: Flags, unknown: string[] = []): string[] {
  try {
    resolveSettings(name, flags, () => undefined, unknown);
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
}

for (const name of NAMES) {
  const command = COMMANDS[name] as {
    settings: readonly Key[];
    required?: readonly Key[];
    probes?: Partial<Record<Key, unknown>>;
  };
  const words = commandWords(name).join(" ");

  Deno.test(`commands: ${words} refuses a flag it does not take, with the others' problems`, () => {
    const foreign = (Object.keys(SPECS) as Key[]).find((k) =>
      !command.settings.some((s) => SPECS[s].flag === SPECS[k].flag)
    )!;
    const problems = problemsOf(name, {}, [SPECS[foreign].flag, "--bogus"]);
    assert.equal(problems[0], `unknown option ${SPECS[foreign].flag}`);
    assert.equal(problems[1], "unknown option --bogus");
  });

  for (const key of command.required ?? []) {
    Deno.test(`commands: ${words} requires ${SPECS[key].flag}`, () => {
      const spec = specOf(name, key);
      const required = `${spec.flag}${spec.env ? ` (${spec.env})` : ""} is required`;
      assert.ok(problemsOf(name, {}).includes(required));
      assert.ok(!problemsOf(name, { [optionName(key)]: "x" }).includes(required));
    });
  }

  for (const key of Object.keys(command.probes ?? {}) as Key[]) {
    Deno.test(`commands: ${words} checks ${SPECS[key].flag} on disk before it starts`, async () => {
      await using dir = await tempDir();
      await Deno.writeTextFile(join(dir.path, "afile"), "x");
      const bad = join(dir.path, "afile", "sub");
      const problems = problemsOf(name, { [optionName(key)]: bad });
      assert.ok(
        problems.some((p) => p.startsWith(`${SPECS[key].flag} ${bad}: `)),
        problems.join("\n"),
      );
      assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name), ["afile"]);
    });
  }
}

Deno.test("commands: the paths no command declares are never probed", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "afile"), "x");
  const bad = join(dir.path, "afile", "sub");
  // gc, say, takes --storage and --state-dir but reads what is there (nothing: nothing to do).
  assert.deepEqual(problemsOf("gc", { storage: bad, stateDir: bad }), []);
});

Deno.test("commands: copy's --end also takes latest, and says so; every other --end is a ledger", () => {
  for (const name of NAMES) {
    if (!(COMMANDS[name].settings as readonly Key[]).includes("end")) continue;
    const help = specOf(name, "end").help;
    if (name === "copy") assert.match(help, /`latest`/);
    else assert.equal(help, "last ledger of the range (inclusive)", name);
  }
});
