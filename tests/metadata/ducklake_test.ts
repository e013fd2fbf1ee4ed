/**
 * The catalog is also a DuckLake (lib/metadata/ducklake.ts, migration 008), read here by the real
 * reader: DuckDB through the ducklake and postgres extensions of ../shared/tools/duckdb-1.5.6,
 * attached READ_ONLY to the real PostgreSQL catalog. In every state a copy, a fleet, a follower,
 * compact, gc, retire, rebuild and repair leave, it reads exactly the committed ledgers.
 */
import assert from "node:assert/strict";
import { cp } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { copy } from "../../lib/copy/run.ts";
import { memoryLogger } from "../../lib/runtime/log.ts";
import { openCatalog } from "../../lib/metadata/catalog.ts";
import { duckLakeState } from "../../lib/metadata/ducklake.ts";
import { migrate, migrateFirst } from "../../lib/metadata/migrate.ts";
import { CatalogWriter } from "../../lib/metadata/writer.ts";
import { catalogServeCommand } from "../../lib/cli/commands/catalog.ts";
import {
  type CatalogTarget,
  catalogTarget,
  createTestDatabase,
  PG_ADMIN_URL,
  poolOf,
} from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv, copyOptions } from "../support/copy.ts";
import { Copier, growingLake, range } from "../support/growing.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import {
  attachDuckLake,
  DUCKLAKE_ABSENT,
  type DuckLakeReader,
  tableSummary,
} from "../support/duckdb.ts";

const LAKE = {
  network: "testnet",
  start: 1,
  count: 600,
  lcmVersion: 2,
  ledgerBytes: 1024,
} as const;
/** testnet / pre_p23 / v1 (support/copy.ts copyOptions) as a DuckLake reader names it. */
const TABLE = "bronze.testnet.ledgers_lcm_raw_pre_p23_v1";
/** testnet / default / v1: the CLI's dataset with only --network given (support/copy.ts copyEnv). */
const CLI_TABLE = "bronze.testnet.ledgers_lcm_raw_default_v1";
const ignore = !!DUCKLAKE_ABSENT;

/** What a reader of the stored Parquet files would see, every file under the dataset's folder. */
const glob = (storage: string, era = "pre_p23") =>
  `read_parquet('${storage}/testnet/${era}/v1/ledgers_lcm_raw/*/*.parquet', hive_partitioning = false)`;

async function sql<T = Record<string, unknown>>(
  target: CatalogTarget,
  query: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = await target.open();
  try {
    return (await poolOf(c).query(query, params)).rows as T[];
  } finally {
    await c.close();
  }
}

const lastSnapshot = async (lake: DuckLakeReader) =>
  Number(
    (await lake.rows<{ id: string }>(
      `SELECT max(snapshot_id) AS id FROM ducklake_snapshots('bronze')`,
    ))[0].id,
  );

const filesRead = (plan: string) => Number(/Total Files Read: (\d+)/.exec(plan)?.[1]);

