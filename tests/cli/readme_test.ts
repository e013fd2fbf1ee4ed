/**
 * The README's Quick start, run as written in a fresh copy of the project: every command succeeds
 * and prints the `[...]` lines the README shows, in order. (The summary line's seconds and rate
 * differ from run to run; its counts and sizes do not: the same ledgers give the same bytes.) Then
 * its "Reading the data" section, against the catalog the Quick start made: `bronze catalog
 * serve`, the DuckDB block through DuckLake (each result it shows), `bronze lineage --paths`, the
 * glob and the psql query.
 */
import assert from "node:assert/strict";
import { cp, symlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { tempDir } from "../support/lakes.ts";
import { DUCKDB_TOOLS, DUCKLAKE_ABSENT } from "../support/duckdb.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const DENO_PATH = `${dirname(Deno.execPath())}:${Deno.env.get("PATH") ?? ""}`;

interface Step {
  command: string;
  expect: string[];
}

/** The commands of the Quick start's first sh block, each with the log lines shown after it. */
function quickStart(readme: string): Step[] {
  const section = readme.slice(readme.indexOf("## Quick start"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1];
  const steps: Step[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("deno ")) steps.push({ command: line, expect: [] });
    else if (line.startsWith("[")) steps.at(-1)!.expect.push(line);
  }
  return steps;
}

/** The summary line: its counts and sizes (deterministic) in groups, its seconds and rate not. */
const SUMMARY =
  /^\[copier\] copied (\d+) ledgers in (\d+) partitions: ([\d.]+ MB) written in [\d.]+s \(([\d.]+ MB) of ledgers, [\d.]+ MB\/s\)$/;

function sameLine(got: string | undefined, want: string): boolean {
  const w = SUMMARY.exec(want);
  const g = got === undefined ? null : SUMMARY.exec(got);
  return w ? g !== null && [1, 2, 3, 4].every((i) => g[i] === w[i]) : got === want;
}

Deno.test("README Quick start, as written in a fresh copy of the project, prints what the README shows", async () => {
  const steps = quickStart(await Deno.readTextFile(join(ROOT, "README.md")));
  assert.ok(steps.length >= 4, "the Quick start has its commands");
  await using clone = await tempDir("readme");
  for (const entry of ["deno.json", "deno.lock", "main.ts", "lib", "scripts", "migrations"]) {
    await cp(join(ROOT, entry), join(clone.path, entry), { recursive: true });
  }
  await symlink(join(ROOT, "node_modules"), join(clone.path, "node_modules"));
  for (const step of steps) {
    const out = await new Deno.Command("bash", {
      args: ["-c", step.command],
      cwd: clone.path,
      // Periodic progress lines would depend on the machine's speed. `deno` is the Deno running
      // the tests, on PATH or not (npx).
      env: { PROGRESS_INTERVAL: "0", NO_COLOR: "1", PATH: DENO_PATH },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `${step.command}\n${stderr}`);
    const got = stderr.split("\n").filter((l) => l.startsWith("["));
    assert.equal(got.length, step.expect.length, `${step.command}\n${got.join("\n")}`);
    step.expect.forEach((want, i) =>
      assert.ok(
        sameLine(got[i], want),
        `${step.command}: line ${i + 1}\n got: ${got[i]}\nwant: ${want}`,
      )
    );
  }
  if (DUCKLAKE_ABSENT) {
    console.log(`SKIPPED the README's reading section: ${DUCKLAKE_ABSENT}`);
    return;
  }
  await readingSection(await Deno.readTextFile(join(ROOT, "README.md")), clone.path);
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
