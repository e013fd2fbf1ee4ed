/**
 * `bronze repair`, through the CLI: a deleted file and a flipped byte are found by verify,
 * rebuilt from the lake and published only because the rebuilt bytes hash to the lineage's
 * checksums; a source that now gives other bytes is refused with nothing written; a file changed
 * by another writer during the repair is left alone (the replacement's precondition).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openStore } from "../../lib/blob/mod.ts";
import { type CatalogTarget, catalogTarget, poolOf } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv, lineageRows } from "../support/copy.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { s3Env, startGcsEmulator, startS3rver, withEnv } from "../support/servers.ts";
import { EXIT_MS, Output, within } from "../support/wait.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const LAKE = { network: "testnet", start: 1, count: 500, lcmVersion: 2 } as const;

async function copied(target: CatalogTarget, storage: string, env: Record<string, string> = {}) {
  const source = await syntheticLake(LAKE);
  const e = {
    ...copyEnv(target, source, storage),
    LEDGER_START: "1",
    LEDGER_END: "500",
    PARTITION_SIZE: "100",
    ...env,
  };
  const r = await runCli(["copy"], { env: e });
  assert.equal(r.code, 0, r.stderr);
  return { source, env: e };
}

async function catalogState(target: CatalogTarget) {
  const c = await target.open();
  try {
    const lineage = (await poolOf(c).query(
      "SELECT id, ledger_start, ledger_end, checksum, byte_size, storage_uri FROM _meta_lineage ORDER BY 2",
    )).rows;
    const changes = (await poolOf(c).query(
      "SELECT change_type, description FROM _meta_changes WHERE change_type = 'correction' ORDER BY id",
    )).rows;
    const repaired = (await poolOf(c).query(
      "SELECT lineage_id FROM _meta_quality WHERE metric_name = 'repaired' ORDER BY 1",
    )).rows.map((r: { lineage_id: number }) => r.lineage_id);
    return { lineage, changes, repaired };
  } finally {
    await c.close();
  }
}

/** Deletes one partition's file and flips a byte in another, through the store itself. */
async function damage(storage: string, keys: [string, string]) {
  const store = openStore(storage);
  try {
    await store.delete(keys[0]);
    const bytes = await store.get(keys[1]);
    bytes[bytes.length >> 1] ^= 0xff;
    const v = (await store.head(keys[1]))!.version;
    await store.putIfVersion(keys[1], bytes, v);
  } finally {
    await store.close?.();
  }
}

async function repairCycle(target: CatalogTarget, storage: string, env: Record<string, string>) {
  const rows = await lineageRows(target);
  await damage(storage, [rows[1].storage_path, rows[3].storage_path]);
  const before = await catalogState(target);

  const bad = await runCli(["verify"], { env });
  assert.equal(bad.code, 4, bad.stderr);
  assert.match(bad.stdout, /FAIL \[missing\] partition 101-200 .*: file not found\n/);
  assert.match(bad.stdout, /FAIL \[checksum\] partition 301-400 /);
  assert.match(bad.stdout, /the way back: `bronze repair --source <lake or RPC>`/);

  const fixed = await runCli(["repair", "--json"], { env });
  assert.equal(fixed.code, 0, fixed.stderr);
  const report = JSON.parse(fixed.stdout);
  assert.equal(report.checked, 5);
  assert.equal(report.sound, 3);
  assert.equal(report.repaired, 2);
  assert.deepEqual(
    report.partitions.map((
      p: { partition: { start: number }; problem: string; outcome: string },
    ) => [
      p.partition.start,
      p.problem,
      p.outcome,
    ]),
    [[101, "missing", "restored"], [301, "checksum", "replaced"]],
  );
  for (const p of report.partitions) assert.equal(p.rebuilt_checksum, p.recorded_checksum);

  const good = await runCli(["verify"], { env });
  assert.equal(good.code, 0, good.stdout + good.stderr);
  const after = await catalogState(target);
  assert.deepEqual(after.lineage, before.lineage, "lineage rows never change");
  assert.equal(after.changes.length, 2);
  for (const c of after.changes) assert.match(c.description, /^bronze repair (restored|replaced) /);
  assert.deepEqual(
    after.repaired,
    [rows[1], rows[3]].map((r) =>
      before.lineage.find((l: { ledger_start: number }) => l.ledger_start === r.ledger_start)!.id
    ),
  );
}

