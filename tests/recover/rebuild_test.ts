/**
 * `bronze catalog rebuild`: real copies into real storage and a real catalog, the catalog lost,
 * a new one migrated, the lineage rebuilt from storage alone and compared with the lost one's.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { copy } from "../../lib/copy/run.ts";
import { memoryLogger } from "../../lib/log.ts";
import type { RebuildOptions } from "../../lib/recover/rebuild.ts";
import { catalogRebuildCommand } from "../../lib/cli/commands/catalog.ts";
import { SCHEMA_HASH } from "../../lib/table/schema.ts";
import { type CatalogTarget, catalogTarget, poolOf } from "../support/catalogs.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { copyOptions } from "../support/copy.ts";
import { runCli } from "../support/cli.ts";

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
  o: { start?: number; end?: number; partitionSize?: number } = {},
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
      checkpoint: checkpointOf(storage, d),
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
): Promise<{ datasets: Rows; lineage: Rows; quality: Rows }> {
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
    return {
      datasets: drop(datasets, "id", "created_at", "updated_at"),
      lineage: drop(lineage, "id", "dataset_id"),
      quality: drop(quality, "id", "lineage_id"),
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
  return { storage, catalog: target.dsn, stateDir: target.stateDir, progressInterval: 0 };
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
  assert.equal(before.quality.length, 8 * 8);

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
      description: `catalog rebuild from ${data.path}: 2 lineage row(s) (150 ledgers, 1-150) ` +
        "recorded from their _manifest.json; 0 already present, 0 in conflict, 0 failed their check",
    },
    {
      network: "testnet",
      era_id: "p23",
      version: "v2",
      change_type: "rebuild",
      description: `catalog rebuild from ${data.path}: 3 lineage row(s) (250 ledgers, 51-300) ` +
        "recorded from their _manifest.json; 0 already present, 0 in conflict, 0 failed their check",
    },
    {
      network: "testnet",
      era_id: "pre_p23",
      version: "v1",
      change_type: "rebuild",
      description: `catalog rebuild from ${data.path}: 3 lineage row(s) (250 ledgers, 1-250) ` +
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
