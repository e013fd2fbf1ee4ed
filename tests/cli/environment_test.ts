/**
 * The machine's refusals are not bugs: storage or the state dir on a full filesystem (a tmpfs of a
 * few hundred kilobytes), a read-only folder inside storage. Each is one line naming the path and
 * what to do, exit 74; nothing is half-recorded (every lineage row's file verifies, no temp file
 * is left); and once there is room (the tmpfs grown in place, the folder writable again) the same
 * command resumes and ends with the lineage a clean run records.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { catalogTarget } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv, lineageRows } from "../support/copy.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { MOUNTS_ABSENT, readOnly, tempFilesUnder, tmpfs } from "../support/mounts.ts";

const LAKE = {
  network: "testnet",
  start: 1,
  count: 500,
  lcmVersion: 2,
  ledgerBytes: 4096,
  seed: 9,
} as const;
const RANGE = ["--start", "1", "--end", "500", "--partition-size", "100"];
const ignore = MOUNTS_ABSENT !== false;
if (MOUNTS_ABSENT) console.log(`SKIPPED full-disk and read-only tests: ${MOUNTS_ABSENT}`);

/** The checksums a clean run records for LAKE, partition by partition. */
async function cleanChecksums(): Promise<string[]> {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const r = await runCli(["copy", ...RANGE], {
    env: copyEnv(target, await syntheticLake(LAKE), out.path),
  });
  assert.equal(r.code, 0, r.stderr);
  return (await lineageRows(target)).map((x) => x.checksum);
}

/** stderr's `bronze:` lines: the one error line a failed run ends with. */
const errorLines = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("bronze:"));

Deno.test({
  name:
    "storage on a full disk: one line naming the file, exit 74; nothing half-recorded; the rerun resumes once there is room",
  ignore,
  async fn() {
    const clean = await cleanChecksums();
    await using target = await catalogTarget("postgres");
    await using disk = await tmpfs(256 << 10); // two partitions and their manifests, not three
    const env = copyEnv(target, await syntheticLake(LAKE), disk.path);
    const full = await runCli(["copy", ...RANGE], { env });
    assert.equal(full.code, 74, full.stderr);
    const [line, ...more] = errorLines(full.stderr);
    assert.deepEqual(more, [], full.stderr);
    assert.match(
      line,
      new RegExp(
        `^bronze: ${disk.path}/testnet/default/v1/ledgers_lcm_raw/range=\\d+-\\d+/` +
          `(part-\\d+-\\d+\\.parquet|_manifest\\.json): no space left on device: free space there ` +
          `and run again \\(the run resumes where it stopped\\)$`,
      ),
    );
    assert.ok(full.stderr.trimEnd().endsWith(line), "the error line is the last word");
    // Nothing half-recorded: what the catalog holds is stored whole, and no temp file is left.
    const held = await lineageRows(target);
    assert.ok(held.length >= 1 && held.length < clean.length, `${held.length} partitions held`);
    assert.deepEqual(tempFilesUnder(disk.path), []);
    const verified = await runCli(["verify"], { env });
    assert.equal(verified.code, 0, verified.stderr + verified.stdout);

    await disk.resize(8 << 20);
    const resumed = await runCli(["copy", ...RANGE], { env });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(
      resumed.stderr,
      new RegExp(`^\\[copier\\] continuing from ledger ${held.at(-1)!.ledger_end + 1}`, "m"),
    );
    assert.deepEqual((await lineageRows(target)).map((x) => x.checksum), clean);
  },
});

Deno.test({
  name:
    "the state dir on a full disk: one line naming the file, exit 74; the rerun resumes once there is room",
  ignore,
  async fn() {
    const clean = await cleanChecksums();
    await using target = await catalogTarget("postgres");
    await using out = await tempDir();
    await using state = await tmpfs(48 << 10); // the checkpoint fits, a partition being built not
    const env = {
      ...copyEnv(target, await syntheticLake(LAKE), out.path),
      STATE_DIR: state.path,
    };
    const full = await runCli(["copy", ...RANGE], { env });
    assert.equal(full.code, 74, full.stderr);
    const [line, ...more] = errorLines(full.stderr);
    assert.deepEqual(more, [], full.stderr);
    assert.match(
      line,
      new RegExp(
        `^bronze: ${state.path}/tmp/part-\\d+-[^ ]+: no space left on device: free space there ` +
          `and run again \\(the run resumes where it stopped\\)$`,
      ),
    );
    assert.deepEqual(await lineageRows(target), []);
    assert.deepEqual(tempFilesUnder(out.path), []);

    await state.resize(16 << 20);
    const resumed = await runCli(["copy", ...RANGE], { env });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual((await lineageRows(target)).map((x) => x.checksum), clean);
    const checkpoint = JSON.parse(await Deno.readTextFile(join(state.path, "checkpoint.json")));
    assert.equal(checkpoint.last_committed_ledger, 500);
  },
});

Deno.test({
  name:
    "a read-only folder inside storage: one line saying that folder is not writable, exit 74; writable again, the rerun completes",
  ignore,
  async fn() {
    const clean = await cleanChecksums();
    await using target = await catalogTarget("postgres");
    await using out = await tempDir();
    const env = copyEnv(target, await syntheticLake(LAKE), out.path);
    const folder = join(out.path, "testnet/default/v1/ledgers_lcm_raw/range=201-300");
    {
      await using _ro = await readOnly(folder);
      const refused = await runCli(["copy", ...RANGE], { env });
      assert.equal(refused.code, 74, refused.stderr);
      assert.deepEqual(errorLines(refused.stderr), [
        `bronze: folder ${folder} is not writable (read-only file system): mount it read-write ` +
        `or choose another location, and run again`,
      ]);
      assert.deepEqual((await lineageRows(target)).map((x) => x.ledger_end), [100, 200]);
    }
    const resumed = await runCli(["copy", ...RANGE], { env });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual((await lineageRows(target)).map((x) => x.checksum), clean);
    assert.deepEqual(tempFilesUnder(out.path), []);
  },
});

Deno.test({
  name:
    "the embedded catalog on a full disk: one line naming it, exit 74, nothing left half-made; the rerun creates it once there is room",
  ignore,
  async fn() {
    await using out = await tempDir();
    await using state = await tmpfs(2 << 20); // the embedded catalog needs some 40 MB
    const env = {
      SOURCE_URL: await syntheticLake(LAKE),
      STORAGE_URL: out.path,
      NETWORK: "testnet",
      STATE_DIR: state.path,
      PROGRESS_INTERVAL: "0",
    };
    const full = await runCli(["copy", ...RANGE], { env });
    assert.equal(full.code, 74, full.stderr);
    assert.deepEqual(errorLines(full.stderr), [
      `bronze: ${state.path}/catalog: no space left on device: free space there and run again ` +
      `(the run resumes where it stopped)`,
    ]);
    assert.deepEqual(
      [...Deno.readDirSync(state.path)].map((e) => e.name).filter((n) =>
        n.includes("catalog.initdb")
      ),
      [],
      "no half-made catalog left to fill the disk",
    );
    await state.resize(96 << 20);
    const resumed = await runCli(["copy", ...RANGE], { env });
    assert.equal(resumed.code, 0, resumed.stderr);
    const coverage = JSON.parse((await runCli(["coverage", "--json"], { env })).stdout);
    assert.equal(coverage.datasets[0].partitions, 5);
  },
});
