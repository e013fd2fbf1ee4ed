/**
 * `copy --fleet`, through the CLI, with separate processes (separate state dirs) sharing one
 * PostgreSQL catalog and one storage, as copiers on separate VMs would.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openStore } from "../../lib/blob/mod.ts";
import { rangeOfKey } from "../../lib/table/layout.ts";
import { type CatalogTarget, catalogTarget } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv, lineageRows } from "../support/copy.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { seededRandom } from "../support/random.ts";
import { EXIT_MS, finish, Output, within } from "../support/wait.ts";
import { s3Env, startGcsEmulator, startS3rver, withEnv } from "../support/servers.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const SIZE = 20;

const lake = (count: number) =>
  syntheticLake({
    network: "testnet",
    start: 1,
    count,
    lcmVersion: 2,
    ledgerBytes: 1024,
    seed: 11,
  });

/** The environment of fleet copier `n`: its own state dir, the shared catalog and storage. */
function fleetEnv(
  target: CatalogTarget,
  source: string,
  storage: string,
  stateRoot: string,
  n: number,
  end: number,
): Record<string, string> {
  return {
    ...copyEnv(target, source, storage),
    STATE_DIR: join(stateRoot, `vm-${n}`),
    LEDGER_START: "1",
    LEDGER_END: String(end),
    PARTITION_SIZE: String(SIZE),
    FLEET: "true",
    POLL_INTERVAL: "200ms",
    CONCURRENCY: "1",
  };
}

function spawn(env: Record<string, string>, args: string[] = []): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "copy", ...args],
    env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** The lineage a single clean (non-fleet) run of the same range writes: "start-end checksum". */
async function cleanLineage(source: string, end: number): Promise<string[]> {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const r = await runCli(["copy"], {
    env: {
      ...copyEnv(target, source, out.path),
      LEDGER_START: "1",
      LEDGER_END: String(end),
      PARTITION_SIZE: String(SIZE),
    },
  });
  assert.equal(r.code, 0, r.stderr);
  return (await lineageRows(target)).map((x) => `${x.ledger_start}-${x.ledger_end} ${x.checksum}`);
}

/** Every partition file in storage is one the catalog records: nothing left behind, nothing twice. */
async function assertNoOrphans(storage: string, target: CatalogTarget) {
  const recorded = new Set((await lineageRows(target)).map((r) => r.storage_path));
  const store = openStore(storage);
  try {
    for await (const obj of store.list("")) {
      if (rangeOfKey(obj.key)) assert.ok(recorded.has(obj.key), `orphan ${obj.key}`);
    }
  } finally {
    await store.close?.();
  }
}

Deno.test("four fleet copiers on 100 cells, SIGKILLed at random and restarted: all exit 0, lineage equals a clean run's, no orphans, the work was shared", async () => {
  const END = 100 * SIZE;
  const source = await lake(END);
  const clean = await cleanLineage(source, END);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await using states = await tempDir();
  // Seeded moments: the seed is printed, and BRONZE_TEST_SEED replays them.
  const random = seededRandom("fleet_test SIGKILLs");
  const committedBy = [0, 0, 0, 0];
  const kills = [0, 0, 0, 0];
  // Each "VM" runs its copier until it exits 0; a supervisor (this loop) restarts it after each
  // SIGKILL, as systemd's Restart=on-failure would. Up to three kills per VM, at random moments.
  await Promise.all([0, 1, 2, 3].map(async (n) => {
    const env = fleetEnv(target, source, out.path, states.path, n, END);
    for (;;) {
      const child = spawn(env);
      const kill = kills[n] < 3
        ? setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* already done */ }
        }, 800 + random() * 2500)
        : undefined;
      const r = await finish(child);
      clearTimeout(kill);
      committedBy[n] += r.stderr.match(/^\[partition\] committed range /gm)?.length ?? 0;
      if (r.status.signal === "SIGKILL") {
        kills[n]++;
        continue;
      }
      assert.equal(r.status.code, 0, `copier ${n}:\n${r.stderr}`);
      assert.match(r.stderr, /\[fleet\] every cell of 1-2000 is committed\n/);
      return;
    }
  }));
  const fleet = (await lineageRows(target)).map((x) =>
    `${x.ledger_start}-${x.ledger_end} ${x.checksum}`
  );
  assert.deepEqual(fleet, clean);
  await assertNoOrphans(out.path, target);
  console.log(`cells committed per copier: ${committedBy.join(", ")}; kills: ${kills.join(", ")}`);
  for (const [n, count] of committedBy.entries()) {
    assert.ok(count > 0, `copier ${n} committed no cell`);
  }
  // No claim is left behind by the dead or the finished.
  const c = await target.open();
  try {
    const { rows } = await (await import("../support/catalogs.ts")).poolOf(c).query(
      "SELECT count(*)::int AS n FROM _meta_copier_claims",
    );
    assert.equal(rows[0].n, 0);
  } finally {
    await c.close();
  }
});

