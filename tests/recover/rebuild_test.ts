/**
 * `bronze catalog rebuild`: real copies into real storage and a real catalog, the catalog lost,
 * a new one migrated, the lineage rebuilt from storage alone and compared with the lost one's.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { copy } from "../../lib/copy/run.ts";
import { memoryLogger } from "../../lib/runtime/log.ts";
import { openStore, toStoreUrl } from "../../lib/blob/mod.ts";
import { CatalogWriter } from "../../lib/metadata/writer.ts";
import { rebuild, type RebuildOptions } from "../../lib/recover/rebuild.ts";
import { catalogRebuildCommand, EXIT_REBUILD_INCOMPLETE } from "../../lib/cli/commands/catalog.ts";
import { SCHEMA_HASH } from "../../lib/table/schema.ts";
import { type CatalogTarget, catalogTarget, poolOf } from "../support/catalogs.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { copyOptions } from "../support/copy.ts";
import { runCli } from "../support/cli.ts";
import { Copier } from "../support/growing.ts";
import { gc } from "../../lib/recover/gc.ts";
import { s3Env, startS3rver, withEnv } from "../support/servers.ts";

const TESTNET = {
  network: "testnet",
  start: 1,
  count: 300,
  lcmVersion: 2,
  ledgerBytes: 2048,
} as const;
const PUBNET = {
  network: "pubnet",
  start: 1,
  count: 150,
  lcmVersion: 2,
  ledgerBytes: 1024,
} as const;

/** Three datasets (other network, era, version), partial partitions among them. */
const DATASETS = [
  { lake: TESTNET, network: "testnet", era: "pre_p23", versionLabel: "v1", start: 1, end: 250 },
  { lake: TESTNET, network: "testnet", era: "p23", versionLabel: "v2", start: 51, end: 300 },
  { lake: PUBNET, network: "pubnet", era: "default", versionLabel: "v1", start: 1, end: 150 },
] as const;

/** Where the copies keep their checkpoints: outside any catalog's state dir, so they outlive it. */
const checkpointOf = (storage: string, d: (typeof DATASETS)[number]) =>
  join(storage, "..", `checkpoint-${d.network}-${d.era}-${d.versionLabel}.json`);

async function copyDataset(
  target: CatalogTarget,
  storage: string,
  d: (typeof DATASETS)[number],
  o: { start?: number; end?: number; partitionSize?: number; checkpoint?: string } = {},
): Promise<void> {
  await copy(
    copyOptions(target, {
      source: await syntheticLake(d.lake),
      storage,
      network: d.network,
      era: d.era,
      versionLabel: d.versionLabel,
      start: o.start ?? d.start,
      end: o.end ?? d.end,
      partitionSize: o.partitionSize ?? 100,
      checkpoint: o.checkpoint ?? checkpointOf(storage, d),
    }),
    memoryLogger(),
  );
}

type Rows = Record<string, unknown>[];

/**
 * What a catalog holds, without ids and the timestamps a rebuild makes (a dataset's created_at
 * and updated_at): every column of every dataset, lineage row and quality row, the rows named by
 * their dataset and range instead of ids. Every column, so one added later is compared too.
 */
async function snapshot(
  target: CatalogTarget,
): Promise<{ datasets: Rows; lineage: Rows; quality: Rows; ducklake: Rows }> {
  const c = await target.open();
  try {
    const pool = poolOf(c);
    const drop = (rows: Rows, ...keys: string[]) =>
      rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !keys.includes(k))));
    const order = "d.network, d.era_id, d.version";
    const datasets = (await pool.query(`SELECT * FROM _meta_datasets d ORDER BY ${order}`)).rows;
    const lineage = (await pool.query(
      `SELECT d.network AS ds_network, d.era_id AS ds_era, d.version AS ds_version, l.*
       FROM _meta_lineage l JOIN _meta_datasets d ON d.id = l.dataset_id
       ORDER BY ${order}, l.ledger_start`,
    )).rows;
    const quality = (await pool.query(
      `SELECT d.network AS ds_network, d.era_id AS ds_era, d.version AS ds_version,
              l.ledger_start AS ds_ledger_start, q.*
       FROM _meta_quality q JOIN _meta_lineage l ON l.id = q.lineage_id
       JOIN _meta_datasets d ON d.id = l.dataset_id
       ORDER BY ${order}, l.ledger_start, q.metric_name, q.created_at`,
    )).rows;
    // The DuckLake rows a reader sees: each live file with its statistics (ids and snapshot
    // numbers are the catalog's own).
    const ducklake = (await pool.query(
      `SELECT s.schema_name, t.table_name, t.path AS table_path, f.path, f.path_is_relative,
              f.record_count, f.file_size_bytes,
              array_agg(c.column_name || ' ' || cs.min_value || ' ' || cs.max_value
                        ORDER BY c.column_name) AS stats
       FROM ducklake_data_file f
       JOIN ducklake_table t ON t.table_id = f.table_id AND t.end_snapshot IS NULL
       JOIN ducklake_schema s ON s.schema_id = t.schema_id
       JOIN ducklake_file_column_stats cs ON cs.data_file_id = f.data_file_id
       JOIN ducklake_column c ON c.table_id = f.table_id AND c.column_id = cs.column_id
       WHERE f.end_snapshot IS NULL
       GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 4`,
    )).rows;
    return {
      datasets: drop(datasets, "id", "created_at", "updated_at", "ducklake_table_id"),
      lineage: drop(lineage, "id", "dataset_id"),
      quality: drop(quality, "id", "lineage_id"),
      ducklake,
    };
  } finally {
    await c.close();
  }
}

