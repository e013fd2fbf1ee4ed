/**
 * Compaction, through the CLI: a followed dataset ends up byte-identical to a backfilled one; a
 * kill at any step leaves either the partials current or the full row current, never both, never
 * neither; two compactors at once; the migration keeps an existing catalog's rows and rules.
 */
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { openCatalog } from "../../lib/metadata/catalog.ts";
import { migrate, migrateFirst, MIGRATIONS_DIR } from "../../lib/metadata/migrate.ts";
import {
  type CatalogTarget,
  catalogTarget,
  createTestDatabase,
  poolOf,
} from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv } from "../support/copy.ts";
import { Copier, growingLake, range } from "../support/growing.ts";
import { tempDir } from "../support/lakes.ts";
import { testTempDir } from "../support/leftovers.ts";

const SIZE = 20;

interface Row {
  id: number;
  ledger_start: number;
  ledger_end: number;
  checksum: string;
  storage_path: string;
  superseded_by: number | null;
}

async function rows(target: CatalogTarget): Promise<Row[]> {
  const c = await target.open();
  try {
    return (await poolOf(c).query<Row>(
      `SELECT id, ledger_start, ledger_end, checksum, storage_path, superseded_by
       FROM _meta_lineage ORDER BY ledger_start, id`,
    )).rows;
  } finally {
    await c.close();
  }
}

const current = (all: Row[]) =>
  all.filter((r) => r.superseded_by === null).map((r) =>
    `${r.ledger_start}-${r.ledger_end} ${r.checksum}`
  );

/** A backfill of the same ledgers: the reference the compacted files must equal. */
async function backfill(lake: string, end: number): Promise<{ lineage: string[]; out: string }> {
  await using target = await catalogTarget("postgres");
  const out = await testTempDir("backfill");
  const r = await runCli(["copy", "--start", "1", "--end", String(end)], {
    env: { ...copyEnv(target, lake, out), PARTITION_SIZE: String(SIZE) },
  });
  assert.equal(r.code, 0, r.stderr);
  return { lineage: current(await rows(target)), out };
}

function env(target: CatalogTarget, lake: string, storage: string) {
  return {
    ...copyEnv(target, lake, storage),
    PARTITION_SIZE: String(SIZE),
    POLL_INTERVAL: "100ms",
  };
}

/** Partials of cells 1-20 and 21-40, as separate small copies leave them. */
async function partials(target: CatalogTarget, lake: string, storage: string) {
  for (const [s, e] of [[1, 7], [8, 20], [21, 26], [27, 33], [34, 40]]) {
    const r = await runCli(["copy", "--start", String(s), "--end", String(e)], {
      env: env(target, lake, storage),
    });
    assert.equal(r.code, 0, r.stderr);
  }
}

