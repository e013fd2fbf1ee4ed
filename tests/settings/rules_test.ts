/**
 * lib/settings/rules.ts: every rule a command declares (COMMANDS) is enforced for that command.
 * The cases come from the declarations: a command that takes on a rule is covered without a line
 * here, and a new rule fails until it has its case below.
 */
import assert from "node:assert/strict";
import { commandWords } from "../../lib/cli/command.ts";
import { ConfigError } from "../../lib/runtime/errors.ts";
import {
  type CommandName,
  COMMANDS,
  type Flags,
  type Key,
  resolveSettings,
} from "../../lib/settings/mod.ts";
import type { Rule } from "../../lib/settings/rules.ts";
import { join, relative } from "node:path";
import { tempDir } from "../support/lakes.ts";

/**
 * Per rule: flags (by commander's option names) that break it and the problem it reports then,
 * and flags that keep it (the problem is gone).
 */
const CASES: Record<string, { broken: Flags; problem: string; kept: Flags }> = {
  "start needed": {
    broken: {},
    problem: "--start (LEDGER_START) is required",
    kept: { fillGaps: true },
  },
  "end needed": {
    broken: {},
    problem: "--end (LEDGER_END) is required (a ledger, or latest; or --follow)",
    kept: { follow: true },
  },
  "end not before start": {
    broken: { start: "10", end: "5" },
    problem: "--end (LEDGER_END) 5 is before --start (LEDGER_START) 10",
    kept: { start: "5", end: "5" },
  },
  "follow not fleet": {
    broken: { follow: true, fleet: true },
    problem: "--follow and --fleet do not go together: a fleet backfills a fixed range",
    kept: { follow: true },
  },
  "compact needs follow": {
    broken: { compact: true },
    problem: "--compact needs --follow (FOLLOW); `bronze compact` compacts any range",
    kept: { compact: true, follow: true },
  },
  "flush needs follow": {
    broken: { flushInterval: "5s" },
    problem: "--flush-interval needs --follow (FOLLOW): only a follower has partial cells to flush",
    kept: { flushInterval: "5s", follow: true },
  },
  "fleet needs postgres": {
    broken: { fleet: true },
    problem:
      "--fleet needs a PostgreSQL catalog (--catalog or CATALOG_DSN): the embedded catalog serves the processes of one machine, a fleet spans many",
    kept: { fleet: true, catalog: "postgres://127.0.0.1/db" },
  },
  "paths not history": {
    broken: { paths: true, history: true },
    problem: "--paths lists the current files; --history does not go with it",
    kept: { paths: true },
  },
  "reader role needs postgres": {
    broken: { readerRole: "reader" },
    problem:
      "--reader-role needs a PostgreSQL catalog (--catalog or CATALOG_DSN): the embedded catalog has one user (its DuckLake readers go through `bronze catalog serve`)",
    kept: { readerRole: "reader", catalog: "postgres://127.0.0.1/db" },
  },
  "storage outside the source": {
    broken: { source: "/nonexistent-bronze/lake", storage: "/nonexistent-bronze/lake/data" },
    problem:
      "--storage /nonexistent-bronze/lake/data is inside the source lake, --source /nonexistent-bronze/lake: partitions would be written into the lake; store them outside it",
    kept: { source: "/nonexistent-bronze/lake", storage: "/nonexistent-bronze/data" },
  },
  "retire needs a filter": {
    broken: {},
    problem:
      "retire needs at least one of --network, --era, --version-label, --dataset: it retires every dataset they match",
    kept: { versionLabel: "v1" },
  },
};

