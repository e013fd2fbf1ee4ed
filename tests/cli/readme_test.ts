/**
 * The README sections a new user runs, each run as written in a fresh copy of the project: every
 * command succeeds and prints the `[...]` lines the README shows, in order. The Quick start, then
 * its "Reading the data" section against the catalog the Quick start made (`bronze catalog
 * serve`, the DuckDB block through DuckLake with each result it shows, `bronze lineage --paths`,
 * the glob and the psql query); and "Try it on a lake that grows" (whose background command grows
 * the lake while the follower runs). What may differ from run to run: a summary's seconds and rate
 * (its counts and sizes may not: the same ledgers give the same bytes), the absolute path the
 * README writes as `…`, and a follower's "caught up" lines, which come once per arrival at the
 * head: how many, and where, depends on the pace (there is at least one when the README shows one).
 */
import assert from "node:assert/strict";
import { cp, symlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { tempDir } from "../support/lakes.ts";
import { DUCKDB_TOOLS, DUCKLAKE_ABSENT } from "../support/duckdb.ts";
import { EXIT_MS, within } from "../support/wait.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const README = await Deno.readTextFile(join(ROOT, "README.md"));
/** `deno` in the README's commands is the Deno running the tests, on PATH or not (npx). */
const DENO_PATH = `${dirname(Deno.execPath())}:${Deno.env.get("PATH") ?? ""}`;

interface Step {
  command: string;
  /** Ends in `&`: runs while the next commands do; waited for at the end of the section. */
  background: boolean;
  expect: string[];
}

/** The commands of a section's first sh block, each with the log lines shown after it. */
function section(heading: string): Step[] {
  const at = README.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `the README has a section "${heading}"`);
  const block = /```sh\n([\s\S]*?)```/.exec(README.slice(at))![1];
  const steps: Step[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("deno ")) {
      steps.push({ command: line, background: /&\s*$/.test(line), expect: [] });
    } else if (line.startsWith("[")) steps.at(-1)!.expect.push(line);
  }
  return steps;
}

/** A summary line: its counts and sizes (deterministic) in groups, its seconds and rate not. */
const SUMMARY =
  /^\[copier\] copied (\d+) ledgers in (\d+) partitions( while following for \S+)?: ([\d.]+ MB) written in [\d.]+s( of copying)? \(([\d.]+ MB) of ledgers, [\d.]+ MB\/s\)$/;
const CAUGHT_UP = /^\[follow\] caught up at ledger \d+; /;

function sameLine(got: string, want: string): boolean {
  const w = SUMMARY.exec(want);
  const g = SUMMARY.exec(got);
  if (w) return g !== null && [1, 2, 4, 6].every((i) => g[i] === w[i]) && !g[3] === !w[3];
  return got === want;
}

/** Copies the project as a clone has it (the packages linked, not downloaded again). */
async function freshCopy(dir: string): Promise<void> {
  for (const entry of ["deno.json", "deno.lock", "main.ts", "lib", "scripts", "migrations"]) {
    await cp(join(ROOT, entry), join(dir, entry), { recursive: true });
  }
  await symlink(join(ROOT, "node_modules"), join(dir, "node_modules"));
}

