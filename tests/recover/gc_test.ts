/**
 * bronze gc: the orphans SIGKILLed copies leave (crash failpoints after-publish and
 * after-manifest) and a temp file of a killed writer are listed, kept while younger than the grace
 * period, and deleted with --apply; files lineage references are never touched; an orphan inside
 * a live copier's claim is kept, one inside a dead claim is not (and that claim is swept, so its
 * copier, paused before its catalog commit, commits nothing).
 *
 * Ages: a test cannot make a file old (the file store dates an object by the later of mtime and
 * ctime, and nothing sets ctime back), so "older than the grace period" is `--older-than 0s`,
 * and "younger" is the default 24h, which every file made by the test is.
 */
import { resolveSettings } from "../../lib/settings/mod.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hostname } from "node:os";
import { copy } from "../../lib/copy/run.ts";
import { memoryLogger } from "../../lib/runtime/log.ts";
import { openStore } from "../../lib/blob/mod.ts";
import { ClaimSession, SWEEP_LOCK_CLASS } from "../../lib/metadata/claims.ts";
import { withSweepLock } from "../../lib/metadata/gc.ts";
import { catalogStatus } from "../../lib/metadata/status.ts";
import { verify } from "../../lib/verify/verify.ts";
import { gcCommand } from "../../lib/cli/commands/gc.ts";
import { formatBytes } from "../../lib/runtime/format.ts";
import { datasetPrefix, manifestKey, partitionKey } from "../../lib/table/layout.ts";
import { CATALOG_KINDS, type CatalogTarget, catalogTarget, poolOf } from "../support/catalogs.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { copyOptions, lineageRows } from "../support/copy.ts";
import { s3Env, startS3rver, withEnv } from "../support/servers.ts";
import { runCli } from "../support/cli.ts";
import { countingProxy } from "../support/pg_proxy.ts";
import { until, WAIT_MS } from "../support/wait.ts";
import { Copier } from "../support/growing.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const LAKE = { network: "testnet", start: 1, count: 1000, lcmVersion: 2 } as const;
const DS = { network: "testnet", eraId: "pre_p23", version: "v1" };
const part = (start: number, end: number) => partitionKey(DS, { start, end });
const manifest = (start: number, end: number) => manifestKey(DS, { start, end });
const TEMP = `${datasetPrefix(DS)}range=1-100/.part-1-100.parquet.tmp-0123456789abcdef`;

/** The environment of a `bronze copy` child into `target` (either kind of catalog). */
function copyEnv(
  target: CatalogTarget,
  source: string,
  storage: string,
  start: number,
  end: number,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    SOURCE_URL: source,
    STORAGE_URL: storage,
    NETWORK: "testnet",
    ERA_ID: "pre_p23",
    COPIER_ID: "test-copier",
    STATE_DIR: target.stateDir,
    PARTITION_SIZE: "100",
    PROGRESS_INTERVAL: "0",
    LEDGER_START: String(start),
    LEDGER_END: String(end),
    ...(target.dsn ? { CATALOG_DSN: target.dsn } : {}),
    ...extra,
  };
}

/** `bronze copy` SIGKILLed by the failpoint: it leaves its first partition unrecorded. */
async function killedCopy(env: Record<string, string>, failpoint: string): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "copy"],
    env: { ...env, BRONZE_FAILPOINT: failpoint },
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(WAIT_MS),
  }).output();
  assert.equal(out.signal, "SIGKILL", new TextDecoder().decode(out.stderr));
}

interface Report {
  storage: string;
  notes: string[];
  objects: {
    what: string;
    key: string;
    why: string;
    outcome: string;
    reason: string | null;
    size: number;
  }[];
  summary: Record<string, number>;
}

