/**
 * The README's Quick start, run as written in a fresh copy of the project: every command succeeds
 * and prints the `[...]` lines the README shows, in order. (The summary line's sizes and times
 * differ from run to run: its counts are compared.)
 */
import assert from "node:assert/strict";
import { cp, symlink } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../support/lakes.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

interface Step {
  command: string;
  expect: string[];
}

/** The commands of the Quick start's first sh block, each with the log lines shown after it. */
function quickStart(readme: string): Step[] {
  const section = readme.slice(readme.indexOf("## Quick start"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1];
  const steps: Step[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("deno ")) steps.push({ command: line, expect: [] });
    else if (line.startsWith("[")) steps.at(-1)!.expect.push(line);
  }
  return steps;
}

const SUMMARY = /^\[copier\] copied (\d+) ledgers in (\d+) partitions: .* MB\/s\)$/;

function sameLine(got: string | undefined, want: string): boolean {
  const w = SUMMARY.exec(want);
  const g = got === undefined ? null : SUMMARY.exec(got);
  return w ? g !== null && g[1] === w[1] && g[2] === w[2] : got === want;
}

Deno.test("README Quick start, as written in a fresh copy of the project, prints what the README shows", async () => {
  const steps = quickStart(await Deno.readTextFile(join(ROOT, "README.md")));
  assert.ok(steps.length >= 4, "the Quick start has its commands");
  await using clone = await tempDir("bronze-readme-");
  for (const entry of ["deno.json", "deno.lock", "main.ts", "lib", "scripts", "migrations"]) {
    await cp(join(ROOT, entry), join(clone.path, entry), { recursive: true });
  }
  await symlink(join(ROOT, "node_modules"), join(clone.path, "node_modules"));
  for (const step of steps) {
    const out = await new Deno.Command("bash", {
      args: ["-c", step.command],
      cwd: clone.path,
      // Periodic progress lines would depend on the machine's speed.
      env: { PROGRESS_INTERVAL: "0", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `${step.command}\n${stderr}`);
    const got = stderr.split("\n").filter((l) => l.startsWith("["));
    assert.equal(got.length, step.expect.length, `${step.command}\n${got.join("\n")}`);
    step.expect.forEach((want, i) =>
      assert.ok(
        sameLine(got[i], want),
        `${step.command}: line ${i + 1}\n got: ${got[i]}\nwant: ${want}`,
      )
    );
  }
});
