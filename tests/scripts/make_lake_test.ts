/**
 * scripts/make-lake.ts as a person runs it: --help, a bad option in one line, and a lake that
 * grows (--rate) object by object with its hash chain intact: a lake grown in two steps holds
 * exactly the bytes of one made at once, and options that would break the chain are refused.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { syntheticLake, tempDir } from "../support/lakes.ts";

const SCRIPT = new URL("../../scripts/make-lake.ts", import.meta.url).pathname;

async function makeLakeCli(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** Every file of a lake, by its key, with its bytes. */
async function lakeFiles(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(dir, path), new Uint8Array(await readFile(path)));
  }
  return files;
}

Deno.test("make-lake --help prints every option and exits 0; an unknown option is one line, exit 2", async () => {
  const help = await makeLakeCli("--help");
  assert.equal(help.code, 0, help.stderr);
  for (const option of ["--out", "--count", "--rate", "--seed", "--lcm-version"]) {
    assert.match(help.stdout, new RegExp(`^  ${option}`, "m"));
  }
  const bad = await makeLakeCli("--out", "x", "--bogus");
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim(), "make-lake: unknown option '--bogus' (--help lists the options)");
  const missing = await makeLakeCli("--count", "3");
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr.trim(), "make-lake: --out is required (--help lists the options)");
});

Deno.test("make-lake --rate grows a lake: kept ledgers are checked, new ones appended; the result equals a lake made at once", async () => {
  const spec = { network: "testnet", start: 1, lcmVersion: 2, seed: 7 } as const;
  const whole = await syntheticLake({ ...spec, count: 12 });
  await using dir = await tempDir("grow");
  const common = ["--out", dir.path, "--network", "testnet", "--seed", "7"];
  const first = await makeLakeCli(...common, "--count", "5");
  assert.equal(first.code, 0, first.stderr);
  const grown = await makeLakeCli(...common, "--count", "12", "--rate", "200");
  assert.equal(grown.code, 0, grown.stderr);
  assert.match(grown.stdout, /^kept the 5 ledgers already in .*; appending from 6 at 200\/s$/m);
  assert.match(grown.stdout, /^appended ledger 12$/m);
  assert.match(grown.stdout, /^done: .* ends at ledger 12$/m);
  assert.deepEqual(await lakeFiles(dir.path), await lakeFiles(whole));

  // Another seed would make ledger 6 whose previous hash is not ledger 5's: refused, nothing added.
  const other = await makeLakeCli(...common.slice(0, -1), "8", "--count", "14", "--rate", "200");
  assert.equal(other.code, 1);
  assert.match(
    other.stderr.trim(),
    /^make-lake: .*--1\.xdr\.zst is not what these options generate/,
  );
  assert.equal((await lakeFiles(dir.path)).size, 13, "the config and the 12 ledgers, nothing more");
});