function problemsOf(name: CommandName, flags: Flags, env: Record<string, string> = {}): string[] {
  try {
    resolveSettings(name, flags, (n) => env[n]);
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
}

const declared = (Object.keys(COMMANDS) as CommandName[]).flatMap((name) =>
  ((COMMANDS[name] as { rules?: readonly Rule[] }).rules ?? []).map((rule) => ({ name, rule }))
);

Deno.test("rules: some command declares each rule, and each declared rule has its case", () => {
  assert.ok(declared.length >= 8);
  for (const { rule } of declared) assert.ok(CASES[rule.name], `no case for rule "${rule.name}"`);
  for (const name of Object.keys(CASES)) {
    assert.ok(declared.some((d) => d.rule.name === name), `no command declares "${name}"`);
  }
});

for (const { name, rule } of declared) {
  Deno.test(`rules: ${commandWords(name).join(" ")} enforces "${rule.name}"`, () => {
    const settings = COMMANDS[name].settings as readonly Key[];
    for (const key of rule.keys) {
      assert.ok(settings.includes(key), `the rule reads ${key}, which ${name} does not take`);
    }
    const c = CASES[rule.name];
    assert.ok(problemsOf(name, c.broken).includes(c.problem), c.problem);
    assert.ok(!problemsOf(name, c.kept).includes(c.problem), c.problem);
  });
}

Deno.test("rules: a rule is skipped when a setting it reads is invalid (that problem is the one)", () => {
  const problems = problemsOf("copy", { start: "10", end: "x", source: "rpc+https://h.example" });
  assert.deepEqual(problems, ['--end must be a whole number, got "x"']);
});

Deno.test("rules: storage is compared with the source lake where they really are (resolved paths, symbolic links, buckets and prefixes)", async () => {
  await using dir = await tempDir();
  const lake = join(dir.path, "lake");
  await Deno.mkdir(lake);
  await Deno.symlink(lake, join(dir.path, "link"));
  const refused = (source: string, storage: string, env: Record<string, string> = {}) =>
    problemsOf("copy", { source, storage, start: "1", end: "2" }, env).filter((p) =>
      p.includes("the source lake")
    );
  // The same folder, however it is written.
  assert.deepEqual(refused(lake, `${lake}/`), [
    `--storage ${lake}/ is the source lake, --source ${lake}: partitions would be written into the lake; store them outside it`,
  ]);
  // Relative to the working directory (tests share the process: no chdir).
  const rel = relative(Deno.cwd(), lake);
  assert.equal(refused(`./${rel}`, `${rel}/`).length, 1);
  assert.equal(refused(`./${rel}`, `./${rel}/sub/../data`).length, 1);
  assert.equal(refused(rel, "file://" + join(lake, "data")).length, 1);
  // Through a symbolic link, to a folder not made yet.
  assert.deepEqual(refused(lake, join(dir.path, "link", "new", "data")), [
    `--storage ${
      join(dir.path, "link", "new", "data")
    } is inside the source lake, --source ${lake}: partitions would be written into the lake; store them outside it`,
  ]);
  // Beside it, or a sibling whose name starts the same: fine; the lake inside the storage too.
  assert.deepEqual(refused(lake, join(dir.path, "lake-data")), []);
  assert.deepEqual(refused(lake, dir.path), []);
  // Buckets: by scheme, bucket and prefix; the variables name themselves.
  assert.deepEqual(
    refused("gs://b/ledgers", "gs://b/ledgers/bronze"),
    [
      "--storage gs://b/ledgers/bronze is inside the source lake, --source gs://b/ledgers: partitions would be written into the lake; store them outside it",
    ],
  );
  assert.equal(refused("gs://b/ledgers/", "gs://b/ledgers").length, 1);
  assert.equal(refused("s3://b", "s3://b/bronze").length, 1);
  assert.deepEqual(refused("gs://b/ledgers", "gs://b/ledgers2"), []);
  assert.deepEqual(refused("gs://b/ledgers", "gs://c/ledgers"), []);
  assert.deepEqual(refused("gs://b/ledgers", "s3://b/ledgers"), []);
  assert.deepEqual(refused("rpc+https://rpc.example", "gs://b"), []);
  assert.deepEqual(
    problemsOf("copy", { start: "1", end: "2" }, {
      SOURCE_URL: "s3://b/lake",
      STORAGE_URL: "s3://b/lake/out",
    }).filter((p) => p.includes("the source lake")),
    [
      "STORAGE_URL s3://b/lake/out is inside the source lake, SOURCE_URL s3://b/lake: partitions would be written into the lake; store them outside it",
    ],
  );
  // repair reads the lake and writes under --storage too.
  assert.equal(
    problemsOf("repair", { source: lake, storage: join(lake, "x") }).filter((p) =>
      p.includes("the source lake")
    ).length,
    1,
  );
});