Deno.test("repair: a deleted and a corrupt file are rebuilt from the lake; verify then passes; lineage unchanged; two corrections", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const { env } = await copied(target, out.path);
  await repairCycle(target, out.path, env);
  // Nothing left to repair: a second run only checks.
  const again = await runCli(["repair"], { env });
  assert.equal(again.code, 0, again.stderr);
  assert.match(
    again.stdout,
    /^checked 5 partitions in \S+: 5 sound, 0 repaired, 0 not repaired\n$/,
  );
});

Deno.test("repair: a source that now gives other bytes is refused, exit 4, both checksums named, nothing written", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const { env } = await copied(target, out.path);
  const rows = await lineageRows(target);
  await damage(out.path, [rows[1].storage_path, rows[3].storage_path]);
  const corrupt = await Deno.readFile(join(out.path, rows[3].storage_path));
  const other = await syntheticLake({ ...LAKE, seed: 99 });
  const r = await runCli(["repair", "--source", other], { env });
  assert.equal(r.code, 4, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(
      `NOT REPAIRED \\[mismatch\\] partition 101-200 \\(\\S+\\): the source now gives other bytes \\(rebuilt sha256:[0-9a-f]{64}, lineage records ${
        rows[1].checksum
      }\\); nothing written`,
    ),
  );
  await assert.rejects(Deno.stat(join(out.path, rows[1].storage_path)), Deno.errors.NotFound);
  assert.deepEqual(await Deno.readFile(join(out.path, rows[3].storage_path)), corrupt);
  assert.equal((await catalogState(target)).changes.length, 0);
});

Deno.test("repair: a file changed by another writer while the repair runs is left alone (the replacement's precondition), exit 4", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const { env } = await copied(target, out.path);
  const rows = await lineageRows(target);
  const key = rows[2].storage_path;
  const path = join(out.path, key);
  const bytes = await Deno.readFile(path);
  bytes[100] ^= 0xff;
  await Deno.writeFile(path, bytes);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "repair"],
    env: { ...env, BRONZE_FAILPOINT: "before-replace:1:pause" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Output(child.stderr, "bronze repair");
  await stderr.until("[failpoint] paused at before-replace:1");
  // Another writer (another repair, a person) replaces the object meanwhile.
  const theirs = new TextEncoder().encode("someone else's bytes");
  const store = openStore(out.path);
  await store.putIfVersion(key, theirs, (await store.head(key))!.version);
  child.kill("SIGUSR1");
  const [status, stdout] = await within(
    Promise.all([child.status, new Response(child.stdout).text()]),
    "bronze repair exiting once resumed",
    EXIT_MS,
  );
  await stderr.end();
  assert.equal(status.code, 4);
  assert.match(
    stdout,
    /NOT REPAIRED \[raced\] partition 201-300 \(\S+\): changed by another writer while this repair ran; nothing written \(run repair again\)\n/,
  );
  assert.deepEqual(await Deno.readFile(path), theirs);
});

for (const kind of ["s3", "gs"] as const) {
  Deno.test(`repair on ${kind}:// storage (test server): a deleted and a corrupt object are brought back; verify passes`, async () => {
    await using target = await catalogTarget("postgres");
    const server = kind === "s3" ? await startS3rver(["repair"]) : await startGcsEmulator();
    try {
      const env = kind === "s3"
        ? s3Env((server as { endpoint: string }).endpoint)
        : { STORAGE_EMULATOR_HOST: (server as { host: string }).host };
      const storage = `${kind}://repair/run-${crypto.randomUUID().slice(0, 8)}`;
      const { env: e } = await copied(target, storage, env);
      await withEnv(env, () => repairCycle(target, storage, e));
    } finally {
      await server.stop();
    }
  });
}
