import { toStoreUrl } from "../../lib/blob/mod.ts";
import { resolveSettings } from "../../lib/settings/mod.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { copy } from "../../lib/copy/run.ts";
import { memoryLogger } from "../../lib/runtime/log.ts";
import { partitionKey } from "../../lib/table/layout.ts";
import { CatalogWriter, type LineageRow } from "../../lib/metadata/writer.ts";
import { verify, type VerifyOptions } from "../../lib/verify/verify.ts";
import { EXIT_VERIFY_FAILED, verifyCommand } from "../../lib/cli/commands/verify.ts";
import { CATALOG_KINDS, type CatalogTarget, catalogTarget, poolOf } from "../support/catalogs.ts";
import { SAMPLES, SAMPLES_ABSENT, syntheticLake, tempDir } from "../support/lakes.ts";
import { runCli } from "../support/cli.ts";
import { copyOptions } from "../support/copy.ts";
import { PartitionFileWriter } from "../../lib/table/writer.ts";
import { decodeLedger } from "../../lib/source/ledger.ts";
import { syntheticLedgers } from "../../scripts/make-lake.ts";

const LAKE = { network: "testnet", start: 1, count: 1000, lcmVersion: 2 } as const;
const DS = { network: "testnet", eraId: "pre_p23", version: "v1" };

const vopts = (target: CatalogTarget, o: Partial<VerifyOptions> = {}): VerifyOptions => ({
  catalog: target.dsn,
  stateDir: target.stateDir,
  progressInterval: 0,
  noRecord: false,
  ...o,
});

async function lineage(target: CatalogTarget, version = "v1"): Promise<LineageRow[]> {
  const c = await target.open();
  try {
    const { rows } = await poolOf(c).query<{ id: number }>(
      `SELECT id FROM _meta_datasets WHERE version = $1`,
      [version],
    );
    return await new CatalogWriter(c).listLineage(rows[0].id);
  } finally {
    await c.close();
  }
}