Deno.test({
  name:
    "a backfill through DuckLake: every committed ledger once, the Parquet file's own columns and types, one snapshot per commit by the copier; a filter on ledger_sequence or close_time reads only the files that can hold it",
  ignore,
  async fn() {
    const source = await syntheticLake(LAKE);
    await using target = await catalogTarget("postgres");
    await using out = await tempDir();
    await copy(
      copyOptions(target, { source, storage: out.path, start: 1, end: 250 }),
      memoryLogger(),
    );
    using lake = await attachDuckLake(target.dsn!);
    const read = await tableSummary(lake, TABLE);
    assert.deepEqual(
      [read.rows, read.distinct, read.first, read.last],
      [250, 250, 1, 250],
    );
    assert.deepEqual(read, await tableSummary(lake, glob(out.path)));

    const columns = async (from: string) =>
      (await lake.rows<{ column_name: string; column_type: string }>(`DESCRIBE ${from}`))
        .map((c) => `${c.column_name} ${c.column_type}`);
    assert.deepEqual(await columns(TABLE), await columns(`SELECT * FROM ${glob(out.path)}`));

    const snapshots = await lake.rows<Record<string, string>>(
      `SELECT snapshot_id, author, commit_message FROM ducklake_snapshots('bronze') ORDER BY 1`,
    );
    assert.deepEqual(snapshots.map((s) => [Number(s.snapshot_id), s.author, s.commit_message]), [
      [0, "bronze migrate", "the DuckLake catalog of bronze"],
      [
        1,
        "test-copier",
        `registered testnet.ledgers_lcm_raw_pre_p23_v1, stored under ${out.path}`,
      ],
      [2, "test-copier", "ledgers 1-100 committed"],
      [3, "test-copier", "ledgers 101-200 committed"],
      [4, "test-copier", "ledgers 201-250 committed"],
    ]);
    // Paths are relative to the storage root, which is the DuckLake's data path.
    const files = await sql<{ path: string; path_is_relative: boolean }>(
      target,
      `SELECT path, path_is_relative FROM ducklake_data_file ORDER BY data_file_id`,
    );
    assert.deepEqual(files.map((f) => [f.path, f.path_is_relative]), [
      ["range=1-100/part-1-100.parquet", true],
      ["range=101-200/part-101-200.parquet", true],
      ["range=201-250/part-201-250.parquet", true],
    ]);
    using rooted = await attachDuckLake(target.dsn!, `DATA_PATH '${out.path}', READ_ONLY`);
    assert.equal((await tableSummary(rooted, TABLE)).rows, 250);
    // A copy of the storage elsewhere reads the same, its files from there.
    await using mirror = await tempDir();
    await cp(out.path, mirror.path, { recursive: true });
    using moved = await attachDuckLake(
      target.dsn!,
      `DATA_PATH '${mirror.path}', OVERRIDE_DATA_PATH true, READ_ONLY`,
    );
    assert.deepEqual(await tableSummary(moved, TABLE), read);
    const [{ file }] = await moved.rows<{ file: string }>(
      `SELECT min(filename) AS file FROM (SELECT filename FROM ${TABLE})`,
    );
    assert.ok(file.startsWith(mirror.path), file);

    // Pruning: the statistics of each file let DuckDB read only the one that can hold the rows.
    assert.equal(filesRead(await lake.explain(`SELECT sum(tx_count) FROM ${TABLE}`)), 3);
    const byLedger = await lake.explain(
      `SELECT sum(tx_count) FROM ${TABLE} WHERE ledger_sequence BETWEEN 120 AND 130`,
    );
    assert.equal(filesRead(byLedger), 1, byLedger);
    assert.match(byLedger.replace(/[│\s]/g, ""), /range=101-200\/part-101-200\.parquet/);
    const [{ t }] = await lake.rows<{ t: string }>(
      `SELECT max(close_time)::VARCHAR AS t FROM ${TABLE} WHERE ledger_sequence <= 100`,
    );
    const byTime = await lake.explain(
      `SELECT sum(tx_count) FROM ${TABLE} WHERE close_time <= TIMESTAMPTZ '${t}'`,
    );
    assert.equal(filesRead(byTime), 1, byTime);
    const [{ n }] = await lake.rows<{ n: string }>(
      `SELECT count(*) AS n FROM ${TABLE} WHERE close_time <= TIMESTAMPTZ '${t}'`,
    );
    assert.equal(Number(n), 100);
  },
});