async function changes(target: CatalogTarget): Promise<Rows> {
  const c = await target.open();
  try {
    return (await poolOf(c).query(
      `SELECT d.network, d.era_id, d.version, c.change_type, c.description
       FROM _meta_changes c JOIN _meta_datasets d ON d.id = c.dataset_id
       ORDER BY d.network, d.era_id, d.version, c.id`,
    )).rows;
  } finally {
    await c.close();
  }
}

function options(target: CatalogTarget, storage: string): RebuildOptions {
  return {
    storage: toStoreUrl(storage),
    catalog: target.dsn,
    stateDir: target.stateDir,
    progressInterval: 0,
  };
}

/** `bronze catalog rebuild` in this process: its exit code, stdout lines and log lines. */
async function rebuildCommand(target: CatalogTarget, storage: string, json = false) {
  const out: string[] = [];
  const log = memoryLogger();
  const code = await catalogRebuildCommand(
    { ...options(target, storage), json, logFormat: "text" },
    (l) => out.push(l),
    log,
  );
  return { code, out, log: log.lines };
}

const dir = (network: string, era: string, version: string, start: number, end: number) =>
  `${network}/${era}/${version}/ledgers_lcm_raw/range=${start}-${end}`;

Deno.test("a lost catalog rebuilt from storage equals it (lineage, quality, datasets); copy then has nothing to do; verify, coverage and checkpoint show work; a second rebuild changes nothing", async () => {
  await using work = await tempDir();
  const data = { path: join(work.path, "data") };
  await using lost = await catalogTarget("postgres");
  for (const d of DATASETS) await copyDataset(lost, data.path, d);
  const before = await snapshot(lost);
  assert.equal(before.lineage.length, 8);
  assert.equal(before.quality.length, 8 * 10);
  // The DuckLake rows hold every partition, with the statistics readers skip files by.
  assert.equal(before.ducklake.length, 8);

  // Every manifest holds what its lineage row holds.
  const manifest = JSON.parse(
    await readFile(join(data.path, dir("testnet", "p23", "v2", 51, 100), "_manifest.json"), "utf8"),
  );
  const row = before.lineage.find((r) => r.ds_era === "p23" && r.ledger_start === 51)!;
  assert.deepEqual(manifest.dataset, {
    domain: "bronze",
    dataset: "ledgers_lcm_raw",
    network: "testnet",
    era_id: "p23",
    version: "v2",
    schema_hash: SCHEMA_HASH,
  });
  assert.deepEqual(manifest.partition, {
    start: 51,
    end: 100,
    table: "ledgers_lcm_raw",
    file: "part-51-100.parquet",
    storage_path: row.storage_path,
    first_previous_ledger_hash: row.first_previous_ledger_hash,
    last_ledger_hash: row.last_ledger_hash,
  });
  assert.deepEqual(manifest.table, { checksum: row.checksum, rows: 50, bytes: row.byte_size });
  assert.deepEqual(manifest.source, { type: row.source_type, location: row.source_location });
  assert.deepEqual(manifest.producer, {
    version: row.producer_version,
    git_sha: row.producer_git_sha,
  });
  assert.equal(manifest.created_at, (row.created_at as Date).toISOString());

  // The catalog is lost; a new one is migrated (catalogTarget migrates it) and rebuilt.
  await lost[Symbol.asyncDispose]();
  await using fresh = await catalogTarget("postgres");
  const env = {
    CATALOG_DSN: fresh.dsn!,
    STATE_DIR: fresh.stateDir,
    STORAGE_URL: data.path,
    PROGRESS_INTERVAL: "0",
  };
  const run = await runCli(["catalog", "rebuild", "--json"], { env });
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.deepEqual(
    {
      ok: report.ok,
      storage: report.storage,
      manifests: report.manifests,
      recorded: report.recorded,
      present: report.present,
      conflicts: report.conflicts,
      failed: report.failed,
    },
    {
      ok: true,
      storage: data.path,
      manifests: 8,
      recorded: 8,
      present: 0,
      conflicts: 0,
      failed: 0,
    },
  );
  assert.deepEqual(
    report.datasets.map((
      d: Record<string, unknown>,
    ) => [d.network, d.era_id, d.version, d.recorded, d.recorded_ledgers, d.present, d.derived]),
    [
      ["pubnet", "default", "v1", 2, 150, 0, {}],
      ["testnet", "p23", "v2", 3, 250, 0, {}],
      ["testnet", "pre_p23", "v1", 3, 250, 0, {}],
    ],
  );
  assert.deepEqual(run.stderr.split("\n").filter((l) => l.startsWith("[rebuild]")), [
    `[rebuild] listing ${data.path}`,
    `[rebuild] found 8 partition manifest(s) of 3 dataset(s) under ${data.path}`,
    "[rebuild] bronze.ledgers_lcm_raw (pubnet/default/v1): recorded 2, already present 0, conflicts 0, failed 0",
    "[rebuild] bronze.ledgers_lcm_raw (testnet/p23/v2): recorded 3, already present 0, conflicts 0, failed 0",
    "[rebuild] bronze.ledgers_lcm_raw (testnet/pre_p23/v1): recorded 3, already present 0, conflicts 0, failed 0",
  ]);
  assert.deepEqual(await snapshot(fresh), before);
  const rebuilt = await changes(fresh);
  assert.deepEqual(rebuilt, [
    {
      network: "pubnet",
      era_id: "default",
      version: "v1",
      change_type: "rebuild",
      description:
        `catalog rebuild from ${data.path}: 2 lineage row(s) (150 ledgers between 1 and 150) ` +
        "recorded from their _manifest.json; 0 already present, 0 in conflict, 0 failed their check",
    },
    {
      network: "testnet",
      era_id: "p23",
      version: "v2",
      change_type: "rebuild",
      description:
        `catalog rebuild from ${data.path}: 3 lineage row(s) (250 ledgers between 51 and 300) ` +
        "recorded from their _manifest.json; 0 already present, 0 in conflict, 0 failed their check",
    },
    {
      network: "testnet",
      era_id: "pre_p23",
      version: "v1",
      change_type: "rebuild",
      description:
        `catalog rebuild from ${data.path}: 3 lineage row(s) (250 ledgers between 1 and 250) ` +
        "recorded from their _manifest.json; 0 already present, 0 in conflict, 0 failed their check",
    },
  ]);

  // copy of the same range: nothing to do.
  for (const d of DATASETS) {
    const again = await runCli(["copy", "--start", String(d.start), "--end", String(d.end)], {
      env: {
        ...env,
        SOURCE_URL: await syntheticLake(d.lake),
        NETWORK: d.network,
        ERA_ID: d.era,
        VERSION_LABEL: d.versionLabel,
        PARTITION_SIZE: "100",
      },
    });
    assert.equal(again.code, 0, again.stderr);
    assert.ok(
      again.stderr.includes(
        `[copier] range ${d.start}-${d.end} is already complete (bronze.ledgers_lcm_raw ` +
          `(${d.network}/${d.era}/${d.versionLabel})); nothing to do`,
      ),
      again.stderr,
    );
  }
  const verified = await runCli(["verify", "--json"], { env });
  assert.equal(verified.code, 0, verified.stderr);
  assert.deepEqual(
    (({ ok, partitions, passed }) => ({ ok, partitions, passed }))(JSON.parse(verified.stdout)),
    { ok: true, partitions: 8, passed: 8 },
  );
  const coverage = await runCli(["coverage", "--json", "--fail-on-gaps"], { env });
  assert.equal(coverage.code, 0, coverage.stderr);
  assert.deepEqual(
    JSON.parse(coverage.stdout).datasets.map((d: Record<string, unknown>) => [
      d.network,
      d.era_id,
      d.first_ledger,
      d.last_ledger,
      d.partitions,
    ]),
    [["pubnet", "default", 1, 150, 2], ["testnet", "p23", 51, 300, 3], [
      "testnet",
      "pre_p23",
      1,
      250,
      3,
    ]],
  );
  const shown = await runCli([
    "checkpoint",
    "show",
    "--checkpoint",
    checkpointOf(data.path, DATASETS[0]),
  ], {
    env,
  });
  assert.equal(shown.code, 0, shown.stderr);
  assert.ok(
    shown.stdout.includes("\ncatalog                holds 1-250 contiguously: agrees\n"),
    shown.stdout,
  );

  // Again: everything is present, nothing is written.
  const held = await snapshot(fresh);
  const second = await rebuildCommand(fresh, data.path);
  assert.equal(second.code, 0);
  assert.match(
    second.out[0],
    new RegExp(
      `^rebuilt \\S+ from ${data.path}: 8 manifests read, [\\d.]+ KB checked in [\\d.]+s ` +
        `\\([\\d.]+ MB/s\\): 0 recorded, 8 already present, 0 in conflict, 0 failed$`,
    ),
  );
  assert.deepEqual(second.out.slice(1), [
    "DATASET                                      RECORDED  PRESENT  CONFLICTS  FAILED  NO MANIFEST",
    "bronze.ledgers_lcm_raw (pubnet/default/v1)          0        2          0       0            0",
    "bronze.ledgers_lcm_raw (testnet/p23/v2)             0        3          0       0            0",
    "bronze.ledgers_lcm_raw (testnet/pre_p23/v1)         0        3          0       0            0",
  ]);
  assert.deepEqual(await snapshot(fresh), held);
  assert.deepEqual(await changes(fresh), rebuilt);
});