/** `bronze gc --json` in this process; the report, its exit code and its stderr lines. */
async function runGc(
  target: CatalogTarget,
  storage: string | undefined,
  flags: Record<string, string | boolean> = {},
): Promise<{ code: number; report: Report; errs: string[] }> {
  const lines: string[] = [];
  const errs: string[] = [];
  const code = await gcCommand(
    resolveSettings("gc", {
      catalog: target.dsn,
      stateDir: target.stateDir,
      storage,
      json: true,
      ...flags,
    }, () => undefined),
    (l) => lines.push(l),
    (l) => errs.push(l),
  );
  return { code, report: JSON.parse(lines.join("")), errs };
}

const verdicts = (r: Report) => r.objects.map((o) => [o.outcome, o.what, o.key, o.reason]);
const YOUNG = "younger than 24h (grace period)";

/** sha256 and inode of each file: a referenced file must stay, byte for byte, the same file. */
async function fingerprint(root: string, keys: string[]): Promise<string[]> {
  return await Promise.all(keys.map(async (k) => {
    const path = join(root, k);
    const bytes = await readFile(path);
    return `${k} ${createHash("sha256").update(bytes).digest("hex")} ${(await stat(path)).ino}`;
  }));
}

async function exists(path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false);
}

for (const kind of CATALOG_KINDS) {
  Deno.test(`gc (${kind}): orphans of SIGKILLed copies and a temp file are listed, kept while young, deleted with --apply; referenced files untouched`, async () => {
    const source = await syntheticLake(LAKE);
    await using target = await catalogTarget(kind);
    await using out = await tempDir();
    await copy(
      copyOptions(target, { source, storage: out.path, start: 1, end: 200 }),
      memoryLogger(),
    );
    // Killed after publishing 201-300 (file only), and after writing 401-500's manifest.
    await killedCopy(copyEnv(target, source, out.path, 201, 300), "after-publish:1");
    await killedCopy(copyEnv(target, source, out.path, 401, 500), "after-manifest:1");
    // A writer killed mid-put leaves its temp file beside the object it was writing.
    await writeFile(join(out.path, TEMP), "half a manifest");
    const referenced = [manifest(1, 100), part(1, 100), manifest(101, 200), part(101, 200)];
    const before = await fingerprint(out.path, referenced);

    // Dry run, default grace period: everything is younger than 24h.
    const young = await runGc(target, out.path);
    assert.equal(young.code, 0);
    assert.deepEqual(verdicts(young.report), [
      ["kept", "temp", TEMP, YOUNG],
      ["kept", "orphan", part(201, 300), YOUNG],
      ["kept", "manifest", manifest(401, 500), YOUNG],
      ["kept", "orphan", part(401, 500), YOUNG],
    ]);
    // --apply keeps them just the same: nothing is younger than the grace period and deleted.
    const applyYoung = await runGc(target, out.path, { apply: true });
    assert.deepEqual(verdicts(applyYoung.report), verdicts(young.report));
    assert.deepEqual(applyYoung.errs, []);
    assert.ok(await exists(join(out.path, part(201, 300))));

    // Past the grace period: a dry run lists them, and deletes nothing.
    const dry = await runGc(target, out.path, { olderThan: "0s" });
    assert.deepEqual(verdicts(dry.report), [
      ["delete", "temp", TEMP, null],
      ["delete", "orphan", part(201, 300), null],
      ["delete", "manifest", manifest(401, 500), null],
      ["delete", "orphan", part(401, 500), null],
    ]);
    assert.equal(dry.report.summary.would_delete, 4);
    for (const k of [TEMP, part(201, 300), manifest(401, 500), part(401, 500)]) {
      assert.ok(await exists(join(out.path, k)), k);
    }

    const applied = await runGc(target, out.path, { olderThan: "0s", apply: true });
    assert.equal(applied.code, 0, applied.errs.join("\n"));
    assert.deepEqual(
      verdicts(applied.report),
      verdicts(dry.report).map(([, ...rest]) => ["deleted", ...rest]),
    );
    assert.equal(applied.report.summary.deleted, 4);
    assert.deepEqual(
      applied.errs,
      applied.report.objects.map((o) =>
        `[gc] deleted ${out.path}/${o.key} (${o.what}, ${formatBytes(o.size)})`
      ),
    );
    for (const k of [TEMP, part(201, 300), manifest(401, 500), part(401, 500)]) {
      assert.equal(await exists(join(out.path, k)), false, k);
    }
    assert.deepEqual(await fingerprint(out.path, referenced), before, "referenced files untouched");
    const again = await runGc(target, out.path, { olderThan: "0s", apply: true });
    assert.deepEqual(again.report.objects, []);

    // The catalog never knew the orphans: a copy builds them anew, and everything verifies.
    const resumed = await copy(
      copyOptions(target, { source, storage: out.path, start: 1, end: 500 }),
      memoryLogger(),
    );
    assert.deepEqual(resumed.adopted, []);
    assert.deepEqual(
      (await lineageRows(target)).map((r) => `${r.ledger_start}-${r.ledger_end}`),
      ["1-100", "101-200", "201-300", "301-400", "401-500"],
    );
    const checked = await verify(
      { catalog: target.dsn, stateDir: target.stateDir, progressInterval: 0, noRecord: false },
      memoryLogger(),
    );
    assert.deepEqual([checked.passed, checked.failed], [5, 0]);
  });
}