Deno.test({
  name:
    "a follower's partials, compacted before gc: DuckLake reads each ledger once where the glob reads the partials twice; time travel to before the compaction reads the partials; after gc, the same, and that past names the file gc deleted",
  ignore,
  async fn() {
    await using target = await catalogTarget("postgres");
    await using dir = await tempDir();
    await using out = await tempDir();
    const lake = await growingLake(dir.path);
    const env: Record<string, string> = {
      ...copyEnv(target, lake.url, out.path),
      POLL_INTERVAL: "100ms",
    };
    await lake.publish(...range(1, 25));
    const follower = new Copier({ ...env, PARTITION_SIZE: "20" }, [
      "--follow",
      "--start",
      "1",
      "--flush-interval",
      "300ms",
    ]);
    await follower.until(/\[partition\] committed range 21-25\n/);
    await lake.publish(...range(26, 43));
    await follower.until(/\[partition\] committed range 41-43\n/);
    follower.child.kill("SIGTERM");
    assert.equal((await follower.end()).code, 143, follower.text);
    await lake.publish(...range(44, 60));
    // The rest, without --partition-size: the dataset's own grid (20) is used.
    const rest = await runCli(["copy", "--follow", "--start", "1", "--end", "60"], { env });
    assert.equal(rest.code, 0, rest.stderr);

    using reader = await attachDuckLake(target.dsn!);
    const all = await tableSummary(reader, CLI_TABLE);
    assert.deepEqual([all.rows, all.distinct, all.first, all.last], [60, 60, 1, 60]);
    const partials = (await sql(target, `SELECT 1 FROM _meta_lineage`)).length;
    assert.ok(partials > 3, `a follower with partials: ${partials} rows`);
    const before = await lastSnapshot(reader);

    // `bronze compact` with neither --storage nor --partition-size: the dataset's own.
    const { STORAGE_URL: _, ...noStorage } = env;
    const compacted = await runCli(["compact"], { env: noStorage });
    assert.equal(compacted.code, 0, compacted.stderr);
    assert.match(compacted.stderr, /\[compact\] .*: cell 21-40 compacted from \d+ partitions/);
    using after = await attachDuckLake(target.dsn!);
    assert.deepEqual(await tableSummary(after, CLI_TABLE), all);
    // The partials are still in storage (gc's grace period): a glob counts them twice.
    const globbed = await tableSummary(after, glob(out.path, "default"));
    assert.ok(globbed.rows > 60, `the glob reads ${globbed.rows} rows`);
    assert.equal(globbed.distinct, 60);
    const [{ files }] = await after.rows<{ files: string }>(
      `SELECT count(*) AS files FROM ducklake_list_files('bronze', 'ledgers_lcm_raw_default_v1', schema => 'testnet')`,
    );
    assert.equal(Number(files), 3);
    const compaction = await after.rows<Record<string, string>>(
      `SELECT author, commit_message FROM ducklake_snapshots('bronze') WHERE snapshot_id > ${before}`,
    );
    assert.ok(compaction.length >= 1);
    assert.match(compaction[0].author, /^compactor-/);
    assert.match(compaction[0].commit_message, /partitions of 21-40 compacted into one/);
    // Time travel: the lake as it was before the compaction, from the partials.
    const past = await tableSummary(after, CLI_TABLE, `AT (VERSION => ${before})`);
    assert.deepEqual(past, all);
    const [{ old }] = await after.rows<{ old: string }>(
      `SELECT count(*) AS old FROM ducklake_list_files('bronze', 'ledgers_lcm_raw_default_v1', schema => 'testnet', snapshot_version => ${before})`,
    );
    assert.equal(Number(old), partials);

    const gc = await runCli(["gc", "--apply", "--older-than", "0s"], {
      env: { CATALOG_DSN: target.dsn!, STATE_DIR: target.stateDir },
    });
    assert.equal(gc.code, 0, gc.stderr);
    using cleaned = await attachDuckLake(target.dsn!);
    assert.deepEqual(await tableSummary(cleaned, CLI_TABLE), all);
    assert.deepEqual(await tableSummary(cleaned, glob(out.path, "default")), all);
    // Before the compaction, the lake was its partials, which gc has now deleted: said, not hidden.
    await assert.rejects(
      () => tableSummary(cleaned, CLI_TABLE, `AT (VERSION => ${before})`),
      /range=2\d-\d+\/part-/,
    );
  },
});

Deno.test({
  name:
    "retire drops the dataset's DuckLake table in the same transaction; time travel still reads it; verify agrees",
  ignore,
  async fn() {
    const source = await syntheticLake(LAKE);
    await using target = await catalogTarget("postgres");
    await using out = await tempDir();
    await copy(
      copyOptions(target, { source, storage: out.path, start: 1, end: 200 }),
      memoryLogger(),
    );
    using reader = await attachDuckLake(target.dsn!);
    const before = await lastSnapshot(reader);
    const env = { CATALOG_DSN: target.dsn!, STATE_DIR: target.stateDir };
    const retired = await runCli(
      ["retire", "--network", "testnet", "--version-label", "v1", "--reason", "re-copied as v2"],
      { env },
    );
    assert.equal(retired.code, 0, retired.stderr);
    using after = await attachDuckLake(target.dsn!);
    await assert.rejects(() => after.rows(`SELECT count(*) FROM ${TABLE}`), /does not exist/);
    const [drop] = await after.rows<Record<string, string>>(
      `SELECT author, commit_message, changes::VARCHAR AS changes FROM ducklake_snapshots('bronze')
       WHERE snapshot_id = ${before + 1}`,
    );
    assert.deepEqual([drop.author, drop.commit_message], [
      "bronze retire",
      "retired: re-copied as v2",
    ]);
    assert.match(drop.changes, /tables_dropped/);
    assert.equal((await tableSummary(after, TABLE, `AT (VERSION => ${before})`)).rows, 200);
    const verified = await runCli(["verify", "--json"], { env });
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.deepEqual(JSON.parse(verified.stdout).ducklake, []);
  },
});