const PRE_P23 = DATASETS[0];
const LABEL = "bronze.ledgers_lcm_raw (testnet/pre_p23/v1)";
const part = (root: string, start: number, end: number) =>
  join(root, dir("testnet", "pre_p23", "v1", start, end), `part-${start}-${end}.parquet`);
const manifestOf = (root: string, start: number, end: number) =>
  join(root, dir("testnet", "pre_p23", "v1", start, end), "_manifest.json");

Deno.test("a catalog that already holds some of the rows gets the rest; the result equals the lost catalog", async () => {
  await using work = await tempDir();
  const data = join(work.path, "data");
  await using lost = await catalogTarget("postgres");
  await copyDataset(lost, data, PRE_P23, { end: 300 });
  const before = await snapshot(lost);
  assert.equal(before.lineage.length, 3);

  // The new catalog gets 101-200 by a copy (which adopts the stored file and its manifest).
  await using partial = await catalogTarget("postgres");
  await copyDataset(partial, data, PRE_P23, {
    start: 101,
    end: 200,
    checkpoint: join(partial.stateDir, "checkpoint.json"),
  });
  const r = await rebuildCommand(partial, data);
  assert.equal(r.code, 0, r.log.join("\n"));
  assert.deepEqual(r.out.slice(1), [
    "DATASET                                      RECORDED  PRESENT  CONFLICTS  FAILED  NO MANIFEST",
    `${LABEL}         2        1          0       0            0`,
  ]);
  assert.deepEqual(await snapshot(partial), before);
  assert.deepEqual((await changes(partial)).map((c) => c.description), [
    `catalog rebuild from ${data}: 2 lineage row(s) (200 ledgers between 1 and 300) recorded ` +
    "from their _manifest.json; 1 already present, 0 in conflict, 0 failed their check",
  ]);
});

