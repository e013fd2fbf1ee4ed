/**
 * A fleet copier whose network vanishes mid-cell. It runs on a "remote host" of the test's own (a
 * network namespace reaching the host's PostgreSQL over real TCP, tests/support/netns.ts); the
 * cable is pulled while it holds a cell whose file it has just published. The other copiers take
 * the cell over once PostgreSQL drops the cut copier's session (the keepalive bound of
 * lib/metadata/claims.ts), and when the cable returns the cut copier reconnects, leaves the cell
 * to them, and commits nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createTestDatabase, poolOf } from "../support/catalogs.ts";
import { copyEnv, lineageRows } from "../support/copy.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { netnsMissing, remoteHost } from "../support/netns.ts";
import { EXIT_MS, Output, within } from "../support/wait.ts";
import type { CatalogTarget } from "../support/catalogs.ts";
import { openCatalog } from "../../lib/metadata/catalog.ts";
import { migrate } from "../../lib/metadata/migrate.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const SIZE = 20;
const END = 8 * SIZE;
/** The takeover waits out the server's keepalive bound (about a minute): 3 minutes at most. */
const TAKEOVER_MS = 180_000;

Deno.test({
  name:
    "fleet: a copier cut off mid-cell loses the cell to the others after the keepalive bound; when its link returns it reconnects, leaves the cell to them and commits nothing",
  ignore: Deno.build.os !== "linux",
}, async () => {
  const missing = await netnsMissing();
  if (missing) throw new Error(missing);
  const source = await syntheticLake({
    network: "testnet",
    start: 1,
    count: END,
    lcmVersion: 2,
    ledgerBytes: 1024,
    seed: 11,
  });
  const db = await createTestDatabase();
  await using states = await tempDir();
  await using out = await tempDir();
  const stateDir = join(states.path, "host");
  const target: CatalogTarget = {
    kind: "postgres",
    dsn: db.dsn,
    stateDir,
    open: () => openCatalog({ dsn: db.dsn, stateDir }),
    [Symbol.asyncDispose]: () => db.drop(),
  };
  await using _db = target;
  const c = await target.open();
  await migrate(c).finally(() => c.close());
  await using host = await remoteHost();
  const env = (catalog: string, name: string) => ({
    ...copyEnv(target, source, out.path),
    CATALOG_DSN: catalog,
    STATE_DIR: join(states.path, name),
    LEDGER_START: "1",
    LEDGER_END: String(END),
    PARTITION_SIZE: String(SIZE),
    FLEET: "true",
    POLL_INTERVAL: "1s",
    CONCURRENCY: "1",
  });

  // The remote copier claims cell 1-20, publishes its file, and pauses before the catalog commit.
  const remote = host.spawn(Deno.execPath(), ["run", "-A", "--cached-only", MAIN, "copy"], {
    env: { ...env(host.pgUrl(db.name), "remote"), BRONZE_FAILPOINT: "after-publish:1:pause" },
    stdout: "null",
    stderr: "piped",
  });
  const remoteErr = new Output(remote.stderr, "the remote copier");
  await remoteErr.until(/\[failpoint\] paused at after-publish:1\n/);
  const holder = (await remoteErr.until(/\[fleet\] copier (\S+) joins/))[1];

  await host.cut();
  const cutAt = performance.now();
  // A copier on this host copies the rest, then waits for the cut copier's cell, until the
  // server drops the cut copier's session and the cell can be taken over.
  const local = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "copy"],
    env: env(db.dsn, "local"),
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const localErr = new Output(local.stderr, "the local copier");
  await localErr.until(new RegExp(`waiting for 1 cell held by ${holder} `));
  // Liveness, not timing: the server's keepalive bound (about a minute) ends the cut copier's
  // session; the test fails only if the claim never dies.
  await localErr.until(/\[partition\] committed range 1-20\n/, TAKEOVER_MS);
  const takeover = (performance.now() - cutAt) / 1000;
  console.log(
    `takeover: cell 1-20 committed by the other copier ${takeover.toFixed(1)} s after the cut`,
  );
  await localErr.until(/\[copier\] complete\n/);
  assert.equal((await within(local.status, "the local copier exiting")).code, 0, localErr.text);
  // The adopted bytes are the cut copier's own: deterministic, the same file.
  assert.match(localErr.text, /\[storage\] adopted \S+part-1-20\.parquet/);

  // The cable returns; the cut copier reconnects, finds its cell taken over (and committed), goes
  // on from its pause, and must not commit it: it leaves it, finds the fleet's range complete and
  // ends like any fleet copier.
  await host.restore();
  await remoteErr.until(
    /\[catalog\] reconnected; no claims to take again; left to the copier that took it over: 1-20\n/,
    TAKEOVER_MS,
  );
  remote.kill("SIGUSR1");
  const remoteText = await remoteErr.end(EXIT_MS);
  const status = await within(remote.status, "the remote copier exiting");
  assert.equal(status.code, 0, remoteText);
  assert.doesNotMatch(remoteText, /\[partition\] committed range 1-20/);
  assert.match(remoteText, /\[warn\] fleet: cell 1-20: taken over by another copier \(/);
  assert.match(remoteText, /\[fleet\] every cell of 1-160 is committed\n/);

  const rows = await lineageRows(target);
  assert.deepEqual(rows.map((r) => r.ledger_start), [1, 21, 41, 61, 81, 101, 121, 141]);
  const cat = await target.open();
  try {
    const { rows: claims } = await poolOf(cat).query(
      "SELECT count(*)::int AS n FROM _meta_copier_claims",
    );
    assert.equal(claims[0].n, 0);
  } finally {
    await cat.close();
  }
});
