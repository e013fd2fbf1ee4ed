/**
 * Signals, through the CLI: SIGTERM is handled like Ctrl+C (commit the partition in hand, save the
 * checkpoint, exit 143); a second signal aborts at once, and the next run still ends complete.
 */
import assert from "node:assert/strict";
import { catalogTarget } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function runAndSignal(env: Record<string, string>, signals: Deno.Signal[], gapMs: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "copy"],
    env,
    stdout: "null",
    stderr: "piped",
  })
    .spawn();
  let text = "";
  for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    // The first progress line with ledgers read: the signal lands inside the one big partition.
    if (/^\[progress\] [1-9]\d*\/50000 ledgers/m.test(text) && signals.length) {
      for (const s of signals.splice(0)) {
        child.kill(s);
        await new Promise((r) => setTimeout(r, gapMs));
      }
    }
  }
  return { status: await child.status, stderr: text };
}

async function setup() {
  const source = await syntheticLake({
    network: "testnet",
    start: 1,
    count: 50000,
    lcmVersion: 2,
    ledgerBytes: 1024,
  });
  const target = await catalogTarget("postgres");
  const out = await tempDir();
  // One partition of all 50,000 ledgers: a signal half a second in lands in its middle.
  const env = {
    SOURCE_URL: source,
    STORAGE_URL: out.path,
    NETWORK: "testnet",
    LEDGER_START: "1",
    LEDGER_END: "50000",
    PARTITION_SIZE: "50000",
    CONCURRENCY: "1",
    PROGRESS_INTERVAL: "1",
    CATALOG_DSN: target.dsn!,
    STATE_DIR: target.stateDir,
  };
  return { env, target, out };
}

Deno.test("SIGTERM commits the partition in hand, saves the checkpoint and exits 143", async () => {
  const { env, target, out } = await setup();
  await using _t = target;
  await using _o = out;
  const r = await runAndSignal(env, ["SIGTERM"], 0);
  assert.equal(r.status.code, 143, r.stderr);
  const m = /\[partition\] committed range 1-(\d+)\n\[checkpoint\] saved: last_committed=(\d+)\n/
    .exec(r.stderr);
  assert.ok(m, r.stderr);
  assert.equal(m[1], m[2]);
  assert.ok(Number(m[1]) < 50000);
  assert.match(
    r.stderr,
    /\[copier\] SIGTERM received: committing the partition in hand \(send again to abort at once\)\n/,
  );
  assert.match(r.stderr, /\[copier\] stopped on SIGTERM; run the same command again to resume\n$/);
  // Not a terminal: progress came as plain lines.
  assert.match(
    r.stderr,
    /^\[progress\] \d+\/50000 ledgers \(\d+\.\d%\) {2}\d+ ledgers\/s {2}\d+\.\d MB\/s {2}ETA \S+$/m,
  );
  const resumed = await runCli(["copy"], { env });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(
    resumed.stderr,
    new RegExp(
      `^\\[resume\\] checkpoint found: last_committed=${
        m[1]
      }\\n\\[copier\\] continuing from ledger ${Number(m[1]) + 1}\\n`,
    ),
  );
});

Deno.test("a second signal aborts at once; the next run resumes and completes the range", async () => {
  const { env, target, out } = await setup();
  await using _t = target;
  await using _o = out;
  const r = await runAndSignal(env, ["SIGINT", "SIGINT"], 5);
  assert.equal(r.status.code, 130, r.stderr);
  assert.match(r.stderr, /\[warn\] copier: second SIGINT: aborting now\n$/);
  const resumed = await runCli(["copy"], { env });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /\[copier\] complete\n$/);
  const c = await target.open();
  try {
    const { rows } = await c.pool.query(
      "SELECT min(ledger_start)::int AS lo, max(ledger_end)::int AS hi, sum(row_count)::int AS n FROM _meta_lineage",
    );
    assert.deepEqual(rows[0], { lo: 1, hi: 50000, n: 50000 });
  } finally {
    await c.close();
  }
});