Deno.test("follow with a short flush interval, then compact: each compacted cell equals a backfill's (file and checksum); the partials stay, superseded; verify passes; gc past the grace period deletes exactly the superseded files", async () => {
  await using target = await catalogTarget("postgres");
  await using dir = await tempDir();
  await using out = await tempDir();
  const lake = await growingLake(dir.path);
  const e = env(target, lake.url, out.path);
  await lake.publish(...range(1, 7));
  const follower = new Copier(e, ["--follow", "--start", "1", "--flush-interval", "100ms"]);
  let committed = 7;
  await follower.until(/\[partition\] committed range 1-7\n/);
  for (const upTo of [13, 20, 29, 40, 52, 60]) {
    await lake.publish(...range(committed + 1, upTo));
    await follower.until(new RegExp(`\\[partition\\] committed range \\d+-${upTo}\\n`));
    committed = upTo;
  }
  follower.child.kill("SIGTERM");
  assert.equal((await follower.end()).code, 143, follower.text);
  const before = await rows(target);
  assert.ok(before.length > 3, "the follower left partials");

  const t0 = performance.now();
  const r = await runCli(["compact", "--json"], { env: e });
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.deepEqual(
    report.cells.map((
      c: { cell: { start: number }; outcome: string },
    ) => [c.cell.start, c.outcome]),
    [
      [1, "compacted"],
      [21, "compacted"],
      [41, "compacted"],
    ],
  );
  const after = await rows(target);
  const reference = await backfill(lake.url, 60);
  try {
    assert.deepEqual(current(after), reference.lineage);
    for (const row of after.filter((x) => x.superseded_by === null)) {
      assert.deepEqual(
        await Deno.readFile(join(out.path, row.storage_path)),
        await Deno.readFile(join(reference.out, row.storage_path)),
        `${row.storage_path} is byte-identical to the backfill's`,
      );
    }
  } finally {
    await Deno.remove(reference.out, { recursive: true });
  }
  // Every partial is still recorded (the follower left nothing but partials), marked with the
  // full row that replaced it.
  const superseded = after.filter((x) => x.superseded_by !== null);
  assert.deepEqual(superseded.map((x) => x.id).sort(), before.map((x) => x.id).sort());
  for (const s of superseded) {
    const full = after.find((x) => x.id === s.superseded_by)!;
    assert.ok(full.ledger_start <= s.ledger_start && s.ledger_end <= full.ledger_end);
  }
  const verified = await runCli(["verify"], { env: e });
  assert.equal(verified.code, 0, verified.stdout);
  // Past the grace period, gc deletes exactly the superseded partials' files and manifests.
  const files = async () =>
    (await readdir(out.path, { recursive: true, withFileTypes: true }))
      .filter((d) => d.isFile())
      .map((d) => relative(out.path, join(d.parentPath, d.name)))
      .sort();
  const beforeGc = await files();
  const gcRun = await runCli(["gc", "--apply", "--older-than", "0s", "--json"], { env: e });
  assert.equal(gcRun.code, 0, gcRun.stderr);
  const gone = superseded.flatMap((
    x,
  ) => [x.storage_path, x.storage_path.replace(/[^/]+$/, "_manifest.json")]).sort();
  assert.deepEqual(
    JSON.parse(gcRun.stdout).objects.map((
      o: { key: string; what: string; outcome: string },
    ) => [o.key, o.what, o.outcome]),
    gone.map((k) => [k, "superseded", "deleted"]).sort(),
  );
  const afterGc = await files();
  assert.deepEqual(afterGc, beforeGc.filter((f) => !gone.includes(f)));
  const history = JSON.parse((await runCli(["lineage", "--history", "--json"], { env: e })).stdout);
  assert.equal(history.datasets[0].partitions.length, after.length);
  const now = JSON.parse((await runCli(["lineage", "--json"], { env: e })).stdout);
  assert.equal(now.datasets[0].partitions.length, 3);
  console.log(
    `compaction: ${before.length} rows in 3 cells -> 3 current (+${superseded.length} superseded), ` +
      `${(seconds / 3).toFixed(2)} s per cell (CLI, process start included); ` +
      `files in storage ${beforeGc.length} -> ${afterGc.length} after gc --apply`,
  );
  // Nothing left to do.
  const again = await runCli(["compact"], { env: e });
  assert.match(again.stdout, /^nothing to compact/);
});

for (const step of ["after-publish", "after-manifest", "after-catalog"]) {
  Deno.test(`compaction killed ${step}: the partials or the full row are current, never both, never neither; the next compaction completes it`, async () => {
    await using target = await catalogTarget("postgres");
    await using dir = await tempDir();
    await using out = await tempDir();
    const lake = await growingLake(dir.path);
    await lake.publish(...range(1, 40));
    await partials(target, lake.url, out.path);
    const e = env(target, lake.url, out.path);
    const killed = await runCli(["compact"], { env: { ...e, BRONZE_FAILPOINT: `${step}:1` } });
    assert.equal(killed.code, 137, killed.stderr);
    const mid = await rows(target);
    for (const cell of [[1, 20], [21, 40]]) {
      const inCell = mid.filter((r) => r.ledger_start >= cell[0] && r.ledger_end <= cell[1]);
      const cur = inCell.filter((r) => r.superseded_by === null);
      const full = cur.filter((r) => r.ledger_start === cell[0] && r.ledger_end === cell[1]);
      // Current rows cover the cell exactly once: either the partials or the full row.
      assert.equal(
        cur.reduce((n, r) => n + r.ledger_end - r.ledger_start + 1, 0),
        20,
        JSON.stringify(cur),
      );
      assert.ok(full.length === 0 || cur.length === 1, JSON.stringify(cur));
    }
    const done = await runCli(["compact"], { env: e });
    assert.equal(done.code, 0, done.stderr);
    const reference = await backfill(lake.url, 40);
    try {
      assert.deepEqual(current(await rows(target)), reference.lineage);
    } finally {
      await Deno.remove(reference.out, { recursive: true });
    }
  });
}

