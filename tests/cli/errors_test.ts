/**
 * What a user sees when something is wrong, through the CLI: one line naming the culprit, the
 * right exit code, never a stack trace, and nothing recorded.
 */
import assert from "node:assert/strict";
import { cp } from "node:fs/promises";
import { join } from "node:path";
import { runCli } from "../support/cli.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";

const LAKE = { network: "testnet", start: 1, count: 300, lcmVersion: 2 } as const;

Deno.test("bad paths are configuration errors (exit 2, one line each, every one at once) found before any work; nothing is created", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "afile"), "x");
  const r = await runCli([
    "copy",
    "--source",
    "./afile",
    "--storage",
    "./afile/sub",
    "--checkpoint",
    "./afile/ck.json",
    "--network",
    "testnet",
    "--start",
    "1",
    "--end",
    "10",
  ], { cwd: dir.path });
  assert.equal(r.code, 2, r.stderr);
  assert.equal(
    r.stderr,
    "bronze: 3 configuration problems: " +
      "--source ./afile: not a directory (expected a Galexie data lake); " +
      `--storage ./afile/sub: cannot create the directory: ${dir.path}/afile is not a directory; ` +
      "--checkpoint ./afile/ck.json: ./afile is not a directory\n",
  );
  // No state dir, no embedded catalog, no data dir: nothing was opened or recorded.
  assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name), ["afile"]);
});

Deno.test("an unknown flag is reported with the other problems; `copy --version` suggests --version-label and does not print the version", async () => {
  await using dir = await tempDir();
  const r = await runCli(["copy", "--version", "v2", "--concurrency", "0", "--sorce", "x"], {
    cwd: dir.path,
  });
  assert.equal(r.code, 2, r.stderr);
  assert.equal(
    r.stderr,
    "bronze: 6 configuration problems: unknown option --version (did you mean --version-label?); " +
      "unknown option --sorce (did you mean --source?); --source (SOURCE_URL) is required; " +
      "--concurrency must be between 1 and 64, got 0; --start (LEDGER_START) is required; " +
      "--end (LEDGER_END) is required (a ledger, or latest; or --follow)\n",
  );
  assert.equal(r.stdout, "");
  const v = await runCli(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^bronze \d+\.\d+\.\d+ \(git [0-9a-f]+|unknown\)\n$/);
});

Deno.test("an unexpected error is one line with a hint, exit 70; BRONZE_DEBUG=1 adds the stack", async () => {
  const source = await syntheticLake(LAKE);
  await using dir = await tempDir();
  const args = ["copy", "--source", source, "--network", "testnet", "--start", "1", "--end", "10"];
  const env = { BRONZE_FAILPOINT: "after-publish:1:throw", PROGRESS_INTERVAL: "0" };
  const r = await runCli(args, { cwd: dir.path, env });
  assert.equal(r.code, 70, r.stderr);
  const last = r.stderr.trimEnd().split("\n").at(-1);
  assert.equal(
    last,
    "bronze: internal error: failpoint after-publish:1 threw (BRONZE_DEBUG=1 shows where)",
  );
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  const debug = await runCli(args, { cwd: dir.path, env: { ...env, BRONZE_DEBUG: "1" } });
  assert.equal(debug.code, 70);
  assert.match(debug.stderr, /\n\s+at .*commit\.ts/);
});

Deno.test("coverage, verify and fleet in an empty directory say there is no catalog yet, and create none", async () => {
  await using dir = await tempDir();
  for (const args of [["coverage"], ["verify"], ["fleet", "--json"]]) {
    const r = await runCli(args, { cwd: dir.path });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      r.stderr,
      "bronze: no catalog yet in ./state (no embedded catalog at state/catalog): `bronze copy` or " +
        "`bronze migrate` makes one; or point --state-dir or --catalog at yours\n",
    );
  }
  assert.deepEqual([...Deno.readDirSync(dir.path)], []);
});

Deno.test("storage inside the source lake: a --storage there is a configuration error with the others; without one, the default ./data inside it is refused once known (exit 2), nothing written", async () => {
  await using dir = await tempDir("in-lake");
  const lake = join(dir.path, "lake");
  await cp(await syntheticLake(LAKE), lake, { recursive: true });
  const given = await runCli([
    "copy",
    "--source",
    lake,
    "--storage",
    `${lake}/bronze`,
    "--network",
    "testnet",
    "--start",
    "1",
    "--end",
    "100",
    "--state-dir",
    join(dir.path, "state"),
  ]);
  assert.equal(given.code, 2, given.stderr);
  assert.equal(
    given.stderr,
    `bronze: --storage ${lake}/bronze is inside the source lake, --source ${lake}: ` +
      "partitions would be written into the lake; store them outside it\n",
  );
  // In the lake, with the default storage: ./data is the lake's.
  const inLake = await runCli(
    ["copy", "--source", ".", "--network", "testnet", "--start", "1", "--end", "100"],
    { cwd: lake, env: { STATE_DIR: join(dir.path, "state") } },
  );
  assert.equal(inLake.code, 2, inLake.stderr);
  assert.match(
    inLake.stderr,
    /\nbronze: storage \.\/data \(the dataset's, as no --storage is given\) is inside the source lake, --source \.: partitions would be written into the lake; give --storage outside it\n$/,
  );
  assert.equal(await exists(join(lake, "data")), false, "nothing written into the lake");
});

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