/** Runs a section's steps in `dir`, comparing each command's lines with the README's. */
async function runSection(steps: Step[], dir: string): Promise<void> {
  const background: { command: string; child: Deno.ChildProcess }[] = [];
  const bash = (command: string, piped: boolean) =>
    new Deno.Command("bash", {
      args: ["-c", command],
      cwd: dir,
      // Periodic progress lines would depend on the machine's speed.
      env: { PROGRESS_INTERVAL: "0", NO_COLOR: "1", PATH: DENO_PATH },
      stdout: piped ? "piped" : "null",
      stderr: piped ? "piped" : "null",
    });
  try {
    for (const step of steps) {
      if (step.background) {
        // bash waits for the job it was given: the README's `&` is this process running on.
        const command = step.command.replace(/&\s*$/, "");
        background.push({ command, child: bash(command, false).spawn() });
        continue;
      }
      const out = await within(bash(step.command, true).output(), step.command, EXIT_MS);
      const stderr = new TextDecoder().decode(out.stderr).replaceAll(dir, "…");
      assert.equal(out.code, 0, `${step.command}\n${stderr}`);
      const lines = stderr.split("\n").filter((l) => l.startsWith("["));
      const got = lines.filter((l) => !CAUGHT_UP.test(l));
      const want = step.expect.filter((l) => !CAUGHT_UP.test(l));
      const shown = `${step.command}\n${lines.join("\n")}`;
      if (step.expect.some((l) => CAUGHT_UP.test(l))) {
        assert.ok(lines.some((l) => CAUGHT_UP.test(l)), `no "caught up" line: ${shown}`);
      }
      assert.equal(got.length, want.length, shown);
      want.forEach((w, i) =>
        assert.ok(
          sameLine(got[i], w),
          `${step.command}: line ${i + 1}\n got: ${got[i]}\nwant: ${w}`,
        )
      );
    }
    for (const { command, child } of background) {
      const status = await within(child.status, `${command} (in the background) ending`, EXIT_MS);
      assert.equal(status.code, 0, `${command} (in the background) failed`);
    }
  } finally {
    for (const { child } of background) {
      try {
        child.kill("SIGKILL");
      } catch { /* ended */ }
      await child.status;
    }
  }
}

Deno.test("README Quick start, as written in a fresh copy of the project, prints what the README shows; then its reading section", async () => {
  const steps = section("## Quick start");
  assert.ok(steps.length >= 4, "the Quick start has its commands");
  await using clone = await tempDir("readme");
  await freshCopy(clone.path);
  await runSection(steps, clone.path);
  if (DUCKLAKE_ABSENT) {
    console.log(`SKIPPED the README's reading section: ${DUCKLAKE_ABSENT}`);
    return;
  }
  await readingSection(README, clone.path);
});

Deno.test("README: following a lake that grows (make-lake --rate in the background), as written, prints what the README shows", async () => {
  const steps = section("### Try it on a lake that grows");
  assert.deepEqual(steps.map((s) => s.background), [false, true, false]);
  assert.match(steps[1].command, /scripts\/make-lake\.ts .*--rate/);
  assert.match(steps[2].command, /bronze copy --follow /);
  await using clone = await tempDir("readme-follow");
  await freshCopy(clone.path);
  await runSection(steps, clone.path);
});

/** The fenced blocks of the README's "Reading the data", in order. */
function readingBlocks(readme: string): { lang: string; body: string }[] {
  const section = readme.slice(
    readme.indexOf("### Reading the data"),
    readme.indexOf("### The seed's session"),
  );
  return [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1], body: m[2] }));
}

/** A statement of an SQL block, and the result shown after it (`-- …`), if any. */
function statements(sql: string): { sql: string; shown?: string }[] {
  const out: { sql: string; shown?: string }[] = [];
  let text = "";
  let last: { sql: string; shown?: string } | undefined;
  for (const line of sql.split("\n")) {
    const comment = /^\s*--\s*(.*)$/.exec(line);
    if (comment) {
      // A comment line right under a statement shows its result; after a blank line, it heads
      // the next one.
      if (last && last.shown === undefined) last.shown = comment[1].trim();
      continue;
    }
    last = undefined;
    if (!line.trim()) continue;
    const [code, shown] = line.split(/\s--\s*/, 2);
    for (const part of code.split(/(?<=;)/)) {
      text += `${part} `;
      if (part.trim().endsWith(";")) {
        last = { sql: text.trim().replace(/\s+/g, " ") };
        out.push(last);
        text = "";
      }
    }
    if (last && shown !== undefined) last.shown = shown.trim();
  }
  return out;
}

/** A running `bronze catalog serve` on the clone's embedded catalog, and the lines it printed. */
async function serve(clone: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "catalog", "serve"],
    cwd: clone,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = setTimeout(() => child.kill("SIGKILL"), 60_000);
  while (text.split("\n").length < 3) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  clearTimeout(deadline);
  const lines = text.split("\n").slice(0, 2);
  assert.equal(lines.length, 2, `catalog serve did not say where it serves within 60s:\n${text}`);
  return {
    lines,
    async stop() {
      child.kill("SIGINT");
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
      const status = await child.status;
      const stderr = new TextDecoder().decode(
        new Uint8Array(await new Response(child.stderr).arrayBuffer()),
      );
      assert.equal(status.code, 0, stderr);
    },
  };
}