Deno.test("two compactors at once: the second finds the cell claimed and leaves it; once the first is gone, the cell is compacted once", async () => {
  await using target = await catalogTarget("postgres");
  await using dir = await tempDir();
  await using out = await tempDir();
  const lake = await growingLake(dir.path);
  await lake.publish(...range(1, 40));
  await partials(target, lake.url, out.path);
  const e = env(target, lake.url, out.path);
  const first = new Copier({ ...e, BRONZE_FAILPOINT: "after-publish:1:pause" }, [], "compact");
  await first.until(/\[failpoint\] paused at after-publish:1\n/);
  const second = await runCli(["compact", "--start", "1", "--end", "20"], { env: e });
  assert.equal(second.code, 0, second.stderr);
  assert.match(
    second.stdout,
    /SKIPPED \S+ \S+ 1-20: range 1-20 of .* overlaps 1-20, being copied by copier compactor-/,
  );
  first.child.kill("SIGKILL");
  await first.end();
  const third = await runCli(["compact"], { env: e });
  assert.equal(third.code, 0, third.stderr);
  const all = await rows(target);
  assert.deepEqual(current(all).map((x) => x.split(" ")[0]), ["1-20", "21-40"]);
  assert.equal(all.filter((r) => r.superseded_by !== null).length, 5);
});

Deno.test("a catalog at the previous schema migrates in place: every row kept, the rules hold for current rows", async () => {
  const db = await createTestDatabase();
  await using states = await tempDir();
  const stateDir = join(states.path, "s");
  const target: CatalogTarget = {
    kind: "postgres",
    dsn: db.dsn,
    stateDir,
    open: () => openCatalog({ dsn: db.dsn, stateDir }),
    [Symbol.asyncDispose]: () => db.drop(),
  };
  await using _t = target;
  const shipped = [...Deno.readDirSync(MIGRATIONS_DIR)].map((x) => x.name).filter((n) =>
    n.endsWith(".sql")
  ).sort();
  const before = shipped.findIndex((n) => n.startsWith("007_"));
  const c = await target.open();
  try {
    // The schema as it was before compaction: every migration up to the one before it.
    await migrateFirst(c, before);
  } finally {
    await c.close();
  }
  // Today's copier refuses a catalog behind its schema: the old rows are written as the old
  // schema takes them.
  const c2 = await target.open();
  try {
    const pool = poolOf(c2);
    const { rows: [ds] } = await pool.query(
      `INSERT INTO _meta_datasets (domain, dataset, version, era_id, network, schema_hash)
       VALUES ('bronze', 'ledgers_lcm_raw', 'v1', 'default', 'testnet', 'x') RETURNING id`,
    );
    for (const [s, e] of [[1, 7], [8, 20], [21, 40]]) {
      await pool.query(
        `INSERT INTO _meta_lineage (dataset_id, ledger_start, ledger_end, row_count, byte_size,
           checksum, storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash,
           producer_version)
         VALUES ($1, $2, $3, $4, 1, 'sha256:x', $5, 'u', 'a', 'b', 'x')`,
        [ds.id, s, e, e - s + 1, `p${s}`],
      );
    }
    const kept = (await pool.query("SELECT * FROM _meta_lineage ORDER BY id")).rows;
    await migrate(c2);
    const now = (await pool.query(
      "SELECT * FROM _meta_lineage ORDER BY id",
    )).rows.map(({ superseded_by: _b, superseded_at: _a, ...rest }: Record<string, unknown>) =>
      rest
    );
    assert.deepEqual(now, kept);
    // The rules, for current rows: no overlap, no repeated range, no change but the mark.
    await assert.rejects(
      () =>
        pool.query(
          `INSERT INTO _meta_lineage (dataset_id, ledger_start, ledger_end, row_count, byte_size,
           checksum, storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash,
           producer_version) VALUES ($1, 5, 10, 6, 1, 'c', 'p', 'u', 'a', 'b', 'x')`,
          [ds.id],
        ),
      (err: { code?: string }) => err.code === "23P01",
    );
    await assert.rejects(
      () => pool.query("UPDATE _meta_lineage SET checksum = 'y'"),
      /append-only/,
    );
    await assert.rejects(() => pool.query("DELETE FROM _meta_lineage"), /append-only/);
  } finally {
    await c2.close();
  }
});
