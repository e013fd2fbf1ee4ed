/**
 * A catalog that goes away and comes back (issue 20, item 2): a private PostgreSQL cluster
 * (tests/support/pg_cluster.ts) restarted (`pg_ctl restart -m fast`) or stopped and started under
 * a range copy, a fleet of three and a follower. Each finishes without a rerun, its lineage equal
 * to a clean run's, every range committed once; the outage is seen from outside (/healthz
 * "degraded: retrying catalog", bronze_catalog_reconnects_total, one line per burst). A catalog
 * down for longer than --catalog-retry-for ends the copy with one line and exit 75, and a rerun
 * completes exactly. A commit whose answer was lost (failpoint catalog-commit-answer, mode cut:
 * the server committed, the copier never heard) is resolved by reading lineage: committed once.
 *
 * The catalog goes away at a known point, never after a guessed delay: a copier paused at a
 * failpoint, or a line it said.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { catalogTarget, poolOf } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv, psqlLines } from "../support/copy.ts";
import { Copier, growingLake, range } from "../support/growing.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { clusterMissing, type PgCluster, pgCluster } from "../support/pg_cluster.ts";
import { until } from "../support/wait.ts";
import { openCatalog } from "../../lib/metadata/catalog.ts";
import { migrate } from "../../lib/metadata/migrate.ts";

const SIZE = 20;
const LEDGERS = 160;
const LAKE = {
  network: "testnet",
  start: 1,
  count: LEDGERS,
  lcmVersion: 2,
  ledgerBytes: 1024,
  seed: 11,
} as const;
/** What a reader of the catalog sees: every current range with its bytes' checksum. */
const CURRENT = `SELECT ledger_start || '-' || ledger_end || ' ' || checksum FROM _meta_lineage
  WHERE superseded_by IS NULL ORDER BY ledger_start`;
/** Every lineage row ever written (none may be there twice, current or not). */
const ALL_ROWS = `SELECT count(*) || ' rows, ' || count(DISTINCT (ledger_start, ledger_end))
  || ' ranges' FROM _meta_lineage`;

/** The lineage a clean run (no outage) records for `lake` from `start` to `end`. */
async function cleanLineage(lake: string, end: number): Promise<string[]> {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const r = await runCli(["copy", "--start", "1", "--end", String(end)], {
    env: { ...copyEnv(target, lake, out.path), PARTITION_SIZE: String(SIZE) },
  });
  assert.equal(r.code, 0, r.stderr);
  return psqlLines(target.dsn!, CURRENT);
}

/** Why the tests that stop and start a private cluster cannot run here (root, pg_ctl), if so. */
const MISSING = await clusterMissing();

/** A migrated private cluster; the DSN carries a password (trust ignores it) to see it redacted. */
async function migratedCluster(): Promise<{ cluster: PgCluster; dsn: string }> {
  const cluster = await pgCluster();
  try {
    const dsn = cluster.url().replace("postgres@", "postgres:s3cret-pw@");
    await using state = await tempDir();
    const c = await openCatalog({ dsn, stateDir: state.path });
    await migrate(c).finally(() => c.close());
    return { cluster, dsn };
  } catch (err) {
    await cluster[Symbol.asyncDispose]();
    throw err;
  }
}

function env(dsn: string, lake: string, storage: string, stateDir: string) {
  return {
    SOURCE_URL: lake,
    STORAGE_URL: storage,
    NETWORK: "testnet",
    CATALOG_DSN: dsn,
    STATE_DIR: stateDir,
    PROGRESS_INTERVAL: "0",
    PARTITION_SIZE: String(SIZE),
    CONCURRENCY: "1",
    POLL_INTERVAL: "200ms",
  };
}

/** /healthz's answer now. */
async function health(url: string): Promise<string> {
  const r = await fetch(`${url}/healthz`);
  return `${r.status} ${await r.text()}`;
}

/** bronze_catalog_reconnects_total now. */
async function reconnects(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^bronze_catalog_reconnects_total\{[^}]*\} (\d+)$/m.exec(text);
  assert.ok(m, "bronze_catalog_reconnects_total is exported");
  return Number(m[1]);
}

