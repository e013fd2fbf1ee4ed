/**
 * The seed's whole example session, end to end through the CLI: a first run of 1-30000, a run of
 * 1-50000 interrupted with Ctrl+C in its last partition, the resume to 50000, and the seed's psql
 * query listing every range with its checksum. Then the same, scaled down, on real testnet ledgers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { copy, type CopyOptions } from "../../lib/copy/run.ts";
import { createLogger, memoryLogger } from "../../lib/runtime/log.ts";
import { catalogTarget } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { SAMPLES, SAMPLES_ABSENT, syntheticLake, tempDir } from "../support/lakes.ts";
import { EXIT_MS, within } from "../support/wait.ts";
import {
  copyEnv,
  copyOptions,
  lineageRows,
  psqlLines,
  SEED_QUERY,
  stderrWithoutSummary,
  withoutSummary,
} from "../support/copy.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Starts `bronze copy`, calling onLine for each stderr line as it arrives. */
function spawnCopy(
  env: Record<string, string>,
  onLine: (line: string, child: Deno.ChildProcess) => void,
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "copy", "--concurrency", "1"],
    env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const done = (async () => {
    let buffer = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        lines.push(line);
        onLine(line, child);
      }
    }
    return { lines, status: await child.status };
  })();
  return within(done, "bronze copy ending", EXIT_MS).catch((err) => {
    child.kill("SIGKILL");
    throw new Error(`${err.message}; it said:\n${lines.join("\n")}`);
  });
}

Deno.test("the seed's example session: 1-30000, 1-50000 interrupted by SIGINT in its last partition, resume to 50000", async () => {
  const source = await syntheticLake({
    network: "testnet",
    start: 1,
    count: 50000,
    lcmVersion: 2,
    ledgerBytes: 1024,
  });
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const env = copyEnv(target, source, out.path);

  const first = await runCli(["copy"], { env: { ...env, LEDGER_START: "1", LEDGER_END: "30000" } });
  assert.equal(first.code, 0, first.stderr);
  assert.ok(
    first.stderr.startsWith(
      "[copier] starting from ledger 1\n[partition] committed range 1-10000\n",
    ),
  );

  // Ctrl+C inside the last partition (40001-50000): the one build worker pauses at its 15,000th
  // ledger (45000), and the signal goes once 30001-40000 is committed and checkpointed. A delay
  // after the checkpoint line raced the build, which overlaps the commit and can finish first.
  let seen = 0;
  const second = await spawnCopy(
    {
      ...env,
      LEDGER_START: "1",
      LEDGER_END: "50000",
      BRONZE_FAILPOINT: "build-ledger:15000:pause",
    },
    (line, child) => {
      if (
        line === "[checkpoint] saved: last_committed=40000" ||
        line === "[failpoint] paused at build-ledger:15000"
      ) {
        if (++seen === 2) child.kill("SIGINT");
      }
    },
  );
  second.lines = second.lines.filter((l) => !l.startsWith("[failpoint]"));
  assert.equal(second.status.code, 130, second.lines.join("\n"));
  const partial = /^\[partition\] committed range 40001-(\d+)$/.exec(
    second.lines.filter((l) => l.startsWith("[partition]")).at(-1)!,
  );
  assert.ok(partial, second.lines.join("\n"));
  const n = Number(partial[1]);
  assert.ok(n > 40001 && n < 50000, `interrupted inside the last partition, at ${n}`);
  assert.deepEqual(withoutSummary(second.lines), [
    "[resume] checkpoint found: last_committed=30000",
    "[copier] continuing from ledger 30001",
    "[partition] committed range 30001-40000",
    "[checkpoint] saved: last_committed=40000",
    "[copier] SIGINT received: committing the partition in hand (send again to abort at once)",
    `[partition] committed range 40001-${n}`,
    `[checkpoint] saved: last_committed=${n}`,
    "[copier] stopped on SIGINT; run the same command again to resume",
  ]);

  const third = await runCli(["copy", "--concurrency", "1"], {
    env: { ...env, LEDGER_START: "1", LEDGER_END: "50000" },
  });
  assert.equal(third.code, 0, third.stderr);
  assert.equal(
    stderrWithoutSummary(third.stderr, { ledgers: 50000 - n, partitions: 1 }),
    [
      `[resume] checkpoint found: last_committed=${n}`,
      `[copier] continuing from ledger ${n + 1}`,
      `[partition] committed range ${n + 1}-50000`,
      "[checkpoint] saved: last_committed=50000",
      "[copier] complete",
      "",
    ].join("\n"),
  );

  const rows = psqlLines(target.dsn!, SEED_QUERY).map((l) => l.split("|"));
  assert.deepEqual(rows.map(([s, e]) => `${s}-${e}`), [
    "1-10000",
    "10001-20000",
    "20001-30000",
    "30001-40000",
    `40001-${n}`,
    `${n + 1}-50000`,
  ]);
  for (const [, , checksum] of rows) assert.match(checksum, /^sha256:[0-9a-f]{64}$/);

  const show = await runCli(["checkpoint", "show"], { env });
  assert.match(show.stdout, /^catalog {16}holds 1-50000 contiguously: agrees$/m);
});