/** verify_passed / verify_failures per partition range, in the order recorded. */
async function verifyQuality(target: CatalogTarget): Promise<string[]> {
  const c = await target.open();
  try {
    const { rows } = await poolOf(c).query<{ r: string }>(
      `SELECT l.ledger_start || '-' || l.ledger_end || ' ' || q.metric_name || '=' || q.metric_value AS r
       FROM _meta_quality q JOIN _meta_lineage l ON l.id = q.lineage_id
       WHERE q.metric_name LIKE 'verify%' ORDER BY q.id`,
    );
    return rows.map((r: { r: string }) => r.r);
  } finally {
    await c.close();
  }
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function flipByte(path: string, at?: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[at ?? Math.floor(bytes.length / 2)] ^= 0x01;
  await writeFile(path, bytes);
}

for (const kind of CATALOG_KINDS) {
  Deno.test(`verify (${kind}): a clean copy passes; a flipped byte and a deleted file are named and fail; quality rows per verified partition`, async () => {
    const source = await syntheticLake(LAKE);
    await using target = await catalogTarget(kind);
    await using out = await tempDir();
    await copy(
      copyOptions(target, { source, storage: out.path, start: 1, end: 300 }),
      memoryLogger(),
    );

    const clean = await verify(vopts(target), memoryLogger());
    assert.deepEqual(
      [clean.partitions, clean.passed, clean.failed, clean.ledgers, clean.failures],
      [3, 3, 0, 300, []],
    );
    const rows = await lineage(target);
    assert.equal(clean.bytes, rows.reduce((n, r) => n + r.byteSize, 0));
    assert.deepEqual(await verifyQuality(target), [
      "1-100 verify_passed=1",
      "1-100 verify_failures=0",
      "101-200 verify_passed=1",
      "101-200 verify_failures=0",
      "201-300 verify_passed=1",
      "201-300 verify_failures=0",
    ]);

    const path = (r: { start: number; end: number }) => join(out.path, partitionKey(DS, r));
    await rm(path({ start: 101, end: 200 }));
    const flipped = path({ start: 201, end: 300 });
    await flipByte(flipped);
    const flippedSha = sha256(await readFile(flipped));

    const lines: string[] = [];
    const log = memoryLogger();
    const code = await verifyCommand(
      { ...vopts(target, { start: 101, end: 300 }), json: true, logFormat: "text" },
      (l) => lines.push(l),
      log,
    );
    assert.equal(code, EXIT_VERIFY_FAILED);
    assert.equal(EXIT_VERIFY_FAILED, 4);
    const report = JSON.parse(lines.join(""));
    assert.deepEqual([report.ok, report.partitions, report.passed, report.failed], [
      false,
      2,
      0,
      2,
    ]);
    const uri101 = rows[1].storageUri;
    const uri201 = rows[2].storageUri;
    assert.equal(uri201, `${out.path}/${partitionKey(DS, { start: 201, end: 300 })}`);
    assert.deepEqual(report.failures[0], {
      dataset: "bronze.ledgers_lcm_raw (testnet/pre_p23/v1)",
      lineage_id: rows[1].id,
      partition: { start: 101, end: 200 },
      uri: uri101,
      ledger: null,
      check: "missing",
      message: `partition 101-200 (${uri101}): file not found`,
    });
    const checksum = report.failures.find((f: { check: string }) => f.check === "checksum");
    assert.deepEqual(checksum, {
      dataset: "bronze.ledgers_lcm_raw (testnet/pre_p23/v1)",
      lineage_id: rows[2].id,
      partition: { start: 201, end: 300 },
      uri: uri201,
      ledger: null,
      check: "checksum",
      message: `partition 201-300 (${uri201}): file hashes to sha256:${flippedSha}, ` +
        `lineage records ${rows[2].checksum}`,
    });
    // Every failure of the flipped file names that partition; none names a clean one.
    for (const f of report.failures.slice(1)) {
      assert.deepEqual(f.partition, { start: 201, end: 300 });
    }
    assert.ok(
      log.lines.some((l) =>
        l.startsWith(
          `[warn] verify: partition 201-300 of bronze.ledgers_lcm_raw (testnet/pre_p23/v1) (${uri201}) failed`,
        )
      ),
      log.lines.join("\n"),
    );
    // Quality rows for the two partitions verified this time, none for 1-100.
    const q = await verifyQuality(target);
    assert.deepEqual(q.slice(6), [
      "101-200 verify_passed=0",
      "101-200 verify_failures=1",
      "201-300 verify_passed=0",
      `201-300 verify_failures=${report.failures.length - 1}`,
    ]);
  });
}

Deno.test("verify: a lineage row whose checksum disagrees with the stored file fails on that partition only", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await copy(
    copyOptions(target, { source, storage: out.path, start: 1, end: 100 }),
    memoryLogger(),
  );
  const [good] = await lineage(target);
  // Lineage is immutable, so the disagreeing row is a second dataset's record of the same file.
  const c = await target.open();
  try {
    const w = new CatalogWriter(c);
    const id = await w.ensureDataset({
      domain: "bronze",
      dataset: "ledgers_lcm_raw",
      version: "v1bad",
      eraId: "pre_p23",
      network: "testnet",
      schemaHash: "x",
    });
    const { id: _id, createdAt: _at, ...rec } = good;
    await w.recordPartition({ ...rec, datasetId: id, checksum: `sha256:${"0".repeat(64)}` });
  } finally {
    await c.close();
  }
  const bad = await verify(vopts(target), memoryLogger());
  assert.equal(bad.partitions, 2);
  assert.deepEqual(bad.failures.map((f) => [f.dataset, f.check, f.ledger, f.message]), [[
    "bronze.ledgers_lcm_raw (testnet/pre_p23/v1bad)",
    "checksum",
    null,
    `partition 1-100 (${good.storageUri}): file hashes to ${good.checksum}, ` +
    `lineage records sha256:${"0".repeat(64)}`,
  ]]);
  const onlyGood = await verify(vopts(target, { versionFilter: "v1" }), memoryLogger());
  assert.deepEqual([onlyGood.partitions, onlyGood.failed], [1, 0]);
});

Deno.test("verify: a hash chain broken across a partition boundary names the later partition and its first ledger", async () => {
  const lakeA = await syntheticLake(LAKE);
  const lakeB = await syntheticLake({ ...LAKE, start: 101, count: 100, seed: 2 });
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await copy(
    copyOptions(target, { source: lakeA, storage: out.path, start: 1, end: 100 }),
    memoryLogger(),
  );
  await copy(
    copyOptions(target, { source: lakeB, storage: out.path, start: 101, end: 200 }),
    memoryLogger(),
  );
  await copy(
    copyOptions(target, { source: lakeA, storage: out.path, start: 201, end: 300 }),
    memoryLogger(),
  );
  const rows = await lineage(target);
  const r = await verify(vopts(target), memoryLogger());
  // 101-200 does not link to 1-100, and 201-300 (lake A again) does not link to 101-200 (lake B).
  assert.deepEqual(r.failures.map((f) => [f.start, f.end, f.ledger, f.check, f.message]), [
    [
      101,
      200,
      101,
      "chain_link",
      `partition 101-200 (${rows[1].storageUri}): ledger 101: previous_ledger_hash ` +
      `${rows[1].firstPreviousLedgerHash} does not match ledger_hash ${rows[0].lastLedgerHash} ` +
      `of ledger 100 (partition 1-100, ${rows[0].storageUri}): the hash chain breaks across ` +
      `the partition boundary`,
    ],
    [
      201,
      300,
      201,
      "chain_link",
      `partition 201-300 (${rows[2].storageUri}): ledger 201: previous_ledger_hash ` +
      `${rows[2].firstPreviousLedgerHash} does not match ledger_hash ${rows[1].lastLedgerHash} ` +
      `of ledger 200 (partition 101-200, ${rows[1].storageUri}): the hash chain breaks across ` +
      `the partition boundary`,
    ],
  ]);
  // A range starting at 201 still checks the link into it from the partition before.
  const tail = await verify(vopts(target, { start: 201, end: 300 }), memoryLogger());
  assert.deepEqual(tail.failures.map((f) => [f.start, f.check]), [[201, "chain_link"]]);
  const head = await verify(vopts(target, { start: 1, end: 100 }), memoryLogger());
  assert.deepEqual([head.partitions, head.failed], [1, 0]);
});