Deno.test({
  name:
    "a range copy rides through its catalog stopped mid-commit and started again: /healthz says degraded meanwhile, one line for the burst, lineage equals a clean run's",
  ignore: !!MISSING,
}, async () => {
  const lake = await syntheticLake(LAKE);
  const clean = await cleanLineage(lake, LEDGERS);
  const { cluster, dsn } = await migratedCluster();
  await using _cluster = cluster;
  await using out = await tempDir();
  await using state = await tempDir();
  // Paused with its second partition published and its manifest written, before the commit.
  await using copier = new Copier(
    {
      ...env(dsn, lake, out.path, state.path),
      BRONZE_FAILPOINT: "after-manifest:2:pause",
    },
    ["--start", "1", "--end", String(LEDGERS), "--metrics-addr", "127.0.0.1:0"],
  );
  const [, url] = await copier.until(/\[metrics\] serving (http:\/\/\S+)\/metrics/);
  await copier.until(/\[failpoint\] paused at after-manifest:2\n/);
  await cluster.stop();
  copier.child.kill("SIGUSR1");
  // The commit waits for the catalog, and says so.
  let said = "";
  await until(
    async () => (said = await health(url)).includes("retrying catalog"),
    "/healthz saying it retries the catalog",
  );
  assert.match(said, /^200 degraded: retrying catalog/);
  await cluster.start();
  const status = await copier.end();
  assert.equal(status.code, 0, copier.text);
  assert.match(copier.text, /\[warn\] retry: catalog: \d+ retries over \S+, recovered \(last: /);
  assert.equal(copier.text.match(/\[warn\] retry: catalog:/g)?.length, 1, copier.text);
  assert.match(copier.text, /\[catalog\] reconnected; re-claimed 1-160\n/);
  assert.doesNotMatch(copier.text, /s3cret-pw/);
  assert.deepEqual(psqlLines(dsn, CURRENT), clean);
  assert.deepEqual(psqlLines(dsn, ALL_ROWS), ["8 rows, 8 ranges"]);
});

Deno.test({
  name:
    "a range copy whose claim was taken again while its commit was paused publishes the partition again under the new claim (gc may have used the gap) and commits it once",
  ignore: !!MISSING,
}, async () => {
  const lake = await syntheticLake(LAKE);
  const clean = await cleanLineage(lake, LEDGERS);
  const { cluster, dsn } = await migratedCluster();
  await using _cluster = cluster;
  await using out = await tempDir();
  await using state = await tempDir();
  await using copier = new Copier(
    { ...env(dsn, lake, out.path, state.path), BRONZE_FAILPOINT: "after-manifest:2:pause" },
    ["--start", "1", "--end", String(LEDGERS)],
  );
  await copier.until(/\[failpoint\] paused at after-manifest:2\n/);
  await cluster.restart();
  // The claim session reconnects on its own, its range under a new claim, before the commit.
  await copier.until(/\[catalog\] reconnected; re-claimed 1-160\n/);
  copier.child.kill("SIGUSR1");
  const status = await copier.end();
  assert.equal(status.code, 0, copier.text);
  assert.match(
    copier.text,
    /\[catalog\] range 21-40: claimed again after the catalog came back; publishing it again under the new claim\n\[storage\] adopted \S+part-21-40\.parquet: already stored with the same sha256\n\[partition\] committed range 21-40\n/,
  );
  assert.doesNotMatch(copier.text, /then a final error/);
  assert.deepEqual(psqlLines(dsn, CURRENT), clean);
  assert.deepEqual(psqlLines(dsn, ALL_ROWS), ["8 rows, 8 ranges"]);
});

Deno.test({
  name:
    "a fleet of three rides through a catalog restart while one holds a cell mid-commit and two wait for it: all finish, every cell committed once",
  ignore: !!MISSING,
}, async () => {
  const lake = await syntheticLake(LAKE);
  const clean = await cleanLineage(lake, LEDGERS);
  const { cluster, dsn } = await migratedCluster();
  await using _cluster = cluster;
  await using out = await tempDir();
  await using state = await tempDir();
  const fleet = (name: string, extra: Record<string, string> = {}) =>
    new Copier({
      ...env(dsn, lake, out.path, join(state.path, name)),
      LEDGER_START: "1",
      LEDGER_END: String(LEDGERS),
      FLEET: "true",
      COPIER_ID: name,
      ...extra,
    }, []);
  const a = fleet("copier-a", { BRONZE_FAILPOINT: "after-manifest:2:pause" });
  const copiers = [a];
  try {
    await a.until(/\[failpoint\] paused at after-manifest:2\n/);
    copiers.push(fleet("copier-b"), fleet("copier-c"));
    // B and C copy every other cell, then wait for A's.
    for (const c of copiers.slice(1)) await c.until(/waiting for 1 cell held by copier-a /);
    await cluster.restart();
    a.child.kill("SIGUSR1");
    for (const c of copiers) {
      const status = await c.end();
      assert.equal(status.code, 0, c.text);
    }
  } finally {
    for (const c of copiers) await c[Symbol.asyncDispose]();
  }
  // Each copier reconnected: A's cell was its again, or left to the one that took it, or committed
  // and released before A re-claimed.
  for (const c of copiers) assert.match(c.text, /\[catalog\] reconnected; /);
  assert.deepEqual(psqlLines(dsn, CURRENT), clean);
  assert.deepEqual(psqlLines(dsn, ALL_ROWS), ["8 rows, 8 ranges"]);
  assert.deepEqual(psqlLines(dsn, `SELECT count(*) FROM _meta_copier_claims`), ["0"]);
});

Deno.test({
  name:
    "a follower rides through its catalog stopped while it waits at the head: it reconnects (counted), re-claims its range and follows on to its end",
  ignore: !!MISSING,
}, async () => {
  const { cluster, dsn } = await migratedCluster();
  await using _cluster = cluster;
  await using dir = await tempDir();
  await using out = await tempDir();
  await using state = await tempDir();
  const lake = await growingLake(dir.path);
  const clean = await cleanLineage(lake.full, 120);
  await lake.publish(...range(1, 60));
  await using copier = new Copier(env(dsn, lake.url, out.path, state.path), [
    "--follow",
    "--start",
    "1",
    "--end",
    "120",
    "--metrics-addr",
    "127.0.0.1:0",
  ]);
  const [, url] = await copier.until(/\[metrics\] serving (http:\/\/\S+)\/metrics/);
  await copier.until(/\[follow\] caught up at ledger 60;/);
  assert.equal(await reconnects(url), 0);
  await cluster.stop();
  await until(
    async () => (await health(url)).includes("retrying catalog"),
    "/healthz saying the follower retries the catalog",
  );
  // The lake grows while the catalog is away; the follower copies it once it is back.
  await lake.publish(...range(61, 120));
  await cluster.start();
  await copier.until(/\[catalog\] reconnected; re-claimed 1-120\n/);
  await until(async () => await reconnects(url) === 1, "one reconnect counted");
  const status = await copier.end();
  assert.equal(status.code, 0, copier.text);
  assert.match(copier.text, /\[warn\] retry: catalog: \d+ retries over \S+, recovered/);
  assert.deepEqual(psqlLines(dsn, CURRENT), clean);
  assert.deepEqual(psqlLines(dsn, ALL_ROWS), ["6 rows, 6 ranges"]);
});

Deno.test({
  name:
    "a catalog down longer than --catalog-retry-for ends the copy with one line naming it (password redacted) and exit 75; a rerun completes exactly",
  ignore: !!MISSING,
}, async () => {
  const lake = await syntheticLake(LAKE);
  const clean = await cleanLineage(lake, LEDGERS);
  const { cluster, dsn } = await migratedCluster();
  await using _cluster = cluster;
  await using out = await tempDir();
  await using state = await tempDir();
  const e = env(dsn, lake, out.path, state.path);
  const args = ["--start", "1", "--end", String(LEDGERS), "--catalog-retry-for", "2s"];
  await using copier = new Copier({ ...e, BRONZE_FAILPOINT: "after-manifest:2:pause" }, args);
  await copier.until(/\[failpoint\] paused at after-manifest:2\n/);
  await cluster.stop();
  copier.child.kill("SIGUSR1");
  const status = await copier.end();
  assert.equal(status.code, 75, copier.text);
  const last = copier.text.trimEnd().split("\n").at(-1)!;
  assert.match(
    last,
    /^bronze: cannot reach catalog postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres: connection refused.* \(still failing after \d+ attempts over \S+: a temporary failure that outlasted --catalog-retry-for; run again\)$/,
  );
  assert.doesNotMatch(copier.text, /s3cret-pw/);
  assert.equal(copier.text.match(/^bronze: /gm)?.length, 1, copier.text);
  await cluster.start();
  assert.deepEqual(psqlLines(dsn, ALL_ROWS), ["1 rows, 1 ranges"]);
  const rerun = await runCli(["copy", ...args], { env: e });
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.deepEqual(psqlLines(dsn, CURRENT), clean);
  assert.deepEqual(psqlLines(dsn, ALL_ROWS), ["8 rows, 8 ranges"]);
});

Deno.test("a commit whose answer was lost is resolved by reading lineage: committed once, the copy goes on", async () => {
  const lake = await syntheticLake(LAKE);
  const clean = await cleanLineage(lake, LEDGERS);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  // The server commits the second partition; the copier's connection is cut before it hears so.
  const r = await runCli(["copy", "--start", "1", "--end", String(LEDGERS)], {
    env: {
      ...copyEnv(target, lake, out.path),
      PARTITION_SIZE: String(SIZE),
      CONCURRENCY: "1",
      BRONZE_FAILPOINT: "catalog-commit-answer:2:cut",
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /\[failpoint\] cut at catalog-commit-answer:2\n/);
  assert.match(
    r.stderr,
    /\[warn\] retry: catalog: 1 retry over \S+, recovered \(last: .*connection cut/,
  );
  assert.equal(r.stderr.match(/committed range 21-40\n/g)?.length, 1, r.stderr);
  assert.deepEqual(psqlLines(target.dsn!, CURRENT), clean);
  assert.deepEqual(psqlLines(target.dsn!, ALL_ROWS), ["8 rows, 8 ranges"]);
  // Its quality rows and its DuckLake data file were written once, like every other partition's.
  assert.deepEqual(
    psqlLines(
      target.dsn!,
      `SELECT count(DISTINCT n) FROM
         (SELECT count(*) AS n FROM _meta_quality GROUP BY lineage_id) q`,
    ),
    ["1"],
    "every partition has as many quality rows",
  );
  assert.deepEqual(
    psqlLines(
      target.dsn!,
      `SELECT count(*) || ' files, ' || count(DISTINCT path) || ' paths'
      FROM ducklake_data_file`,
    ),
    ["8 files, 8 paths"],
  );
});

Deno.test("a copy using another copy's embedded catalog rides through that process's death: it runs the catalog itself, re-claims its range and finishes; the other's rerun completes exactly", async () => {
  const lake = await syntheticLake(LAKE);
  const clean = await cleanLineage(lake, LEDGERS);
  await using out = await tempDir();
  await using state = await tempDir();
  const half = LEDGERS / 2;
  const e = (name: string, start: number, end: number) => ({
    SOURCE_URL: lake,
    STORAGE_URL: out.path,
    NETWORK: "testnet",
    STATE_DIR: state.path,
    CHECKPOINT_URL: join(state.path, `${name}.json`),
    COPIER_ID: name,
    PROGRESS_INTERVAL: "0",
    PARTITION_SIZE: String(SIZE),
    CONCURRENCY: "1",
    LEDGER_START: String(start),
    LEDGER_END: String(end),
  });
  const pause = { BRONZE_FAILPOINT: "after-manifest:2:pause" };
  // A runs the embedded catalog; B, started once A serves it, is its client.
  const a = new Copier({ ...e("copier-a", 1, half), ...pause }, []);
  const copiers = [a];
  try {
    await a.until(/\[failpoint\] paused at after-manifest:2\n/);
    const b = new Copier({ ...e("copier-b", half + 1, LEDGERS), ...pause }, []);
    copiers.push(b);
    await b.until(/\[failpoint\] paused at after-manifest:2\n/);
    a.child.kill("SIGKILL");
    assert.equal((await a.end()).signal, "SIGKILL");
    b.child.kill("SIGUSR1");
    const status = await b.end();
    assert.equal(status.code, 0, b.text);
    assert.match(b.text, /\[warn\] retry: catalog: \d+ retr(y|ies) over \S+, recovered/);
    assert.match(b.text, /\[catalog\] reconnected; re-claimed 81-160\n/);
  } finally {
    for (const c of copiers) await c[Symbol.asyncDispose]();
  }
  const rerun = await runCli(["copy"], { env: e("copier-a", 1, half) });
  assert.equal(rerun.code, 0, rerun.stderr);
  const c = await openCatalog({ stateDir: state.path });
  try {
    const rows = async (sql: string) =>
      (await poolOf(c).query(sql)).rows.map((r: Record<string, unknown>) => Object.values(r)[0]);
    assert.deepEqual(await rows(CURRENT), clean);
    assert.deepEqual(await rows(ALL_ROWS), ["8 rows, 8 ranges"]);
  } finally {
    await c.close();
  }
});