Deno.test("gc deletes partitions the rebuild checked, before it records them: they are reported missing and not recorded (no row points at a deleted file)", async () => {
  await using work = await tempDir();
  const data = join(work.path, "data");
  await using lost = await catalogTarget("postgres");
  await copyDataset(lost, data, PRE_P23, { end: 300 });
  const before = await snapshot(lost);
  // The new catalog holds 1-100; to its gc, 101-200 and 201-300 are orphans.
  await using partial = await catalogTarget("postgres");
  await copyDataset(partial, data, PRE_P23, {
    end: 100,
    checkpoint: join(partial.stateDir, "checkpoint.json"),
  });
  const rebuilding = new Copier(
    {
      CATALOG_DSN: partial.dsn!,
      STATE_DIR: partial.stateDir,
      STORAGE_URL: data,
      PROGRESS_INTERVAL: "0",
      BRONZE_FAILPOINT: "rebuild-record:1:pause",
    },
    ["rebuild"],
    "catalog",
  );
  await rebuilding.until(/\[failpoint\] paused at rebuild-record:1/);
  const swept = await gc({
    catalog: partial.dsn,
    stateDir: partial.stateDir,
    storage: toStoreUrl(data),
    olderThan: 0,
    apply: true,
  });
  assert.deepEqual(
    swept.objects.map((o) => [o.key, o.outcome]),
    [101, 201].flatMap((s) => [
      [`${dir("testnet", "pre_p23", "v1", s, s + 99)}/_manifest.json`, "deleted"],
      [`${dir("testnet", "pre_p23", "v1", s, s + 99)}/part-${s}-${s + 99}.parquet`, "deleted"],
    ]),
  );
  rebuilding.child.kill("SIGUSR1");
  const status = await rebuilding.end();
  assert.equal(status.code, EXIT_REBUILD_INCOMPLETE, rebuilding.text);
  for (const s of [101, 201]) {
    assert.match(
      rebuilding.text,
      new RegExp(
        `partition ${s}-${s + 99} of .*: its file or manifest was deleted while the rebuild ran ` +
          `\\(by bronze gc\\?\\); not recorded`,
      ),
    );
  }
  assert.deepEqual(
    (await snapshot(partial)).lineage,
    before.lineage.filter((l) => l.ledger_start === 1),
  );
});