Deno.test("verify: --storage reads each partition at its storage_path under another root", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const first = join(out.path, "first");
  const moved = join(out.path, "moved");
  await copy(copyOptions(target, { source, storage: first, start: 1, end: 200 }), memoryLogger());
  await rename(first, moved);
  const lost = await verify(vopts(target), memoryLogger());
  assert.deepEqual(lost.failures.map((f) => f.check), ["missing", "missing"]);
  const found = await verify(vopts(target, { storageRoot: toStoreUrl(moved) }), memoryLogger());
  assert.deepEqual([found.partitions, found.passed, found.failed], [2, 2, 0]);
  assert.equal(
    resolveSettings("verify", { storage: moved }, () => undefined).storageRoot?.url,
    moved,
  );
  assert.equal(resolveSettings("verify", {}, () => undefined).storageRoot, undefined);
});

Deno.test({
  name: "verify: the real testnet sample lake copies and verifies clean",
  ignore: !!SAMPLES_ABSENT,
  async fn() {
    const source = new URL("../../../shared/stellar-samples/testnet", import.meta.url).pathname;
    assert.equal(source, join(SAMPLES, "testnet"));
    await using target = await catalogTarget("postgres");
    await using out = await tempDir();
    await copy(
      copyOptions(target, { source, storage: out.path, start: 1410048, end: 1410367 }),
      memoryLogger(),
    );
    const r = await verify(vopts(target), memoryLogger());
    assert.deepEqual([r.partitions, r.passed, r.failed, r.ledgers, r.failures], [4, 4, 0, 320, []]);
  },
});

Deno.test("done-when, end to end through the CLI: coverage shows each hole, --fill-gaps closes them, --fail-on-gaps exits 0, verify passes; a flipped byte fails verify naming its partition", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const common = [
    "--catalog",
    target.dsn!,
    "--state-dir",
    target.stateDir,
  ];
  const copyArgs = [
    "copy",
    ...common,
    "--source",
    source,
    "--storage",
    out.path,
    "--network",
    "testnet",
    "--era",
    "pre_p23",
    "--partition-size",
    "100",
  ];
  const env = { NO_COLOR: "1" };
  for (const [s, e] of [["101", "300"], ["501", "600"]]) {
    const r = await runCli([...copyArgs, "--start", s, "--end", e], { env });
    assert.equal(r.code, 0, r.stderr);
  }
  const cov = await runCli(["coverage", ...common, "--start", "1", "--end", "800"], { env });
  assert.equal(cov.code, 0, cov.stderr);
  const gapLines = cov.stdout.split("\n").filter((l) => /^ {2}\d/.test(l));
  assert.deepEqual(gapLines, [
    "  1-100    (100 ledgers missing)",
    "  301-500  (200 ledgers missing)",
    "  601-800  (200 ledgers missing)",
  ]);
  const failing = await runCli(
    ["coverage", ...common, "--start", "1", "--end", "800", "--fail-on-gaps"],
    { env },
  );
  assert.equal(failing.code, 3);
  assert.match(failing.stderr, /bronze: 3 gaps in 1 dataset\(s\) \(--fail-on-gaps\)/);

  const fill = await runCli([...copyArgs, "--fill-gaps", "--start", "1", "--end", "800"], { env });
  assert.equal(fill.code, 0, fill.stderr);
  const committed = fill.stderr.split("\n").filter((l) => l.startsWith("[partition] committed"));
  assert.deepEqual(committed, [
    "[partition] committed range 1-100",
    "[partition] committed range 301-400",
    "[partition] committed range 401-500",
    "[partition] committed range 601-700",
    "[partition] committed range 701-800",
  ]);
  const closed = await runCli(
    ["coverage", ...common, "--start", "1", "--end", "800", "--fail-on-gaps", "--json"],
    { env },
  );
  assert.equal(closed.code, 0, closed.stderr);
  assert.deepEqual(JSON.parse(closed.stdout).datasets[0].gaps, []);

  const ok = await runCli(["verify", ...common], { env });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^verified 8 partitions \(800 ledgers, .*\): 8 passed, 0 failed\n$/);

  const victim = join(out.path, partitionKey(DS, { start: 401, end: 500 }));
  await flipByte(victim);
  const bad = await runCli(["verify", ...common], { env });
  assert.equal(bad.code, 4, bad.stderr);
  assert.match(bad.stdout, /: 7 passed, 1 failed \(checks failed: checksum(, [a-z0-9_]+)*\)\n/);
  const fails = bad.stdout.split("\n").filter((l) => l.startsWith("FAIL"));
  assert.ok(fails.length >= 1);
  assert.ok(
    fails[0].startsWith(`FAIL [checksum] partition 401-500 (${victim}): file hashes to sha256:`),
    fails[0],
  );
  for (const f of fails) assert.ok(f.includes(`partition 401-500 (${victim})`), f);
});

