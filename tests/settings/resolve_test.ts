/**
 * lib/settings/resolve.ts: a setting from its flag, else its variable, else its default; every
 * problem of an invocation at once, each naming where the value came from, one per setting.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type CommandName, type Flags, resolveSettings } from "../../lib/settings/mod.ts";
import { ConfigError } from "../../lib/runtime/errors.ts";
import { tempDir } from "../support/lakes.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

/** The problems resolving `name`'s settings reports (none: []). */
function problemsOf(
  name: CommandName,
  flags: Flags,
  vars: Record<string, string> = {},
  unknown: string[] = [],
): string[] {
  try {
    resolveSettings(name, flags, env(vars), unknown);
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
}

Deno.test("settings: a flag beats its environment variable, which beats the default; a default may read another setting", async () => {
  await using dir = await tempDir();
  const stateDir = join(dir.path, "state");
  const s = resolveSettings(
    "copy",
    { partitionSize: "500", start: "1", end: "10" },
    env({
      PARTITION_SIZE: "7",
      NETWORK: "testnet",
      STATE_DIR: stateDir,
      SOURCE_URL: "rpc+https://rpc.example.org",
    }),
  );
  assert.equal(s.partitionSize, 500);
  assert.equal(s.network, "testnet");
  assert.equal(s.stateDir, stateDir);
  assert.equal(s.checkpoint.local, join(stateDir, "checkpoint.json"));
  // No default storage: a registered dataset's own root comes first (lib/copy/placement.ts).
  assert.equal(s.storage, undefined);
  assert.equal(s.era, "default");
  assert.equal(s.copierId, "bronze-copier");
  assert.match(
    resolveSettings(
      "copy",
      { fleet: true, start: "1", end: "2" },
      env({
        SOURCE_URL: "rpc+https://rpc.example.org",
        CATALOG_DSN: "postgres://h/db",
        STATE_DIR: stateDir,
      }),
    ).copierId,
    new RegExp(`-${Deno.pid}$`),
  );
});

Deno.test("settings: every problem is reported at once, each naming where the value came from", () => {
  assert.throws(
    () =>
      resolveSettings(
        "copy",
        { source: "ftp://lake/x", start: "10", checkpoint: "s3://bucket", concurrency: "0" },
        env({ LEDGER_END: "5", STORAGE_URL: "gs://", CATALOG_DSN: "mysql://u:pw@h/db" }),
      ),
    (err) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.exitCode, 2);
      assert.deepEqual(err.problems, [
        '--source must be a local path, file://, gs://bucket[/prefix] or s3://bucket[/prefix], got "ftp://lake/x"',
        'STORAGE_URL names no bucket: "gs://" (expected gs://bucket[/prefix])',
        "CATALOG_DSN must be a postgres:// or postgresql:// URL (value not shown: it may contain a password)",
        '--checkpoint must name an object, e.g. s3://bucket/state/checkpoint.json, got "s3://bucket"',
        "--concurrency must be between 1 and 64, got 0",
        "--end (LEDGER_END) 5 is before --start (LEDGER_START) 10",
      ]);
      return true;
    },
  );
});

Deno.test("settings: a required setting is named with its flag and variable", () => {
  assert.throws(() => resolveSettings("retire", { network: "testnet" }, env({})), {
    message: "--reason is required",
  });
  assert.deepEqual(problemsOf("repair", {}), ["--source (SOURCE_URL) is required"]);
});

Deno.test("settings: one problem per setting: `--start abc` must be a whole number, and is not also required", () => {
  assert.deepEqual(
    problemsOf("copy", { start: "abc" }, { SOURCE_URL: "rpc+https://rpc.example.org" }),
    [
      '--start must be a whole number, got "abc"',
      "--end (LEDGER_END) is required (a ledger, or latest; or --follow)",
    ],
  );
  assert.deepEqual(problemsOf("verify", { start: "abc", end: "5" }), [
    '--start must be a whole number, got "abc"',
  ]);
});

Deno.test("settings: `--end latest` is copy's; any other command says so beside its other problems", () => {
  assert.deepEqual(
    problemsOf("repair", { end: "latest", source: "rpc+https://rpc.example.org" }, {}, ["--bogus"]),
    [
      "unknown option --bogus",
      "--end latest is for copy (the newest ledger of its source); give a ledger",
    ],
  );
  for (const name of ["coverage", "verify", "compact", "lineage"] as const) {
    assert.deepEqual(problemsOf(name, {}, { LEDGER_END: "latest" }), [
      "LEDGER_END latest is for copy (the newest ledger of its source); give a ledger",
    ]);
  }
  const s = resolveSettings(
    "copy",
    { start: "1", end: "latest" },
    env({
      SOURCE_URL: "rpc+https://rpc.example.org",
    }),
  );
  assert.equal(s.end, "latest");
});

Deno.test("settings: unknown words are refused, each with the flag it most likely meant", () => {
  assert.deepEqual(
    problemsOf("gc", {}, {}, ["--aply", "--older", "1d", "stray", "--zzz=3"]),
    [
      "unknown option --aply (did you mean --apply?)",
      "unknown option --older (did you mean --older-than?)",
      'unexpected argument "stray" (settings are flags)',
      "unknown option --zzz",
    ],
  );
});