Deno.test("a file that fails its manifest is reported and not recorded (exit 4); a file without a manifest is named", async () => {
  await using work = await tempDir();
  const data = join(work.path, "data");
  await using lost = await catalogTarget("postgres");
  await copyDataset(lost, data, PRE_P23, { end: 300, partitionSize: 40 });
  const before = await snapshot(lost);

  // 41-80: one byte flipped; 81-120: cut short; 121-160: gone; 161-200: the manifest of
  // another partition; 201-240: no manifest (as if its copy died before writing it); 241-280:
  // a manifest whose quality metric the catalog cannot take.
  const flipped = await Deno.open(part(data, 41, 80), { read: true, write: true });
  const byte = new Uint8Array(1);
  await flipped.seek(100, Deno.SeekMode.Start);
  await flipped.read(byte);
  await flipped.seek(100, Deno.SeekMode.Start);
  await flipped.write(new Uint8Array([byte[0] ^ 0xff]));
  flipped.close();
  const flippedSha = createHash("sha256").update(await readFile(part(data, 41, 80))).digest("hex");
  assert.notEqual(`sha256:${flippedSha}`, before.lineage[1].checksum);
  const cut = await readFile(part(data, 81, 120));
  await writeFile(part(data, 81, 120), cut.subarray(0, cut.length - 10));
  await rm(part(data, 121, 160));
  await cp(manifestOf(data, 1, 40), manifestOf(data, 161, 200), { force: true });
  await rm(manifestOf(data, 201, 240));
  const odd = JSON.parse(await readFile(manifestOf(data, 241, 280), "utf8"));
  odd.quality.tx_count = "many";
  await writeFile(manifestOf(data, 241, 280), JSON.stringify(odd));

  await using fresh = await catalogTarget("postgres");
  const r = await rebuildCommand(fresh, data);
  assert.equal(r.code, EXIT_REBUILD_INCOMPLETE);
  assert.match(r.out[0], /: 2 recorded, 0 already present, 0 in conflict, 5 failed$/);
  const stored = before.lineage.find((l) => l.ledger_start === 41)!;
  assert.deepEqual(r.out.slice(1), [
    "DATASET                                      RECORDED  PRESENT  CONFLICTS  FAILED  NO MANIFEST",
    `${LABEL}         2        0          0       5            1`,
    `FAIL [checksum] partition 41-80 of ${LABEL} (${part(data, 41, 80)}): file hashes to ` +
    `sha256:${flippedSha}, its manifest records ${stored.checksum}`,
    `FAIL [size] partition 81-120 of ${LABEL} (${part(data, 81, 120)}): file is ${
      cut.length - 10
    } bytes, its manifest records ${cut.length}`,
    `FAIL [missing] partition 121-160 of ${LABEL} (${part(data, 121, 160)}): file not found ` +
    `beside its manifest ${manifestOf(data, 121, 160)}`,
    `FAIL [manifest] partition 161-200 of ${LABEL} (${part(data, 161, 200)}): its manifest ` +
    "describes partition 1-40, not the range=161-200 it lies in",
    `FAIL [manifest] partition 241-280 of ${LABEL} (${part(data, 241, 280)}): its manifest ` +
    'records quality metric tx_count that is not a number: "many"',
    `NO MANIFEST ${part(data, 201, 240)}: no _manifest.json beside it (never committed; a copy ` +
    "of its range adopts it), not recorded",
  ]);
  assert.ok(
    r.log.includes(
      `[warn] rebuild: partition 41-80 of ${LABEL} (${part(data, 41, 80)}): file hashes to ` +
        `sha256:${flippedSha}, its manifest records ${stored.checksum}; not recorded`,
    ),
    r.log.join("\n"),
  );
  assert.deepEqual(
    (await snapshot(fresh)).lineage,
    before.lineage.filter((l) => l.ledger_start === 1 || l.ledger_start === 281),
  );
});