Deno.test("a fleet copier waits for a cell held by a live copier, says so, and takes it over (adopting its published file) once that copier dies", async () => {
  const END = 10 * SIZE;
  const source = await lake(END);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await using states = await tempDir();
  // Copier A publishes its first cell, then hangs before the catalog commit, holding the claim.
  const a = spawn({
    ...fleetEnv(target, source, out.path, states.path, 0, END),
    BRONZE_FAILPOINT: "after-publish:1:pause",
  });
  const aErr = new Output(a.stderr, "copier A");
  await aErr.until("[failpoint] paused at after-publish:1");
  const held = (await aErr.until(/\[fleet\] copier (\S+) joins/))[1];
  // Copier B copies every other cell, then waits for A's.
  const b = spawn(fleetEnv(target, source, out.path, states.path, 1, END));
  const bErr = new Output(b.stderr, "copier B");
  await bErr.until(/\[fleet\] waiting for 1 cell held by /);
  assert.match(
    bErr.text,
    new RegExp(
      `\\[fleet\\] waiting for 1 cell held by ${held} \\(host \\S+, pid \\d+: 1-20\\); looking again at each release, and every 200ms\\n`,
    ),
  );
  a.kill("SIGKILL");
  await within(a.status, "copier A exiting on SIGKILL");
  const bText = await bErr.end(EXIT_MS);
  assert.equal((await b.status).code, 0, bText);
  assert.match(
    bText,
    /\[storage\] adopted \S+part-1-20\.parquet: already stored with the same sha256\n/,
  );
  assert.match(bText, /\[fleet\] every cell of 1-200 is committed\n/);
  assert.equal((await lineageRows(target)).length, 10);
});

Deno.test("bronze fleet --json while two copiers hold cells; SIGTERM commits the cells in hand (exit 143) and a restart completes the range", async () => {
  const END = 6 * SIZE;
  const source = await lake(END);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await using states = await tempDir();
  const copiers = [0, 1].map((n) => {
    const child = spawn({
      ...fleetEnv(target, source, out.path, states.path, n, END),
      BRONZE_FAILPOINT: "build-ledger:5:pause",
    });
    return { child, stderr: new Output(child.stderr, `copier ${n}`) };
  });
  for (const c of copiers) await c.stderr.until("[failpoint] paused at build-ledger:5");
  const r = await runCli(["fleet", "--json", "--catalog", target.dsn!]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.fleets.length, 1);
  const [f] = report.fleets;
  assert.deepEqual(Object.keys(f), [
    "dataset",
    "range",
    "liveness_visible",
    "cells",
    "ledgers_per_second",
    "eta_seconds",
    "copiers",
  ]);
  assert.deepEqual(f.range, { start: 1, end: END, partition_size: SIZE });
  assert.deepEqual(f.cells, { total: 6, committed: 0, claimed: 2, left: 4, ledgers_left: END });
  assert.equal(f.ledgers_per_second, null);
  assert.equal(f.liveness_visible, true);
  assert.equal(f.copiers.length, 2);
  for (const c of f.copiers) {
    assert.deepEqual(Object.keys(c), ["copier_id", "host", "pid", "since", "held"]);
    assert.match(c.copier_id, /^\S+-\d+$/);
    assert.equal(c.held.length, 1);
  }
  const text = await runCli(["fleet", "--catalog", target.dsn!]);
  assert.match(
    text.stdout,
    /: fleet on 1-120 in cells of 20\n {2}cells {5}6: 0 committed \(0\.0%\), 2 claimed, 4 left\n/,
  );
  for (const c of copiers) c.child.kill("SIGTERM");
  for (const c of copiers) {
    const text = await c.stderr.end(EXIT_MS);
    assert.equal((await c.child.status).code, 143, text);
    assert.match(text, /\[partition\] committed range \d+-\d+\n/);
  }
  const rest = await finish(spawn(fleetEnv(target, source, out.path, states.path, 0, END)));
  assert.equal(rest.status.code, 0, rest.stderr);
  const rows = await lineageRows(target);
  assert.equal(rows.reduce((n, x) => n + x.row_count, 0), END);
});