Deno.test({
  name:
    "the seed's session scaled down on the real testnet sample lake: first run, interrupted run, resume",
  ignore: !!SAMPLES_ABSENT,
  async fn() {
    await using target = await catalogTarget("embedded");
    await using out = await tempDir();
    const opts = (end: number): CopyOptions =>
      copyOptions(target, {
        source: join(SAMPLES, "testnet"),
        storage: out.path,
        start: 1410048,
        end,
        partitionSize: 50,
        copierId: "bronze-copier-001",
        concurrency: 1,
      });
    const first = memoryLogger();
    await copy(opts(1410200), first);
    assert.deepEqual(first.lines.filter((l) => l.startsWith("[partition]")), [
      "[partition] committed range 1410048-1410050",
      "[partition] committed range 1410051-1410100",
      "[partition] committed range 1410101-1410150",
      "[partition] committed range 1410151-1410200",
    ]);
    // Interrupted as 1410201-1410250 commits, as with Ctrl+C: the run stops after what the worker
    // already holds (the next 50 ledgers take it milliseconds, so they may be in hand too).
    const abort = new AbortController();
    const second: string[] = [];
    const r = await copy(
      opts(1410367),
      createLogger("text", (l) => {
        second.push(l);
        if (l === "[partition] committed range 1410201-1410250") abort.abort();
      }, false),
      abort.signal,
    );
    assert.equal(r.interrupted, true);
    assert.equal(second[0], "[resume] checkpoint found: last_committed=1410200");
    assert.equal(second[1], "[copier] continuing from ledger 1410201");
    const n = r.committed.at(-1)!.end;
    assert.ok(n >= 1410250 && n < 1410367, `stopped at ${n}`);
    const third = memoryLogger();
    await copy(opts(1410367), third);
    const rest: string[] = [];
    for (let s = n + 1; s <= 1410367;) {
      const e = Math.min(Math.ceil(s / 50) * 50, 1410367);
      rest.push(`[partition] committed range ${s}-${e}`, `[checkpoint] saved: last_committed=${e}`);
      s = e + 1;
    }
    assert.deepEqual(withoutSummary(third.lines), [
      `[resume] checkpoint found: last_committed=${n}`,
      `[copier] continuing from ledger ${n + 1}`,
      ...rest,
      "[copier] complete",
    ]);
    const rows = await lineageRows(target);
    assert.ok(rows.length >= 8);
    for (let i = 1; i < rows.length; i++) {
      assert.equal(rows[i].ledger_start, rows[i - 1].ledger_end + 1);
    }
    assert.equal(rows[0].ledger_start, 1410048);
    assert.equal(rows.at(-1)!.ledger_end, 1410367);
  },
});
