/**
 * The README's set-up, as a machine with only Node/npm meets it: its two commands, run in a copy
 * of the project with a PATH that has no `deno`, work (the demo whole, the tests in a cheap form:
 * one quick test through the same task); and `.ci/run` ends in exactly the README's test command.
 */
import assert from "node:assert/strict";
import { cp, symlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { tempDir } from "../support/lakes.ts";
import { EXIT_MS, within } from "../support/wait.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const README = await Deno.readTextFile(join(ROOT, "README.md"));

/** The commands of the README's "Set up and run" block. */
function setUpCommands(): string[] {
  const section = README.slice(README.indexOf("## Set up and run"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1];
  return block.split("\n").filter((l) => l.trim()).map((l) => l.replace(/\s+#.*$/, "").trim());
}

const NPX_MISSING = await new Deno.Command("sh", { args: ["-c", "command -v npx"], stdout: "null" })
  .output().then((o) => o.success ? undefined : "npx is not on PATH", () => "no sh");
if (NPX_MISSING) console.log(`SKIPPED the fresh-machine test: ${NPX_MISSING}`);

/**
 * A PATH with every program this machine has but `deno`: a folder of links to the PATH's programs
 * (the first of each name), leaving out deno.
 */
async function pathWithoutDeno(dir: string): Promise<string> {
  const bin = join(dir, "bin");
  await Deno.mkdir(bin);
  const seen = new Set<string>(["deno"]);
  for (const folder of (Deno.env.get("PATH") ?? "").split(":")) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(folder)];
    } catch {
      continue;
    }
    for (const e of entries) {
      if (seen.has(e.name)) continue;
      seen.add(e.name);
      await symlink(join(folder, e.name), join(bin, e.name));
    }
  }
  return bin;
}

async function run(command: string, cwd: string, path: string) {
  const out = await within(
    new Deno.Command("bash", {
      args: ["-c", command],
      cwd,
      env: { PATH: path, NO_COLOR: "1", PROGRESS_INTERVAL: "0" },
      stdout: "piped",
      stderr: "piped",
    }).output(),
    command,
    EXIT_MS,
  );
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("the README's set-up: two npx commands, and .ci/run ends in its test command", async () => {
  const [demo, test] = setUpCommands();
  assert.deepEqual([demo, test], ["npx -y deno@2.9.6 task demo", "npx -y deno@2.9.6 task test"]);
  const ci = (await Deno.readTextFile(join(ROOT, ".ci/run"))).trim().split("\n");
  assert.equal(ci.at(-1), test, ".ci/run runs exactly the README's test command");
  assert.ok(!ci.some((l) => /^\s*deno\s/.test(l)), ".ci/run needs no deno on PATH");
});

Deno.test({
  name:
    "the README's set-up on a PATH without deno: the demo runs whole, and the test task runs (one quick test)",
  ignore: !!NPX_MISSING,
  async fn() {
    const [demo, test] = setUpCommands();
    await using dir = await tempDir("fresh");
    const clone = join(dir.path, "bronze");
    await Deno.mkdir(clone);
    // The project's files as a clone has them (and new ones not yet committed).
    const files = new TextDecoder().decode(
      (await new Deno.Command("git", {
        args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd: ROOT,
        stdout: "piped",
      }).output()).stdout,
    ).split("\0").filter((f) => f && f !== ".test-servers");
    for (const f of files) {
      await Deno.mkdir(dirname(join(clone, f)), { recursive: true });
      await cp(join(ROOT, f), join(clone, f)).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err; // deleted, not yet committed
      });
    }
    // What a first run downloads (npm packages, the test servers) is taken as downloaded already.
    await symlink(join(ROOT, "node_modules"), join(clone, "node_modules"));
    await symlink(join(ROOT, ".test-servers"), join(clone, ".test-servers"));
    const path = await pathWithoutDeno(dir.path);
    assert.equal((await run("command -v deno", clone, path)).code, 1, "deno is not on the PATH");

    const d = await run(demo, clone, path);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /bronze\.ledgers_lcm_raw \(testnet\/default\/v1\)\s+\d+-\d+\s+\d+/);
    assert.match(d.stdout, /catalog {16}holds \d+-\d+ contiguously: agrees/);

    // The same task as the README's, narrowed to one quick test (not this file's: it would run
    // itself again).
    const t = await run(`${test} --filter "rules: retire enforces"`, clone, path);
    assert.equal(t.code, 0, t.stdout + t.stderr);
    assert.match(t.stdout, /ok \| 1 passed \| 0 failed/);
  },
});