Deno.test("a waiting fleet copier names exactly the cells it waits for (not one committed and about to be released), and exits as soon as the last one is committed, not at its next poll", async () => {
  const END = 3 * SIZE;
  const source = await lake(END);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await using states = await tempDir();
  const env = (n: number) => fleetEnv(target, source, out.path, states.path, n, END);
  // A holds 1-20, committed, paused before its release; C holds 21-40, published, not committed;
  // B (started last) polls once an hour: only a release can wake it in time.
  const started: Deno.ChildProcess[] = [];
  const start = (who: string, e: Record<string, string>) => {
    const child = spawn(e);
    started.push(child);
    return { child, stderr: new Output(child.stderr, who) };
  };
  try {
    const a = start("copier A", { ...env(0), BRONZE_FAILPOINT: "after-catalog:1:pause" });
    await a.stderr.until("[failpoint] paused at after-catalog:1");
    const c = start("copier C", { ...env(2), BRONZE_FAILPOINT: "after-publish:1:pause" });
    await c.stderr.until("[failpoint] paused at after-publish:1");
    const b = start("copier B", { ...env(1), POLL_INTERVAL: "1h" });
    const cId = (await c.stderr.until(/\[fleet\] copier (\S+) joins/))[1];
    await b.stderr.until(/\[fleet\] waiting for .*\n/);
    assert.match(
      b.stderr.text,
      new RegExp(
        `\\[fleet\\] waiting for 1 cell held by ${cId} \\(host \\S+, pid \\d+: 21-40\\); looking again at each release, and every 1h00m\\n`,
      ),
    );
    assert.doesNotMatch(b.stderr.text, /: 1-20\)/);
    a.child.kill("SIGUSR1");
    c.child.kill("SIGUSR1");
    // Bounded: B wakes on C's release; were it to poll, it would sleep for an hour.
    const status = await within(b.child.status, "copier B exiting once the last cell is committed");
    assert.equal(status.code, 0, b.stderr.text);
    assert.match(await b.stderr.end(), /\[fleet\] every cell of 1-60 is committed\n/);
    for (const x of [a, c]) {
      assert.equal(
        (await within(x.child.status, `${x.stderr.who} exiting`)).code,
        0,
        x.stderr.text,
      );
    }
  } finally {
    for (const child of started) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
    }
  }
  assert.equal((await lineageRows(target)).length, 3);
});

Deno.test("a fleet copier's metrics: the catalog's contiguous coverage from the fleet's start at once, before its first commit", async () => {
  const END = 6 * SIZE;
  const source = await lake(END);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await using states = await tempDir();
  const env = fleetEnv(target, source, out.path, states.path, 0, END);
  const before = await runCli(["copy", "--start", "1", "--end", String(2 * SIZE)], {
    env: { ...env, FLEET: "false" },
  });
  assert.equal(before.code, 0, before.stderr);
  const child = spawn({ ...env, BRONZE_FAILPOINT: "build-ledger:5:pause" }, [
    "--metrics-addr",
    "127.0.0.1:0",
  ]);
  const stderr = new Output(child.stderr, "the fleet copier");
  try {
    await stderr.until("[failpoint] paused at build-ledger:5");
    const url = (await stderr.until(/\[metrics\] serving (http:\/\/\S+)\/metrics/))[1];
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, new RegExp(`^bronze_last_committed_ledger\\{[^}]*\\} ${2 * SIZE}$`, "m"));
    assert.match(metrics, /^bronze_partitions_committed_total\{[^}]*\} 0$/m);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
});

for (const kind of ["s3", "gs"] as const) {
  Deno.test(`two fleet copiers into ${kind}:// storage (test server): lineage equals a clean run's, no orphans`, async () => {
    const END = 20 * SIZE;
    const source = await lake(END);
    const clean = await cleanLineage(source, END);
    await using target = await catalogTarget("postgres");
    await using states = await tempDir();
    const server = kind === "s3" ? await startS3rver(["fleet"]) : await startGcsEmulator();
    try {
      const storage = `${kind}://fleet/run-${crypto.randomUUID().slice(0, 8)}`;
      const env = kind === "s3"
        ? s3Env((server as { endpoint: string }).endpoint)
        : { STORAGE_EMULATOR_HOST: (server as { host: string }).host };
      const runs = await Promise.all(
        [0, 1].map((n) =>
          finish(spawn({ ...fleetEnv(target, source, storage, states.path, n, END), ...env }))
        ),
      );
      for (const r of runs) assert.equal(r.status.code, 0, r.stderr);
      const got = (await lineageRows(target)).map((x) =>
        `${x.ledger_start}-${x.ledger_end} ${x.checksum}`
      );
      assert.deepEqual(got, clean);
      await withEnv(env, () => assertNoOrphans(storage, target));
    } finally {
      await server.stop();
    }
  });
}

Deno.test("--fleet is refused on the embedded catalog, in one line, exit 2", async () => {
  await using dir = await tempDir();
  const source = await lake(100);
  const r = await runCli(
    ["copy", "--fleet", "--source", source, "--network", "testnet", "--start", "1", "--end", "100"],
    { cwd: dir.path },
  );
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    "bronze: --fleet needs a PostgreSQL catalog (--catalog or CATALOG_DSN): the embedded catalog " +
      "serves the processes of one machine, a fleet spans many\n",
  );
});