Deno.test({
  name:
    "a lost catalog rebuilt from storage: DuckDB reads the same ledgers, the same files with the same statistics, through the new catalog",
  ignore,
  async fn() {
    const source = await syntheticLake(LAKE);
    await using lost = await catalogTarget("postgres");
    await using out = await tempDir();
    await copy(
      copyOptions(lost, { source, storage: out.path, start: 1, end: 450 }),
      memoryLogger(),
    );
    await using fresh = await catalogTarget("postgres");
    const rebuilt = await runCli(["catalog", "rebuild", "--storage", out.path], {
      env: { CATALOG_DSN: fresh.dsn!, STATE_DIR: fresh.stateDir },
    });
    assert.equal(rebuilt.code, 0, rebuilt.stdout + rebuilt.stderr);
    using before = await attachDuckLake(lost.dsn!);
    using after = await attachDuckLake(fresh.dsn!);
    const read = await tableSummary(after, TABLE);
    assert.deepEqual([read.rows, read.distinct, read.first, read.last], [450, 450, 1, 450]);
    assert.deepEqual(read, await tableSummary(before, TABLE));
    const files = (lake: DuckLakeReader) =>
      lake.rows(
        `SELECT data_file, data_file_size_bytes FROM ducklake_list_files('bronze', 'ledgers_lcm_raw_pre_p23_v1', schema => 'testnet') ORDER BY 1`,
      );
    assert.deepEqual(await files(after), await files(before));
    // The statistics came back from the manifests: a range still reads one file.
    const plan = await after.explain(
      `SELECT sum(tx_count) FROM ${TABLE} WHERE ledger_sequence BETWEEN 301 AND 310`,
    );
    assert.equal(filesRead(plan), 1, plan);
  },
});

Deno.test({
  name:
    "DuckLake rows that disagree with the lineage fail verify ([ducklake], exit 4); repair brings them back in one snapshot; the reader then reads every ledger once",
  ignore,
  async fn() {
    const source = await syntheticLake(LAKE);
    await using target = await catalogTarget("postgres");
    await using out = await tempDir();
    await copy(
      copyOptions(target, { source, storage: out.path, start: 1, end: 300 }),
      memoryLogger(),
    );
    // Someone wrote to bronze's DuckLake: one file ended, one miscounted, one added.
    await sql(
      target,
      `UPDATE ducklake_data_file SET end_snapshot = (SELECT max(snapshot_id) FROM ducklake_snapshot)
       WHERE path LIKE 'range=101-200/%'`,
    );
    await sql(
      target,
      `UPDATE ducklake_data_file SET record_count = 99 WHERE path LIKE 'range=201-300/%'`,
    );
    await sql(
      target,
      `INSERT INTO ducklake_data_file (data_file_id, table_id, begin_snapshot, path,
         path_is_relative, file_format, record_count, file_size_bytes, row_id_start, mapping_id)
       SELECT 1000, table_id, begin_snapshot, 'range=1-100/copy.parquet', true, 'parquet',
              record_count, file_size_bytes, 1000, mapping_id
       FROM ducklake_data_file WHERE path LIKE 'range=1-100/%'`,
    );
    const env = copyEnv(target, source, out.path);
    const failed = await runCli(["verify"], { env });
    assert.equal(failed.code, 4, failed.stdout + failed.stderr);
    const lines = failed.stdout.split("\n").filter((l) => l.startsWith("FAIL [ducklake]"));
    const ds = "bronze.ledgers_lcm_raw (testnet/pre_p23/v1)";
    const t = "DuckLake table testnet.ledgers_lcm_raw_pre_p23_v1";
    assert.deepEqual(lines.map((l) => l.replace(/lineage \d+/, "lineage N")), [
      `FAIL [ducklake] ${ds}: ${t} file 1000 (range=1-100/copy.parquet, 100 rows): no current lineage row records it`,
      `FAIL [ducklake] ${ds}: lineage N (range=101-200/part-101-200.parquet): ${t} has no live file there`,
      `FAIL [ducklake] ${ds}: lineage N (range=201-300/part-201-300.parquet): ${t} records 99 rows, ` +
      lines[2].replace(/.* 99 rows, /, ""),
    ]);
    const repaired = await runCli(["repair"], { env });
    assert.equal(repaired.code, 0, repaired.stdout + repaired.stderr);
    assert.match(
      repaired.stdout,
      /REPAIRED \[ducklake\] .*: DuckLake rows brought back to the lineage \(3 file\(s\) disagreed; snapshot \d+\)/,
    );
    const again = await runCli(["verify"], { env });
    assert.equal(again.code, 0, again.stdout + again.stderr);
    using reader = await attachDuckLake(target.dsn!);
    const read = await tableSummary(reader, TABLE);
    assert.deepEqual([read.rows, read.distinct, read.first, read.last], [300, 300, 1, 300]);
    assert.deepEqual(read, await tableSummary(reader, glob(out.path)));
  },
});

