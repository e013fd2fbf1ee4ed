/**
 * Signals, through the CLI: SIGTERM is handled like Ctrl+C (commit the partition in hand, save the
 * checkpoint, exit 143); a second signal aborts at once, and the next run still ends complete.
 *
 * The signal lands at a known point, not after a guessed delay: a pause failpoint
 * (BRONZE_FAILPOINT=<name>:<n>:pause, lib/failpoint.ts) stops the copier there and says so on
 * stderr; the test signals when it reads that line.
 */
import assert from "node:assert/strict";
import { catalogTarget, poolOf } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { stderrWithoutSummary } from "../support/copy.ts";
import { EXIT_MS, within } from "../support/wait.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/**
 * Runs `bronze copy` paused at `failpoint`, and sends each signal once stderr shows its cue: the
 * pause line for the first, the copier's "received" line for a second.
 */
async function runPausedAndSignal(
  env: Record<string, string>,
  failpoint: string,
  signals: Deno.Signal[],
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "copy"],
    env: { ...env, BRONZE_FAILPOINT: `${failpoint}:pause` },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const cues = signals.map((_, i) =>
    i === 0 ? `[failpoint] paused at ${failpoint}\n` : `[copier] ${signals[i - 1]} received`
  );
  let text = "";
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      while (cues.length && text.includes(cues[0])) {
        cues.shift();
        child.kill(signals.shift()!);
      }
    }
    return await child.status;
  })();
  try {
    const what = `bronze copy (paused at ${failpoint}, then sent ${signals.join(", ")}) ending`;
    return { status: await within(reading, what, EXIT_MS), stderr: text };
  } catch (err) {
    child.kill("SIGKILL");
    throw new Error(`${(err as Error).message}; it said:\n${text}`);
  }
}

async function setup() {
  const source = await syntheticLake({
    network: "testnet",
    start: 1,
    count: 5000,
    lcmVersion: 2,
    ledgerBytes: 1024,
  });
  const target = await catalogTarget("postgres");
  const out = await tempDir();
  // One partition of all 5,000 ledgers, built by one worker.
  const env = {
    SOURCE_URL: source,
    STORAGE_URL: out.path,
    NETWORK: "testnet",
    LEDGER_START: "1",
    LEDGER_END: "5000",
    PARTITION_SIZE: "5000",
    CONCURRENCY: "1",
    PROGRESS_INTERVAL: "0",
    CATALOG_DSN: target.dsn!,
    STATE_DIR: target.stateDir,
  };
  return { env, target, out };
}

Deno.test("SIGTERM while ledger 1200 is in hand commits 1-1200, saves the checkpoint and exits 143; the next run continues from 1201", async () => {
  const { env, target, out } = await setup();
  await using _t = target;
  await using _o = out;
  const r = await runPausedAndSignal(env, "build-ledger:1200", ["SIGTERM"]);
  assert.equal(r.status.code, 143, r.stderr);
  assert.equal(
    stderrWithoutSummary(r.stderr, { ledgers: 1200, partitions: 1 }),
    [
      "[copier] starting from ledger 1",
      "[failpoint] paused at build-ledger:1200",
      "[copier] SIGTERM received: committing the partition in hand (send again to abort at once)",
      "[partition] committed range 1-1200",
      "[checkpoint] saved: last_committed=1200",
      "[copier] stopped on SIGTERM; run the same command again to resume",
      "",
    ].join("\n"),
  );
  const resumed = await runCli(["copy"], { env });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(
    stderrWithoutSummary(resumed.stderr, { ledgers: 3800, partitions: 1 }),
    [
      "[resume] checkpoint found: last_committed=1200",
      "[copier] continuing from ledger 1201",
      "[partition] committed range 1201-5000",
      "[checkpoint] saved: last_committed=5000",
      "[copier] complete",
      "",
    ].join("\n"),
  );
});

Deno.test("a second signal aborts at once (here: mid-commit, after publish); the next run adopts the stored file and completes", async () => {
  const { env, target, out } = await setup();
  await using _t = target;
  await using _o = out;
  // Paused for good after publishing: the first SIGINT cannot finish the commit; the second must
  // end the process anyway.
  const r = await runPausedAndSignal(env, "after-publish:1", ["SIGINT", "SIGINT"]);
  assert.equal(r.status.code, 130, r.stderr);
  assert.match(r.stderr, /\[warn\] copier: second SIGINT: aborting now\n$/);
  const resumed = await runCli(["copy"], { env });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(
    resumed.stderr,
    /^\[copier\] starting from ledger 1\n\[storage\] adopted \S+part-1-5000\.parquet: already stored with the same sha256\n/,
  );
  assert.match(stderrWithoutSummary(resumed.stderr), /\[copier\] complete\n$/);
  const c = await target.open();
  try {
    const { rows } = await poolOf(c).query(
      "SELECT min(ledger_start)::int AS lo, max(ledger_end)::int AS hi, sum(row_count)::int AS n FROM _meta_lineage",
    );
    assert.deepEqual(rows[0], { lo: 1, hi: 5000, n: 5000 });
  } finally {
    await c.close();
  }
});
