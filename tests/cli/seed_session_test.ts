/**
 * The seed's whole example session, as the README shows it ("The seed's session, on your own
 * infrastructure"), end to end through the CLI against a local catalog and lake: every command of
 * the README's block is run, with its variables (the placeholders' DSN and URLs made local), and
 * prints exactly the lines shown under it (the summary aside); a `# Ctrl+C near N` is a SIGINT
 * with the build at ledger N; the seed's psql query then lists every range with its checksum. At
 * the default concurrency, what the README says happens instead. Then the same, scaled down, on
 * real testnet ledgers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { copy, type CopyOptions } from "../../lib/copy/run.ts";
import { createLogger, memoryLogger } from "../../lib/runtime/log.ts";
import { type CatalogTarget, catalogTarget } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { SAMPLES, SAMPLES_ABSENT, syntheticLake, tempDir } from "../support/lakes.ts";
import { EXIT_MS, within } from "../support/wait.ts";
import {
  copyOptions,
  lineageRows,
  psqlLines,
  SEED_QUERY,
  withoutSummary,
} from "../support/copy.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const README = await Deno.readTextFile(new URL("../../README.md", import.meta.url));

interface Step {
  /** VAR=value assignments before `bronze`. */
  env: Record<string, string>;
  args: string[];
  /** `# Ctrl+C near N`: the run is interrupted with its build at ledger N. */
  interruptAt?: number;
  /** The lines shown under it (none: not shown, only its success is checked). */
  lines: string[];
  /** The line after which the README shows ^C, and the exit code it gives. */
  signalAfter?: string;
  code: number;
}