Deno.test("gc --apply keeps an orphan inside a live copier's claim, sweeps a dead claim and deletes what it covered", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await copy(
    copyOptions(target, { source, storage: out.path, start: 1, end: 100 }),
    memoryLogger(),
  );
  await killedCopy(copyEnv(target, source, out.path, 101, 200), "after-publish:1");
  await killedCopy(copyEnv(target, source, out.path, 201, 300), "after-publish:1");
  const c = await target.open();
  const pool = poolOf(c);
  const { rows: [ds] } = await pool.query("SELECT id FROM _meta_datasets");
  const holder = await ClaimSession.open(c, { id: ds.id, label: "v1" }, "holder");
  const gone = await ClaimSession.open(c, { id: ds.id, label: "v1" }, "gone");
  try {
    await holder.claimRange(101, 200);
    await gone.claimRange(201, 300);
    // The second one's session ends (its copier's VM vanished): its row stays until swept.
    await pool.query(
      `SELECT pg_terminate_backend(backend_pid) FROM _meta_copier_claims WHERE copier_id = 'gone'`,
    );
    const inClaim = `inside the claim of copier holder (host ${hostname()}, pid ${Deno.pid}) ` +
      `on 101-200: it may adopt it`;

    const dry = await runGc(target, out.path, { olderThan: "0s" });
    assert.deepEqual(verdicts(dry.report), [
      ["kept", "orphan", part(101, 200), inClaim],
      ["delete", "orphan", part(201, 300), null],
    ]);
    const claims = async () =>
      (await pool.query(`SELECT copier_id FROM _meta_copier_claims ORDER BY id`)).rows
        .map((r: { copier_id: string }) => r.copier_id);
    assert.deepEqual(await claims(), ["holder", "gone"], "a dry run writes nothing");

    const applied = await runGc(target, out.path, { olderThan: "0s", apply: true });
    assert.equal(applied.code, 0);
    assert.deepEqual(verdicts(applied.report), [
      ["kept", "orphan", part(101, 200), inClaim],
      ["deleted", "orphan", part(201, 300), null],
    ]);
    assert.ok(await exists(join(out.path, part(101, 200))));
    assert.equal(await exists(join(out.path, part(201, 300))), false);
    assert.deepEqual(await claims(), ["holder"], "gc swept the dead claim, as a claimer would");

    await holder.close();
    const released = await runGc(target, out.path, { olderThan: "0s", apply: true });
    assert.deepEqual(verdicts(released.report), [["deleted", "orphan", part(101, 200), null]]);
  } finally {
    await holder.close();
    await gone.close();
    await c.close();
  }
});