Deno.test("verify: a partition broken at every row reports the first failures of each kind and counts the rest, in text and JSON; a NUL read from the file is escaped, never printed", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await copy(
    copyOptions(target, { source, storage: out.path, start: 1, end: 300 }),
    memoryLogger(),
  );
  // 201-300 rewritten with every row's previous hash wrong (99 chain breaks, the first link too)
  // and a NUL inside the first row's ledger_hash, which the second row's failure quotes.
  const path = join(out.path, partitionKey(DS, { start: 201, end: 300 }));
  const w = await PartitionFileWriter.create(path, {
    bronzeVersion: "v1",
    eraId: "pre_p23",
    network: "testnet",
  });
  for (const l of syntheticLedgers({ start: 201, count: 100, lcmVersion: 2 })) {
    const row = decodeLedger(l.xdr);
    row.previousLedgerHash = "f".repeat(64);
    if (row.ledgerSequence === 201) row.ledgerHash = "ab\u0000cd";
    await w.write(row);
  }
  await w.finish();

  const env = { NO_COLOR: "1" };
  const args = ["verify", "--catalog", target.dsn!, "--state-dir", target.stateDir];
  const text = await runCli(args, { env });
  assert.equal(text.code, 4, text.stderr);
  assert.ok(!text.stdout.includes("\u0000") && !text.stderr.includes("\u0000"));
  const uri = `${out.path}/${partitionKey(DS, { start: 201, end: 300 })}`;
  const lines = text.stdout.trim().split("\n");
  const chain = lines.filter((l) => l.startsWith("FAIL [chain]"));
  assert.deepEqual(chain.map((l) => l.slice(0, l.indexOf(": ledger"))).slice(0, 3), [
    `FAIL [chain] partition 201-300 (${uri})`,
    `FAIL [chain] partition 201-300 (${uri})`,
    `FAIL [chain] partition 201-300 (${uri})`,
  ]);
  assert.equal(
    chain[0],
    `FAIL [chain] partition 201-300 (${uri}): ledger 202: previous_ledger_hash ${
      "f".repeat(64)
    } does not match ledger_hash "ab\\u0000cd" of ledger 201`,
  );
  assert.deepEqual(chain.slice(3), [
    `FAIL [chain] partition 201-300 (${uri}): 96 more chain failures (ledgers 205-300), not shown`,
  ]);
  // Every kind found is shown; no kind more than three times before its count.
  const kinds = Map.groupBy(
    lines.filter((l) => l.startsWith("FAIL")),
    (l) => /\[(\w+)\]/.exec(l)![1],
  );
  assert.deepEqual([...kinds.keys()].sort(), [
    "chain",
    "checksum",
    "first_previous_ledger_hash",
    "last_ledger_hash",
    "size",
  ]);
  for (const [kind, ls] of kinds) assert.ok(ls.length <= 4, `${kind}: ${ls.length} lines`);
  assert.ok(text.stderr.includes("failed 103 checks:"), text.stderr);

  const json = JSON.parse((await runCli([...args, "--json"], { env })).stdout);
  assert.deepEqual(
    json.failures.filter((f: { check: string }) => f.check === "chain").map((
      f: { ledger: number },
    ) => f.ledger),
    [202, 203, 204],
  );
  assert.deepEqual(json.omitted, [{
    dataset: "bronze.ledgers_lcm_raw (testnet/pre_p23/v1)",
    lineage_id: (await lineage(target))[2].id,
    partition: { start: 201, end: 300 },
    uri,
    check: "chain",
    count: 96,
    ledgers: { first: 205, last: 300 },
  }]);
  // The quality row counts every failure, shown or not.
  assert.deepEqual((await verifyQuality(target)).slice(-2), [
    "201-300 verify_passed=0",
    "201-300 verify_failures=103",
  ]);
});
