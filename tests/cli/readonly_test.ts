/**
 * Every read-only command against a read-only catalog (as a standby is, or a database with
 * `default_transaction_read_only = on`): coverage, checkpoint show, fleet and verify --no-record
 * answer; verify without --no-record says in one line that the catalog is read-only.
 */
import assert from "node:assert/strict";
import pg from "pg";
import { catalogTarget } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv } from "../support/copy.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";

Deno.test("read-only catalog: coverage, checkpoint show, fleet and verify --no-record work; verify that would record says why it cannot", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const source = await syntheticLake({ network: "testnet", start: 1, count: 300, lcmVersion: 2 });
  const env = {
    ...copyEnv(target, source, out.path),
    LEDGER_START: "1",
    LEDGER_END: "300",
    PARTITION_SIZE: "100",
  };
  const copied = await runCli(["copy"], { env });
  assert.equal(copied.code, 0, copied.stderr);
  const name = new URL(target.dsn!).pathname.slice(1);
  const admin = new pg.Client({ connectionString: target.dsn });
  await admin.connect();
  try {
    await admin.query(`ALTER DATABASE ${name} SET default_transaction_read_only = on`);
  } finally {
    await admin.end();
  }
  for (
    const args of [["coverage", "--json"], ["checkpoint", "show"], ["fleet", "--json"], [
      "verify",
      "--no-record",
    ]]
  ) {
    const r = await runCli(args, { env });
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  }
  const coverage = JSON.parse((await runCli(["coverage", "--json"], { env })).stdout);
  assert.equal(coverage.datasets[0].partitions, 3);
  const recording = await runCli(["verify"], { env });
  assert.equal(recording.code, 1);
  assert.match(
    recording.stderr,
    /^bronze: catalog postgres:\/\/\S+ is read-only: cannot execute INSERT in a read-only transaction\n$/,
  );
  // A write that would change it is refused the same way, and nothing is half-written.
  const copy = await runCli(["copy", "--start", "301", "--end", "400"], { env });
  assert.equal(copy.code, 1);
  assert.match(copy.stderr, /is read-only: /);
});