Deno.test("while gc holds a dataset's sweep lock, a copier's claim on it waits until gc's batch is done", async () => {
  await using target = await catalogTarget("postgres");
  const c = await target.open();
  const pool = poolOf(c);
  const { rows: [ds] } = await pool.query(
    `INSERT INTO _meta_datasets (domain, dataset, version, era_id, network)
     VALUES ('bronze', 'ledgers_lcm_raw', 'v1', 'pre_p23', 'testnet') RETURNING id`,
  );
  const copier = await ClaimSession.open(c, { id: ds.id, label: "v1" }, "copier");
  try {
    let claimed: Promise<unknown> | undefined;
    const seen = await withSweepLock(c, { id: ds.id, label: "v1" }, async (locked) => {
      claimed = copier.claimRange(1, 100);
      // Its claiming transaction queues behind gc's lock: wait until the catalog shows it so.
      await until(
        async () =>
          (await pool.query(
            `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
               AND classid::bigint = $1 AND objid::bigint = $2`,
            [SWEEP_LOCK_CLASS, ds.id],
          )).rows.length > 0,
        "the copier's claim queueing behind gc's sweep lock",
      );
      await locked.stillLocked();
      return await locked.claims(); // what gc decides on: no claim can appear meanwhile
    });
    assert.deepEqual(seen, []);
    await claimed;
    assert.deepEqual(copier.held.map((h) => [h.start, h.end]), [[1, 100]]);
  } finally {
    await copier.close();
    await c.close();
  }
});

