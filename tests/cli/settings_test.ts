import assert from "node:assert/strict";
import { resolveSettings } from "../../lib/settings.ts";
import { ConfigError } from "../../lib/runtime/errors.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("settings: a flag beats its environment variable, which beats the default", () => {
  const s = resolveSettings(["partitionSize", "network", "stateDir", "checkpoint"], {
    partitionSize: "500",
  }, env({ PARTITION_SIZE: "7", NETWORK: "testnet", STATE_DIR: "/var/bronze" }));
  assert.deepEqual(s, {
    partitionSize: 500,
    network: "testnet",
    stateDir: "/var/bronze",
    checkpoint: "/var/bronze/checkpoint.json",
  });
});

Deno.test("settings: every problem is reported at once, each naming where the value came from", () => {
  assert.throws(
    () =>
      resolveSettings(
        ["source", "storage", "start", "end", "checkpoint", "catalog", "concurrency"],
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
        "--concurrency must be between 1 and 64, got 0",
        '--checkpoint must name an object, e.g. s3://bucket/state/checkpoint.json, got "s3://bucket"',
        "--end (LEDGER_END) 5 is before --start (LEDGER_START) 10",
      ]);
      return true;
    },
  );
});

Deno.test("settings: required settings are named with their flag and variable", () => {
  assert.throws(
    () => resolveSettings(["source", "start"], {}, env({}), { required: ["source", "start"] }),
    (err: Error) => {
      assert.equal(
        err.message,
        "2 configuration problems: --source (SOURCE_URL) is required; --start (LEDGER_START) is required",
      );
      return true;
    },
  );
});

Deno.test("settings: --source takes a lake URL or a Stellar RPC node, and names a bad one", () => {
  const source = (raw: string) => resolveSettings(["source"], { source: raw }, env({})).source;
  assert.equal(
    source("rpc+https://rpc.example.org:443/soroban"),
    "rpc+https://rpc.example.org:443/soroban",
  );
  assert.equal(source("rpc+http://127.0.0.1:8000"), "rpc+http://127.0.0.1:8000");
  assert.equal(source("gs://lake/ledgers"), "gs://lake/ledgers");
  assert.throws(() => source("rpc+ftp://u:secret@host/x"), {
    message:
      '--source must be rpc+https:// or rpc+http:// for a Stellar RPC node, got "rpc+ftp://host/x"',
  });
  assert.throws(() => source("rpc+https://"), {
    message: '--source names no RPC host: "rpc+https://" (expected rpc+https://host[:port][/path])',
  });
});