/** The README's seed session: the export line's variables, and each command with its lines. */
function seedSession(): { env: Record<string, string>; steps: Step[] } {
  const section = README.slice(README.indexOf("### The seed's session"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1];
  const env: Record<string, string> = {};
  const steps: Step[] = [];
  const assignments = (words: string[]) =>
    Object.fromEntries(words.map((w) => w.split("=", 2) as [string, string]));
  for (const raw of block.split("\n")) {
    const [text, comment = ""] = raw.split(/\s+# /, 2);
    const line = text.trim();
    if (!line || line.startsWith("#")) continue;
    if (line.startsWith("export ")) {
      Object.assign(env, assignments(line.slice(7).split(/\s+/)));
    } else if (line.startsWith("[") || line.startsWith("^C[")) {
      const step = steps.at(-1)!;
      if (line.startsWith("^C")) step.signalAfter = step.lines.at(-1);
      step.lines.push(line.replace(/^\^C/, ""));
      const code = /exit code (\d+)/.exec(comment);
      if (code) step.code = Number(code[1]);
    } else {
      const words = line.split(/\s+/);
      const at = words.indexOf("bronze");
      const near = /Ctrl\+C near (\d+)/.exec(comment);
      steps.push({
        env: assignments(words.slice(0, at)),
        args: words.slice(at + 1),
        interruptAt: near ? Number(near[1]) : undefined,
        lines: [],
        code: 0,
      });
    }
  }
  return { env, steps };
}

/** Starts `bronze <args>`, calling onLine for each stderr line as it arrives. */
function spawnBronze(
  args: string[],
  env: Record<string, string>,
  onLine: (line: string, child: Deno.ChildProcess) => void,
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
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

/**
 * Runs one step: with `# Ctrl+C near N`, its one build worker pauses once it holds ledger N (a
 * failpoint, counted from the run's first ledger), and SIGINT goes once the line the README shows
 * before ^C has been printed too (a delay would race the build, which overlaps the commit).
 */
async function runStep(step: Step, env: Record<string, string>) {
  const all = { ...env, ...step.env };
  let failpoint: string | undefined;
  if (step.interruptAt !== undefined) {
    const first = Number(/continuing from ledger (\d+)/.exec(step.lines.join("\n"))![1]);
    failpoint = `build-ledger:${step.interruptAt - first + 1}`;
    all.BRONZE_FAILPOINT = `${failpoint}:pause`;
  }
  let seen = 0;
  const run = await spawnBronze(step.args, all, (line, child) => {
    if (line === step.signalAfter || line === `[failpoint] paused at ${failpoint}`) {
      if (++seen === 2) child.kill("SIGINT");
    }
  });
  return { code: run.status.code, lines: run.lines.filter((l) => !l.startsWith("[failpoint]")) };
}

/** The session's variables with the placeholders made local. */
async function localEnv(target: CatalogTarget, storage: string, readme: Record<string, string>) {
  const source = await syntheticLake({
    network: readme.NETWORK as "pubnet",
    start: 1,
    count: 50000,
    lcmVersion: 2,
    ledgerBytes: 1024,
  });
  return {
    ...readme,
    CATALOG_DSN: target.dsn!,
    SOURCE_URL: source,
    STORAGE_URL: storage,
    STATE_DIR: target.stateDir,
    // Lines are compared one by one: no periodic progress lines, however slow the machine.
    PROGRESS_INTERVAL: "0",
  };
}

Deno.test("the seed's session, as the README shows it: 1-30000, 1-50000 interrupted by Ctrl+C near 45000, the resume to 50000; then the seed's psql query", async () => {
  const session = seedSession();
  assert.deepEqual(session.steps.map((s) => s.args[0]), ["migrate", "copy", "copy", "copy"]);
  assert.ok(session.steps.some((s) => s.interruptAt !== undefined), "the session has its Ctrl+C");
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const env = await localEnv(target, out.path, session.env);
  for (const step of session.steps) {
    const got = await runStep(step, env);
    const what = `${Object.entries(step.env).map(([k, v]) => `${k}=${v} `).join("")}bronze ${
      step.args.join(" ")
    }`;
    assert.equal(got.code, step.code, `${what}\n${got.lines.join("\n")}`);
    if (step.lines.length) assert.deepEqual(withoutSummary(got.lines), step.lines, what);
  }

  const rows = psqlLines(target.dsn!, SEED_QUERY).map((l) => l.split("|"));
  assert.deepEqual(rows.map(([s, e]) => `${s}-${e}`), [
    "1-10000",
    "10001-20000",
    "20001-30000",
    "30001-40000",
    "40001-45000",
    "45001-50000",
  ]);
  for (const [, , checksum] of rows) assert.match(checksum, /^sha256:[0-9a-f]{64}$/);
  const show = await runCli(["checkpoint", "show"], { env });
  assert.match(show.stdout, /^catalog {16}holds 1-50000 contiguously: agrees$/m);
});

Deno.test("the seed's session at the default concurrency, as the README says: both halves are built at once, so Ctrl+C commits the first as far as it got and drops the second", async () => {
  const { env: readme, steps } = seedSession();
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const env = await localEnv(target, out.path, readme);
  for (const step of steps.slice(0, 2)) assert.equal((await runStep(step, env)).code, 0);
  // Two workers, each paused 7500 ledgers into its partition (37500 and 47500): then Ctrl+C.
  let paused = 0;
  const run = await spawnBronze(
    ["copy", "--concurrency", "2"],
    { ...env, LEDGER_START: "1", LEDGER_END: "50000", BRONZE_FAILPOINT: "build-ledger:7500:pause" },
    (line, child) => {
      if (line === "[failpoint] paused at build-ledger:7500" && ++paused === 2) {
        child.kill("SIGINT");
      }
    },
  );
  assert.equal(run.status.code, 130, run.lines.join("\n"));
  assert.deepEqual(withoutSummary(run.lines.filter((l) => !l.startsWith("[failpoint]"))), [
    "[resume] checkpoint found: last_committed=30000",
    "[copier] continuing from ledger 30001",
    "[copier] SIGINT received: committing the partition in hand (send again to abort at once)",
    "[partition] committed range 30001-37500",
    "[checkpoint] saved: last_committed=37500",
    "[copier] stopped on SIGINT; run the same command again to resume",
  ]);
  const again = await runCli(["copy"], { env: { ...env, LEDGER_START: "1", LEDGER_END: "50000" } });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /^\[copier\] continuing from ledger 37501$/m);
  assert.deepEqual(
    psqlLines(target.dsn!, SEED_QUERY).map((l) => l.split("|").slice(0, 2).join("-")),
    ["1-10000", "10001-20000", "20001-30000", "30001-37500", "37501-40000", "40001-50000"],
  );
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