Deno.test("conflicts: a stored partition the catalog records with other bytes or another range, and stored partitions that overlap each other, are reported and change nothing", async () => {
  await using work = await tempDir();
  const data = join(work.path, "data");
  await using lost = await catalogTarget("postgres");
  await copyDataset(lost, data, PRE_P23, { end: 300 });
  const before = await snapshot(lost);
  // A 1-150 beside 1-100 and 101-200, from a copy with another partition size into other storage.
  await using other = await catalogTarget("postgres");
  await copyDataset(other, join(work.path, "other"), PRE_P23, {
    end: 150,
    partitionSize: 150,
    checkpoint: join(other.stateDir, "checkpoint.json"),
  });
  const range1150 = join("testnet/pre_p23/v1/ledgers_lcm_raw", "range=1-150");
  await cp(join(work.path, "other", range1150), join(data, range1150), { recursive: true });

  // Into an empty catalog: 1-100, 1-150 and 101-200 overlap, none spans the others; 201-300 is
  // recorded.
  await using empty = await catalogTarget("postgres");
  const first = await rebuildCommand(empty, data);
  assert.equal(first.code, EXIT_REBUILD_INCOMPLETE);
  const also =
    "also in storage with a manifest: the catalog can hold only one, and which is not known";
  assert.deepEqual(first.out.slice(1), [
    "DATASET                                      RECORDED  PRESENT  CONFLICTS  FAILED  NO MANIFEST",
    `${LABEL}         1        0          3       0            0`,
    `CONFLICT partition 1-100 of ${LABEL} (${part(data, 1, 100)}): overlaps 1-150, ${also}`,
    `CONFLICT partition 1-150 of ${LABEL} (${
      part(data, 1, 150)
    }): overlaps 1-100, 101-200, ${also}`,
    `CONFLICT partition 101-200 of ${LABEL} (${part(data, 101, 200)}): overlaps 1-150, ${also}`,
  ]);
  assert.deepEqual(
    (await snapshot(empty)).lineage,
    before.lineage.filter((l) => l.ledger_start === 201),
  );

  // Into a catalog whose rows disagree: nothing of theirs changes; 201-300 is recorded.
  await using held = await catalogTarget("postgres");
  const c = await held.open();
  const ids: number[] = [];
  try {
    const writer = new CatalogWriter(c);
    const datasetId = await writer.ensureDataset({
      domain: "bronze",
      dataset: "ledgers_lcm_raw",
      version: "v1",
      eraId: "pre_p23",
      network: "testnet",
      schemaHash: SCHEMA_HASH,
    });
    for (const [start, end] of [[1, 100], [150, 160]]) {
      ids.push(
        await writer.recordPartition({
          datasetId,
          ledgerStart: start,
          ledgerEnd: end,
          rowCount: end - start + 1,
          byteSize: 1,
          checksum: `sha256:${"0".repeat(64)}`,
          storagePath: `elsewhere/${start}`,
          storageUri: `/elsewhere/${start}`,
          firstPreviousLedgerHash: "a".repeat(64),
          lastLedgerHash: "b".repeat(64),
          producerVersion: "other",
          producerGitSha: null,
          sourceType: "archive",
          sourceLocation: "lake",
        }),
      );
    }
  } finally {
    await c.close();
  }
  const mine = await snapshot(held);
  const second = await rebuildCommand(held, data);
  assert.equal(second.code, EXIT_REBUILD_INCOMPLETE);
  assert.deepEqual(second.out.slice(1), [
    "DATASET                                      RECORDED  PRESENT  CONFLICTS  FAILED  NO MANIFEST",
    `${LABEL}         1        0          3       0            0`,
    `CONFLICT partition 1-100 of ${LABEL} (${part(data, 1, 100)}): the catalog records this ` +
    `range with sha256:${"0".repeat(64)} (lineage id ${ids[0]}), the stored file and its ` +
    `manifest are ${before.lineage[0].checksum}`,
    `CONFLICT partition 1-150 of ${LABEL} (${part(data, 1, 150)}): overlaps recorded partitions ` +
    `1-100 (lineage id ${ids[0]}), 150-160 (lineage id ${ids[1]})`,
    `CONFLICT partition 101-200 of ${LABEL} (${part(data, 101, 200)}): overlaps recorded ` +
    `partition 150-160 (lineage id ${ids[1]})`,
  ]);
  const after = await snapshot(held);
  assert.deepEqual(after.datasets, mine.datasets);
  assert.deepEqual(after.lineage, [
    ...mine.lineage,
    ...before.lineage.filter((l) => l.ledger_start === 201),
  ]);
});

