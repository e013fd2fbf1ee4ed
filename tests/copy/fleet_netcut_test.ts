/**
 * A fleet copier whose network vanishes mid-cell. It runs on a "remote host" of the test's own (a
 * network namespace reaching the host's PostgreSQL over real TCP, tests/support/netns.ts); the
 * cable is pulled while it holds a cell whose file it has just published. The other copiers take
 * the cell over once PostgreSQL drops the cut copier's session (the keepalive bound of
 * lib/metadata/claims.ts), and when the cable returns the cut copier commits nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createTestDatabase, poolOf } from "../support/catalogs.ts";
import { copyEnv, lineageRows } from "../support/copy.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { netnsMissing, remoteHost } from "../support/netns.ts";
import type { CatalogTarget } from "../support/catalogs.ts";
import { openCatalog } from "../../lib/metadata/catalog.ts";
import { migrate } from "../../lib/metadata/migrate.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const SIZE = 20;
const END = 8 * SIZE;

async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  text: { value: string },
  pattern: RegExp,
): Promise<void> {
  while (!pattern.test(text.value)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended before ${pattern}:\n${text.value}`);
    text.value += value;
  }
}

Deno.test({
  name:
    "fleet: a copier cut off mid-cell loses the cell to the others after the keepalive bound, and commits nothing when its link returns",
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
  const remoteText = { value: "" };
  const remoteReader = remote.stderr.pipeThrough(new TextDecoderStream()).getReader();
  await readUntil(remoteReader, remoteText, /\[failpoint\] paused at after-publish:1\n/);
  const holder = /\[fleet\] copier (\S+) joins/.exec(remoteText.value)![1];

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
  const localText = { value: "" };
  const localReader = local.stderr.pipeThrough(new TextDecoderStream()).getReader();
  await readUntil(localReader, localText, new RegExp(`waiting for 1 cell held by ${holder} `));
  await readUntil(localReader, localText, /\[partition\] committed range 1-20\n/);
  const takeover = (performance.now() - cutAt) / 1000;
  console.log(
    `takeover: cell 1-20 committed by the other copier ${takeover.toFixed(1)} s after the cut`,
  );
  // Liveness, not timing: the bound is the server's keepalive (about a minute); the test only
  // fails if the claim never dies.
  assert.ok(takeover < 180, `taken over after ${takeover.toFixed(0)} s`);
  await readUntil(localReader, localText, /\[copier\] complete\n/);
  assert.equal((await local.status).code, 0, localText.value);
  // The adopted bytes are the cut copier's own: deterministic, the same file.
  assert.match(localText.value, /\[storage\] adopted \S+part-1-20\.parquet/);

  // The cable returns; the cut copier goes on from its pause, and must not commit.
  await host.restore();
  remote.kill("SIGUSR1");
  for (;;) {
    const { value, done } = await remoteReader.read();
    if (done) break;
    remoteText.value += value;
  }
  const status = await remote.status;
  assert.notEqual(status.code, 0, remoteText.value);
  assert.doesNotMatch(remoteText.value, /\[partition\] committed range 1-20/);
  console.log(`the cut copier ended with: ${remoteText.value.trimEnd().split("\n").at(-1)}`);
  assert.match(remoteText.value, /lost the claims of copier|taken over by another copier|catalog /);

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