Deno.test({
  name:
    "bronze migrate --reader-role: DuckDB attached as that role reads the DuckLake; attached for writing, it is refused; so is any write to _meta_*",
  ignore,
  async fn() {
    const source = await syntheticLake(LAKE);
    const target = await catalogTarget("postgres");
    await using out = await tempDir();
    await copy(
      copyOptions(target, { source, storage: out.path, start: 1, end: 100 }),
      memoryLogger(),
    );
    const role = `bronze_reader_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
    try {
      const made = await runCli(["migrate", "--reader-role", role], {
        env: { CATALOG_DSN: target.dsn!, STATE_DIR: target.stateDir },
      });
      assert.equal(made.code, 0, made.stderr);
      assert.match(made.stdout, new RegExp(`role ${role} may read the DuckLake`));
      const url = new URL(target.dsn!);
      url.username = role;
      const asReader = url.toString();
      using reader = await attachDuckLake(asReader);
      assert.equal((await tableSummary(reader, TABLE)).rows, 100);
      using writer = await attachDuckLake(asReader, "");
      await assert.rejects(
        () => writer.run(`INSERT INTO ${TABLE} SELECT * FROM ${TABLE} WHERE ledger_sequence = 1`),
        /permission denied|read-only transaction/,
      );
      await assert.rejects(
        () => writer.run(`CREATE TABLE bronze.testnet.other (a INTEGER)`),
        /permission denied|read-only transaction/,
      );
      const c = new pg.Client({ connectionString: asReader });
      await c.connect();
      try {
        for (
          const write of [
            `DELETE FROM _meta_lineage`,
            `SET default_transaction_read_only = off; INSERT INTO ducklake_snapshot VALUES (99, now(), 0, 0, 0)`,
            `SET default_transaction_read_only = off; UPDATE _meta_datasets SET retired_at = now()`,
          ]
        ) {
          await assert.rejects(() => c.query(write), /permission denied|read-only transaction/);
        }
      } finally {
        await c.end();
      }
      assert.equal((await sql(target, `SELECT 1 FROM _meta_lineage`)).length, 1);
    } finally {
      await target[Symbol.asyncDispose]();
      const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
      await admin.connect();
      await admin.query(`DROP ROLE IF EXISTS ${role}`).finally(() => admin.end());
    }
  },
});

Deno.test({
  name:
    "concurrent committers: a fleet of 50 writers committing a partition each at once give snapshots 2..51, unique and increasing, one file each; a fleet of 3 copiers reads through DuckLake as one clean backfill",
  ignore,
  async fn() {
    await using target = await catalogTarget("postgres");
    const dataset = {
      domain: "bronze",
      dataset: "ledgers_lcm_raw",
      version: "v1",
      eraId: "load",
      network: "testnet",
      schemaHash: "0".repeat(64),
      storageRoot: "/nowhere",
      partitionSize: 10,
    };
    const first = await target.open();
    const id = await new CatalogWriter(first).ensureDataset(dataset, "test");
    await first.close();
    // 50 sessions, each ready before any commits, so the 50 commits really race for the snapshot.
    const writers = await Promise.all(range(1, 50).map(() => target.open()));
    try {
      await Promise.all(writers.map(async (c, w) => {
        const writer = new CatalogWriter(c);
        const start = w * 10 + 1;
        await writer.recordPartition({
          datasetId: id,
          ledgerStart: start,
          ledgerEnd: start + 9,
          rowCount: 10,
          byteSize: 1000 + start,
          checksum: `sha256:${"a".repeat(64)}`,
          storagePath: `p/${start}`,
          storageUri: `/nowhere/p/${start}`,
          firstPreviousLedgerHash: "0".repeat(64),
          lastLedgerHash: "0".repeat(64),
          producerVersion: "test",
          producerGitSha: null,
          sourceType: "archive",
          sourceLocation: "lake",
          quality: { close_time_min_ms: start * 5000, close_time_max_ms: (start + 9) * 5000 },
          author: `writer-${w}`,
        });
      }));
    } finally {
      await Promise.all(writers.map((c) => c.close()));
    }
    const snaps = await sql<{ snapshot_id: number; t: Date; extra: string; next_file_id: number }>(
      target,
      `SELECT s.snapshot_id, s.snapshot_time AS t, c.commit_extra_info AS extra, s.next_file_id
       FROM ducklake_snapshot s JOIN ducklake_snapshot_changes c USING (snapshot_id)
       ORDER BY 1`,
    );
    assert.deepEqual(snaps.map((s) => Number(s.snapshot_id)), range(0, 51));
    for (let i = 1; i < snaps.length; i++) {
      assert.ok(snaps[i].t >= snaps[i - 1].t, `snapshot ${i} is not later than ${i - 1}`);
    }
    // Each commit's snapshot holds its lineage row's file (lineage ids are taken before the
    // snapshot lock, so they need not follow commit order; snapshot ids do).
    const lineage = snaps.slice(2).map((s) => JSON.parse(s.extra).lineage_ids[0] as number);
    assert.equal(new Set(lineage).size, 50);
    const files = await sql<{ begin_snapshot: number; data_file_id: number; row_id_start: number }>(
      target,
      `SELECT begin_snapshot, data_file_id, row_id_start FROM ducklake_data_file ORDER BY 1`,
    );
    assert.deepEqual(files.map((f) => Number(f.begin_snapshot)), range(2, 51));
    assert.equal(new Set(files.map((f) => Number(f.data_file_id))).size, 50);
    assert.equal(
      Number(snaps.at(-1)!.next_file_id),
      Math.max(...files.map((f) => Number(f.data_file_id))) + 1,
    );
    assert.deepEqual(
      files.map((f) => Number(f.row_id_start)).sort((a, b) => a - b),
      range(0, 49).map((i) => i * 10),
    );
    const [stats] = await sql<{ record_count: number; next_row_id: number }>(
      target,
      `SELECT record_count, next_row_id FROM ducklake_table_stats`,
    );
    assert.deepEqual([Number(stats.record_count), Number(stats.next_row_id)], [500, 500]);
    // DuckDB reads that history as valid: every snapshot, every file listed where it belongs.
    using reader = await attachDuckLake(target.dsn!);
    const [{ n, listed }] = await reader.rows<{ n: string; listed: string }>(
      `SELECT (SELECT count(*) FROM ducklake_snapshots('bronze')) AS n,
              (SELECT count(*) FROM ducklake_list_files('bronze', 'ledgers_lcm_raw_load_v1',
                                                        schema => 'testnet')) AS listed`,
    );
    assert.deepEqual([Number(n), Number(listed)], [52, 50]);

    // A fleet: three copiers share 1-600 cell by cell, in any order, into one DuckLake table.
    const source = await syntheticLake(LAKE);
    await using out = await tempDir();
    await Promise.all(["a", "b", "c"].map((who) =>
      copy(
        copyOptions(target, {
          source,
          storage: out.path,
          start: 1,
          end: 600,
          fleet: true,
          concurrency: 1,
          copierId: `fleet-${who}`,
          checkpoint: join(target.stateDir, `checkpoint-${who}.json`),
        }),
        memoryLogger(),
      )
    ));
    using fleet = await attachDuckLake(target.dsn!);
    const read = await tableSummary(fleet, TABLE);
    assert.deepEqual([read.rows, read.distinct, read.first, read.last], [600, 600, 1, 600]);
    assert.deepEqual(read, await tableSummary(fleet, glob(out.path)));
    const authors = await fleet.rows<{ author: string }>(
      `SELECT DISTINCT author FROM ducklake_snapshots('bronze') WHERE author LIKE 'fleet-%'`,
    );
    assert.ok(authors.length >= 1);
  },
});

Deno.test({
  name:
    "migrating a catalog made before it was a DuckLake: every lineage row becomes a snapshot in commit order (a compaction ends its partials), the storage root and grid are inferred; DuckDB reads the current rows and, back in time, the partials",
  ignore,
  async fn() {
    const source = await syntheticLake(LAKE);
    await using out = await tempDir();
    // The files and lineage of a copy with a compaction: partials 1-40, 41-100, then 1-100.
    await using made = await catalogTarget("postgres");
    for (const [start, end] of [[1, 40], [41, 100], [101, 200], [201, 300]]) {
      await copy(copyOptions(made, { source, storage: out.path, start, end }), memoryLogger());
    }
    const compacted = await runCli(["compact"], {
      env: { CATALOG_DSN: made.dsn!, STATE_DIR: made.stateDir },
    });
    assert.equal(compacted.code, 0, compacted.stderr);

    // The same rows in a catalog at migration 007, as bronze before 008 recorded them.
    const old = await createTestDatabase();
    try {
      const before = await openCatalog({ dsn: old.dsn, stateDir: made.stateDir });
      try {
        await migrateFirst(before, 7);
      } finally {
        await before.close();
      }
      const client = new pg.Client({ connectionString: old.dsn });
      await client.connect();
      try {
        await client.query(
          `INSERT INTO _meta_datasets (id, domain, dataset, version, era_id, network, schema_hash)
           VALUES (7, 'bronze', 'ledgers_lcm_raw', 'v1', 'pre_p23', 'testnet', 'h')`,
        );
        const rows = await sql<Record<string, unknown>>(
          made,
          `SELECT * FROM _meta_lineage ORDER BY id`,
        );
        // One transaction: a partial's superseded_by names a row inserted after it.
        await client.query("BEGIN");
        for (const r of rows) {
          await client.query(
            `INSERT INTO _meta_lineage (id, dataset_id, ledger_start, ledger_end, row_count,
               byte_size, checksum, storage_path, storage_uri, first_previous_ledger_hash,
               last_ledger_hash, producer_version, created_at, superseded_by, superseded_at)
             VALUES ($1, 7, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
            [
              r.id,
              r.ledger_start,
              r.ledger_end,
              r.row_count,
              r.byte_size,
              r.checksum,
              r.storage_path,
              r.storage_uri,
              r.first_previous_ledger_hash,
              r.last_ledger_hash,
              r.producer_version,
              r.created_at,
              r.superseded_by,
              r.superseded_at,
            ],
          );
        }
        await client.query("COMMIT");
        // Rows of that time have first/last close times, not min/max.
        await client.query(
          `INSERT INTO _meta_quality (lineage_id, metric_name, metric_value)
           SELECT unnest($1::int[]), unnest($2::text[]), unnest($3::float8[])`,
          await (async () => {
            const q = await sql<{ lineage_id: number; metric_name: string; metric_value: number }>(
              made,
              `SELECT lineage_id, metric_name, metric_value FROM _meta_quality
               WHERE metric_name IN ('first_close_time_ms', 'last_close_time_ms')`,
            );
            return [
              q.map((x) => x.lineage_id),
              q.map((x) => x.metric_name),
              q.map((x) => x.metric_value),
            ];
          })(),
        );
      } finally {
        await client.end();
      }
      const catalog = await openCatalog({ dsn: old.dsn, stateDir: made.stateDir });
      try {
        // 008 first, then any migration shipped after it.
        assert.equal((await migrate(catalog))[0], "008_ducklake");
        assert.deepEqual(await migrate(catalog), []);
      } finally {
        await catalog.close();
      }
      const oldTarget = {
        ...made,
        dsn: old.dsn,
        open: () => openCatalog({ dsn: old.dsn, stateDir: made.stateDir }),
      };
      const [ds] = await sql<{ storage_root: string; partition_size: number }>(
        oldTarget,
        `SELECT storage_root, partition_size FROM _meta_datasets`,
      );
      assert.deepEqual([ds.storage_root, ds.partition_size], [out.path, 100]);
      const snaps = await sql<{ snapshot_id: number; changes_made: string; author: string }>(
        oldTarget,
        `SELECT snapshot_id, changes_made, author FROM ducklake_snapshot_changes ORDER BY 1`,
      );
      // main, the table, then one per lineage row: 1-40, 41-100, 101-200, 201-300, 1-100.
      assert.deepEqual(snaps.map((s) => s.changes_made), [
        `created_schema:"main"`,
        `created_schema:"testnet",created_table:"testnet"."ledgers_lcm_raw_pre_p23_v1"`,
        "inserted_into_table:2",
        "inserted_into_table:2",
        "inserted_into_table:2",
        "inserted_into_table:2",
        "compacted_table:2",
      ]);
      using reader = await attachDuckLake(old.dsn);
      const now = await tableSummary(reader, TABLE);
      assert.deepEqual([now.rows, now.distinct, now.first, now.last], [300, 300, 1, 300]);
      using fresh = await attachDuckLake(made.dsn!);
      assert.deepEqual(now, await tableSummary(fresh, TABLE));
      const past = await tableSummary(reader, TABLE, `AT (VERSION => 5)`);
      assert.deepEqual(past, now);
      const [{ files }] = await reader.rows<{ files: string }>(
        `SELECT count(*) AS files FROM ducklake_list_files('bronze', 'ledgers_lcm_raw_pre_p23_v1', schema => 'testnet', snapshot_version => 5)`,
      );
      assert.equal(Number(files), 4);
      // Pruning works on the migrated rows too (close_time from first/last).
      const [{ t }] = await reader.rows<{ t: string }>(
        `SELECT max(close_time)::VARCHAR AS t FROM ${TABLE} WHERE ledger_sequence <= 100`,
      );
      assert.equal(
        filesRead(
          await reader.explain(
            `SELECT sum(tx_count) FROM ${TABLE} WHERE close_time <= TIMESTAMPTZ '${t}'`,
          ),
        ),
        1,
      );
    } finally {
      await old.drop();
    }
  },
});