Deno.test("after a compaction, before gc: the full partition is recorded, the partials inside it are named and not recorded; the catalog that compacted gets nothing new", async () => {
  await using work = await tempDir();
  const data = join(work.path, "data");
  await using lost = await catalogTarget("postgres");
  for (const [start, end] of [[1, 40], [41, 100], [101, 200]]) {
    await copyDataset(lost, data, PRE_P23, { start, end });
  }
  const env = {
    CATALOG_DSN: lost.dsn!,
    STATE_DIR: lost.stateDir,
    STORAGE_URL: data,
    PARTITION_SIZE: "100",
  };
  const compacted = await runCli(["compact"], { env });
  assert.equal(compacted.code, 0, compacted.stderr);
  const held = await snapshot(lost);
  const current = held.lineage.filter((l) => l.superseded_by === null);
  assert.deepEqual(current.map((l) => `${l.ledger_start}-${l.ledger_end}`), ["1-100", "101-200"]);
  const leftovers = [
    `COMPACTED partition 1-40 of ${LABEL} (${part(data, 1, 40)}): inside 1-100, the full ` +
    `partition a compaction replaced it with: not recorded`,
    `COMPACTED partition 41-100 of ${LABEL} (${part(data, 41, 100)}): inside 1-100, the full ` +
    `partition a compaction replaced it with: not recorded`,
  ];

  // Into the catalog that compacted: the current rows are present, the partials its history.
  const again = await rebuildCommand(lost, data);
  assert.equal(again.code, 0, again.out.join("\n"));
  assert.deepEqual(again.out.slice(1), [
    "DATASET                                      RECORDED  PRESENT  CONFLICTS  FAILED  NO MANIFEST",
    `${LABEL}         0        2          0       0            0`,
    ...leftovers,
  ]);
  assert.deepEqual(await snapshot(lost), held);

  // Into an empty catalog: what was current is recorded, as it was.
  await using fresh = await catalogTarget("postgres");
  const rebuilt = await rebuildCommand(fresh, data, true);
  assert.equal(rebuilt.code, 0);
  const report = JSON.parse(rebuilt.out[0]);
  assert.deepEqual([report.recorded, report.conflicts, report.compacted], [2, 0, 2]);
  assert.deepEqual(
    report.datasets[0].compacted.map((c: { partition: { start: number; end: number } }) =>
      c.partition
    ),
    [{ start: 1, end: 40 }, { start: 41, end: 100 }],
  );
  const strip = (rows: Rows) =>
    rows.map(({ superseded_by: _b, superseded_at: _a, ...rest }) => rest);
  assert.deepEqual(strip((await snapshot(fresh)).lineage), strip(current));
  const coverage = await runCli(["coverage", "--fail-on-gaps"], {
    env: { CATALOG_DSN: fresh.dsn!, STATE_DIR: fresh.stateDir },
  });
  assert.equal(coverage.code, 0, coverage.stdout + coverage.stderr);
});