Deno.test("a copier cut off from its catalog while paused before its commit, its claim swept and its files taken by gc: once back it claims the range again, publishes again and commits; no lineage row points at a deleted file", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await copy(
    copyOptions(target, { source, storage: out.path, start: 1, end: 100 }),
    memoryLogger(),
  );
  // The copier reaches its catalog through a link the test can cut (and the test past it).
  await using link = await countingProxy(target.dsn!, "/* unused */");
  const env = copyEnv(target, source, out.path, 101, 200, { CATALOG_DSN: link.dsn });
  await using copier = new Copier({ ...env, BRONZE_FAILPOINT: "after-manifest:1:pause" }, []);
  await copier.until(/\[failpoint\] paused at after-manifest:1\n/);
  // Paused between its manifest and its catalog commit: the link goes, its catalog session with
  // it, so its claim is dead, and gc, past the grace period, takes the files.
  link.cut();
  const c = await target.open();
  try {
    await until(async () => {
      const { rows } = await poolOf(c).query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()`,
      );
      return rows[0].n === 0;
    }, "the server ending the cut copier's sessions");
  } finally {
    await c.close();
  }
  const gcReport = (await runGc(target, out.path, { olderThan: "0s", apply: true })).report;
  assert.deepEqual(verdicts(gcReport), [
    ["deleted", "manifest", manifest(101, 200), null],
    ["deleted", "orphan", part(101, 200), null],
  ]);
  // The link returns: the copier reconnects and claims its range again, then goes on.
  link.restore();
  await copier.until(/\[catalog\] reconnected; re-claimed 101-200\n/);
  copier.child.kill("SIGUSR1");
  const status = await copier.end();
  assert.equal(status.code, 0, copier.text);
  assert.match(
    copier.text,
    /\[catalog\] range 101-200: claimed again after the catalog came back; publishing it again under the new claim\n/,
  );
  // Every lineage row points at a stored file: the one gc deleted was published again.
  const rows = await lineageRows(target);
  assert.deepEqual(rows.map((r) => r.storage_path), [part(1, 100), part(101, 200)]);
  for (const r of rows) assert.ok(await exists(join(out.path, r.storage_path)), r.storage_path);
  assert.ok(await exists(join(out.path, manifest(101, 200))));
});

/** Superseded partitions whose files the status page counts as still gc's. */
async function awaitingGc(target: CatalogTarget): Promise<number> {
  const c = await target.open();
  try {
    return (await catalogStatus(c)).datasets.reduce((n, d) => n + d.superseded, 0);
  } finally {
    await c.close();
  }
}

Deno.test("gc and compaction: a superseded partial's file and manifest are kept while the compaction is younger than the grace period, deleted after and noted on their rows; the full file and every lineage row stay", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  for (const [s, e] of [[1, 40], [41, 100], [101, 200]]) {
    await copy(
      copyOptions(target, { source, storage: out.path, start: s, end: e }),
      memoryLogger(),
    );
  }
  const env = copyEnv(target, source, out.path, 1, 200);
  delete env.LEDGER_START, delete env.LEDGER_END, delete env.COPIER_ID;
  const compacted = await runCli(["compact"], { env });
  assert.equal(compacted.code, 0, compacted.stderr);
  const rows = await lineageRows(target);
  const full = rows.find((r) => r.ledger_start === 1 && r.ledger_end === 100);
  assert.ok(full, "the compaction recorded 1-100");
  const referenced = [manifest(1, 100), part(1, 100), manifest(101, 200), part(101, 200)];
  const before = await fingerprint(out.path, referenced);
  const partials = [manifest(1, 40), part(1, 40), manifest(41, 100), part(41, 100)];

  // Just compacted: a reader that listed the partials a moment ago must still find them.
  const young = await runGc(target, out.path, { apply: true });
  assert.deepEqual(verdicts(young.report), partials.map((k) => ["kept", "superseded", k, YOUNG]));
  for (const o of young.report.objects) {
    assert.match(
      o.why,
      /^superseded by lineage row \d+ \(a compaction\) at \d{4}-/,
    );
  }
  for (const k of partials) assert.ok(await exists(join(out.path, k)), k);
  assert.equal(await awaitingGc(target), 2, "the status page counts both superseded files");

  // Past the grace period (which runs from the compaction, on the catalog's clock): they go.
  const applied = await runGc(target, out.path, { olderThan: "0s", apply: true });
  assert.equal(applied.code, 0, applied.errs.join("\n"));
  assert.deepEqual(
    verdicts(applied.report),
    partials.map((k) => ["deleted", "superseded", k, null]),
  );
  for (const k of partials) assert.equal(await exists(join(out.path, k)), false, k);
  assert.deepEqual(await fingerprint(out.path, referenced), before, "current files untouched");
  // Each deleted Parquet file is noted on its superseded row (a gc_deleted quality row): the
  // status page no longer counts them as awaiting gc.
  const c = await target.open();
  try {
    const { rows: noted } = await poolOf(c).query(
      `SELECT l.ledger_start, l.ledger_end, q.metric_value FROM _meta_quality q
       JOIN _meta_lineage l ON l.id = q.lineage_id
       WHERE q.metric_name = 'gc_deleted' ORDER BY l.ledger_start`,
    );
    assert.deepEqual(noted, [
      { ledger_start: 1, ledger_end: 40, metric_value: 1 },
      { ledger_start: 41, ledger_end: 100, metric_value: 1 },
    ]);
  } finally {
    await c.close();
  }
  assert.equal(await awaitingGc(target), 0);
  // The lineage keeps the superseded rows (the record of what was replaced), and what is current
  // still verifies.
  const ranges = (rs: typeof rows) => rs.map((r) => `${r.ledger_start}-${r.ledger_end}`);
  assert.deepEqual(ranges(await lineageRows(target)), ranges(rows));
  assert.deepEqual(ranges(rows), ["1-40", "1-100", "41-100", "101-200"]);
  const checked = await verify(
    { catalog: target.dsn, stateDir: target.stateDir, progressInterval: 0, noRecord: false },
    memoryLogger(),
  );
  assert.deepEqual([checked.passed, checked.failed], [2, 0]);
});

Deno.test("gc works in each dataset's own storage root: a --storage that is not it is refused, naming both; without one, the recorded root", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await using other = await tempDir();
  await copy(
    copyOptions(target, { source, storage: out.path, start: 1, end: 100 }),
    memoryLogger(),
  );
  await killedCopy(copyEnv(target, source, out.path, 101, 200), "after-publish:1");
  await cp(out.path, other.path, { recursive: true });

  // Another catalog's lake, or gc pointed at the wrong storage: nothing is looked at, let alone
  // deleted.
  await assert.rejects(
    () => runGc(target, other.path, { olderThan: "0s", apply: true }),
    (err: Error & { exitCode?: number }) => {
      assert.equal(
        err.message,
        `bronze.ledgers_lcm_raw (testnet/pre_p23/v1): its storage is ${out.path}, not ` +
          `${other.path} (a dataset keeps the storage and grid it was registered with: drop ` +
          `the flag, or give the dataset's)`,
      );
      assert.equal(err.exitCode, 2);
      return true;
    },
  );
  assert.ok(await exists(join(other.path, part(101, 200))));
  // The same root spelled as a file:// URL is the dataset's; so is no --storage at all.
  const here = await runGc(target, `file://${out.path}`);
  assert.deepEqual(verdicts(here.report), [["kept", "orphan", part(101, 200), YOUNG]]);
  const recorded = await runGc(target, undefined, { olderThan: "0s", apply: true });
  assert.equal(recorded.report.storage, out.path);
  assert.deepEqual(verdicts(recorded.report), [["deleted", "orphan", part(101, 200), null]]);
});