Deno.test({
  name:
    "the embedded catalog writes the same DuckLake rows as PostgreSQL, and `bronze catalog serve` lets DuckDB read them through its wire-protocol server",
  ignore,
  async fn() {
    const source = await syntheticLake(LAKE);
    await using work = await tempDir();
    const rows = async (target: CatalogTarget) =>
      await sql(
        target,
        `SELECT s.schema_name, t.table_name, t.path AS table_path, f.path, f.record_count,
                f.file_size_bytes, f.row_id_start, f.begin_snapshot,
                array_agg(cs.min_value || ' ' || cs.max_value ORDER BY cs.column_id) AS stats
         FROM ducklake_data_file f JOIN ducklake_table t USING (table_id)
         JOIN ducklake_schema s USING (schema_id)
         JOIN ducklake_file_column_stats cs USING (data_file_id)
         GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY f.path`,
      );
    const copied = async (kind: "postgres" | "embedded") => {
      const target = await catalogTarget(kind);
      const storage = join(work.path, kind);
      await copy(copyOptions(target, { source, storage, start: 1, end: 250 }), memoryLogger());
      return { target, storage };
    };
    const pgRun = await copied("postgres");
    const embedded = await copied("embedded");
    try {
      // Same storage layout relative to each root: the same rows but for the root itself.
      assert.deepEqual(await rows(embedded.target), await rows(pgRun.target));
      const c = await embedded.target.open();
      try {
        const state = await duckLakeState(c, 1, {
          dataset: "ledgers_lcm_raw",
          network: "testnet",
          eraId: "pre_p23",
          version: "v1",
        });
        assert.notEqual(state.tableId, null);
        assert.deepEqual(state.disagreements, []);
      } finally {
        await c.close();
      }

      // A reader of the embedded catalog, through `bronze catalog serve`.
      const lines: string[] = [];
      let stop!: () => void;
      const stopped = new Promise<void>((r) => stop = r);
      const serving = catalogServeCommand(
        { stateDir: embedded.target.stateDir },
        (l) => lines.push(l),
        () => {},
        stopped,
      );
      for (let i = 0; lines.length < 2; i++) {
        assert.ok(i < 600, "catalog serve did not say where it serves within 60s");
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(lines[0], /^serving the embedded catalog at 127\.0\.0\.1:\d+ until Ctrl\+C/);
      const attach = /^ATTACH 'ducklake:postgres:(.*)' AS bronze \(READ_ONLY\)$/.exec(lines[1]);
      assert.ok(attach, lines[1]);
      const [, conninfo] = attach;
      const parts = Object.fromEntries(conninfo.split(" ").map((kv) => kv.split("=")));
      const dsn = `postgres://${parts.user}@${parts.host}:${parts.port}/${parts.dbname}`;
      try {
        using reader = await attachDuckLake(dsn);
        using pgReader = await attachDuckLake(pgRun.target.dsn!);
        const read = await tableSummary(reader, TABLE);
        assert.deepEqual([read.rows, read.distinct], [250, 250]);
        assert.deepEqual(read, await tableSummary(pgReader, TABLE));
        // READ_ONLY is the reader's promise; the embedded catalog has one user and no roles.
        await assert.rejects(() => reader.run(`DELETE FROM ${TABLE}`), /read-only/i);
      } finally {
        stop();
        assert.equal(await serving, 0);
      }
    } finally {
      await pgRun.target[Symbol.asyncDispose]();
      await embedded.target[Symbol.asyncDispose]();
    }
  },
});