async function readingSection(readme: string, clone: string): Promise<void> {
  const blocks = readingBlocks(readme);
  const sh = blocks.filter((b) => b.lang === "sh").map((b) => b.body.trim().split("\n"));
  const sql = blocks.filter((b) => b.lang === "sql");
  // `bronze catalog serve`: its two lines, but for the port it was given.
  const [serveBlock, pathsBlock, globBlock] = sh;
  assert.equal(serveBlock[0], "deno task bronze catalog serve");
  const served = await serve(clone);
  try {
    const port = /127\.0\.0\.1:(\d+)/.exec(served.lines[0])![1];
    const shownPort = /127\.0\.0\.1:(\d+)/.exec(serveBlock[1])![1];
    assert.deepEqual(
      served.lines,
      serveBlock.slice(1).map((l) => l.replaceAll(shownPort, port)),
    );

    // The DuckDB block, as written (DuckDB loads the extensions from ../shared here, by path).
    const db = await DuckDBInstance.create(":memory:", { allow_unsigned_extensions: "true" });
    const c = await db.connect();
    try {
      await c.run(`LOAD '${DUCKDB_TOOLS}postgres_scanner.duckdb_extension'`);
      await c.run(`LOAD '${DUCKDB_TOOLS}ducklake.duckdb_extension'`);
      const block = statements(sql[1].body);
      assert.ok(block.length >= 5, `the DuckDB block's statements: ${JSON.stringify(block)}`);
      let checked = 0;
      for (const s of block) {
        if (/^INSTALL /.test(s.sql)) continue;
        const run = s.sql.replaceAll(shownPort, port);
        if (!s.shown || /^ATTACH /.test(run)) {
          await c.run(run);
          continue;
        }
        const files = /^reads (\d+) files?$/.exec(s.shown);
        if (files) {
          const plan = (await c.runAndReadAll(`EXPLAIN ANALYZE ${run}`)).getRowObjects()[0];
          assert.match(
            String(plan.explain_value),
            new RegExp(`Total Files Read: ${files[1]}\\b`),
            run,
          );
        } else {
          const row = (await c.runAndReadAll(run)).getRows()[0];
          assert.equal(row.map(String).join(", "), s.shown, run);
        }
        checked++;
      }
      assert.ok(checked >= 4, `results checked: ${checked}`);

      // Every other reader: the current files, from `bronze lineage --paths`.
      const [paths, ...shownPaths] = pathsBlock;
      const listed = await new Deno.Command("bash", {
        args: ["-c", paths.replace("deno task bronze", `${Deno.execPath()} run -A main.ts`)],
        cwd: clone,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(listed.code, 0, new TextDecoder().decode(listed.stderr));
      const got = new TextDecoder().decode(listed.stdout).trim().split("\n");
      assert.deepEqual(
        got,
        shownPaths.map((l) => l.replace(/^…/, clone)),
      );

      // The glob, right after a clean backfill: the same ledgers.
      const glob = /"(SELECT .*)"/.exec(globBlock[0])![1].replace("'data/", `'${clone}/data/`);
      assert.equal(Number((await c.runAndReadAll(glob)).getRows()[0][0]), 30000);
    } finally {
      c.closeSync();
      db.closeSync();
    }

    // psql, through the same server: the current partitions.
    const psql = new Deno.Command("psql", {
      args: [`host=127.0.0.1 port=${port} user=postgres dbname=postgres`, "-At", "-c", sql[2].body],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    assert.equal(psql.code, 0, new TextDecoder().decode(psql.stderr));
    const rows = new TextDecoder().decode(psql.stdout).trim().split("\n");
    assert.deepEqual(rows.map((r) => r.split("|").slice(0, 2).join("-")), [
      "1-10000",
      "10001-20000",
      "20001-30000",
    ]);
  } finally {
    await served.stop();
  }
}