Deno.test("gc against s3:// storage (s3rver): an orphan and its manifest listed, then deleted with --apply", async () => {
  const source = await syntheticLake(LAKE);
  const s3 = await startS3rver(["parts"]);
  try {
    await using target = await catalogTarget("postgres");
    const storage = "s3://parts/bronze";
    await withEnv(s3Env(s3.endpoint), async () => {
      await copy(copyOptions(target, { source, storage, start: 1, end: 100 }), memoryLogger());
      await killedCopy(
        copyEnv(target, source, storage, 101, 200, s3Env(s3.endpoint)),
        "after-manifest:1",
      );
      const young = await runGc(target, storage);
      assert.deepEqual(verdicts(young.report), [
        ["kept", "manifest", manifest(101, 200), YOUNG],
        ["kept", "orphan", part(101, 200), YOUNG],
      ]);
      // s3rver ignores If-Match on DeleteObject, so the version check is not exercised here
      // (the file store's test above exercises it; AWS honours it).
      const applied = await runGc(target, storage, { olderThan: "0s", apply: true });
      assert.equal(applied.code, 0, applied.errs.join("\n"));
      assert.deepEqual(verdicts(applied.report), [
        ["deleted", "manifest", manifest(101, 200), null],
        ["deleted", "orphan", part(101, 200), null],
      ]);
      const left: string[] = [];
      for await (const o of openStore(storage).list("")) left.push(o.key);
      assert.deepEqual(left, [manifest(1, 100), part(1, 100)]);
    });
  } finally {
    await s3.stop();
  }
});

Deno.test("gc settings: --older-than takes 0s and days, defaults to 24h, names a bad value", () => {
  const olderThan = (raw?: string) =>
    resolveSettings("gc", raw === undefined ? {} : { olderThan: raw }, () => undefined).olderThan;
  assert.equal(olderThan(), 86_400);
  assert.equal(olderThan("0s"), 0);
  assert.equal(olderThan("30m"), 1800);
  assert.equal(olderThan("7d"), 604_800);
  assert.throws(() => olderThan("soon"), {
    message: `--older-than must be an age such as 0s, 30m, 24h or 7d, got "soon"`,
  });
  assert.equal(resolveSettings("gc", {}, () => undefined).apply, false);
});