/** Rewrites every manifest under `store` as bronze wrote them before manifest_version 2. */
async function makeManifestsOld(storage: string): Promise<number> {
  const store = openStore(storage);
  let n = 0;
  try {
    const keys: string[] = [];
    for await (const o of store.list("")) if (o.key.endsWith("/_manifest.json")) keys.push(o.key);
    for (const key of keys) {
      const m = JSON.parse(new TextDecoder().decode(await store.get(key)));
      const old = {
        partition: {
          start: m.partition.start,
          end: m.partition.end,
          table: m.partition.table,
          file: m.partition.file,
        },
        table: m.table,
        producer: m.producer,
        created_at: m.created_at,
      };
      await store.delete(key);
      await store.putIfAbsent(key, new TextEncoder().encode(JSON.stringify(old, null, 2) + "\n"));
      n++;
    }
  } finally {
    await store.close?.();
  }
  return n;
}

for (const where of ["local", "s3"] as const) {
  Deno.test(`manifests written before manifest_version 2 [${where}]: identity, schema hash, hash-chain ends and quality are derived from storage and said; the source is left empty`, async () => {
    const s3 = where === "s3" ? await startS3rver(["parts"]) : null;
    try {
      await withEnv(s3 ? s3Env(s3.endpoint) : {}, async () => {
        await using work = await tempDir();
        const data = s3 ? "s3://parts/bronze" : join(work.path, "data");
        await using lost = await catalogTarget("postgres");
        await copyDataset(lost, data, PRE_P23, {
          end: 300,
          checkpoint: join(work.path, "checkpoint.json"),
        });
        const before = await snapshot(lost);
        assert.equal(await makeManifestsOld(data), 3);

        await using fresh = await catalogTarget("postgres");
        const r = await rebuildCommand(fresh, data);
        assert.equal(r.code, 0, r.log.join("\n"));
        assert.deepEqual(r.out.slice(1), [
          "DATASET                                      RECORDED  PRESENT  CONFLICTS  FAILED  NO MANIFEST",
          `${LABEL}         3        0          0       0            0`,
          `DERIVED ${LABEL}: 3 partition manifest(s) written before manifest_version 2; ` +
          "dataset (from the key) for 3, storage_path (from the key) for 3, schema_hash (from " +
          "the Parquet schema) for 3, hash-chain ends (from the Parquet rows) for 3, quality " +
          "metrics (from the Parquet rows) for 3, source (unknown: left empty) for 3",
        ]);
        const after = await snapshot(fresh);
        if (s3) assert.match(String(after.lineage[0].storage_uri), /^s3:\/\/parts\/bronze\//);
        assert.deepEqual(after.datasets, before.datasets);
        assert.deepEqual(after.quality, before.quality);
        assert.deepEqual(
          after.lineage,
          before.lineage.map((l) => ({ ...l, source_type: null, source_location: null })),
        );
        const json = await rebuildCommand(fresh, data, true);
        assert.deepEqual(JSON.parse(json.out[0]).datasets[0].derived, {
          dataset: 3,
          storage_path: 3,
          schema_hash: 3,
          hash_chain: 3,
          quality: 3,
          source: 3,
        });
      });
    } finally {
      await s3?.stop();
    }
  });
}

Deno.test("into the embedded catalog, one network first, then the rest: equal to the lost PostgreSQL catalog", async () => {
  await using work = await tempDir();
  const data = join(work.path, "data");
  await using lost = await catalogTarget("postgres");
  for (const d of DATASETS) await copyDataset(lost, data, d);
  const before = await snapshot(lost);

  await using fresh = await catalogTarget("embedded");
  const pubnet = await rebuild(
    { ...options(fresh, data), networkFilter: "pubnet" },
    memoryLogger(),
  );
  assert.deepEqual(pubnet.datasets.map((d) => [d.label, d.recorded]), [
    ["bronze.ledgers_lcm_raw (pubnet/default/v1)", 2],
  ]);
  const log = memoryLogger();
  const rest = await rebuild(options(fresh, data), log);
  assert.deepEqual(rest.datasets.map((d) => [d.label, d.recorded, d.present]), [
    ["bronze.ledgers_lcm_raw (pubnet/default/v1)", 0, 2],
    ["bronze.ledgers_lcm_raw (testnet/p23/v2)", 3, 0],
    ["bronze.ledgers_lcm_raw (testnet/pre_p23/v1)", 3, 0],
  ]);
  assert.deepEqual(await snapshot(fresh), before);
  assert.deepEqual((await changes(fresh)).map((c) => [c.network, c.era_id, c.change_type]), [
    ["pubnet", "default", "rebuild"],
    ["testnet", "p23", "rebuild"],
    ["testnet", "pre_p23", "rebuild"],
  ]);
});
