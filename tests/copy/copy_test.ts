import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { zstdCompressSync, zstdDecompressSync } from "node:zlib";
import { DuckDBInstance } from "@duckdb/node-api";
import { copy } from "../../lib/copy/run.ts";
import { memoryLogger } from "../../lib/runtime/log.ts";
import { openStore } from "../../lib/blob/mod.ts";
import { openLake } from "../../lib/source/lake.ts";
import { decodeLedger } from "../../lib/source/ledger.ts";
import { readPartitionRows } from "../../lib/table/reader.ts";
import { partitionKey } from "../../lib/table/layout.ts";
import { CatalogWriter } from "../../lib/metadata/writer.ts";
import { CATALOG_KINDS, catalogTarget, poolOf } from "../support/catalogs.ts";
import { SAMPLES, SAMPLES_ABSENT, syntheticLake, tempDir } from "../support/lakes.ts";
import { runCli } from "../support/cli.ts";
import {
  copyEnv,
  copyOptions,
  lineageRows,
  psqlLines,
  SEED_QUERY,
  stderrWithoutSummary,
} from "../support/copy.ts";

const LAKE_450 = {
  network: "testnet",
  start: 1,
  count: 450,
  lcmVersion: 2,
  ledgerBytes: 4096,
} as const;
const LAKE_300 = {
  network: "testnet",
  start: 1,
  count: 300,
  lcmVersion: 2,
  ledgerBytes: 2048,
} as const;

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

Deno.test({
  name:
    "real testnet ledgers: every column equals what the XDR says; partial first and last partitions on the grid; hash chain holds",
  ignore: !!SAMPLES_ABSENT,
  async fn() {
    await using target = await catalogTarget("postgres");
    await using out = await tempDir();
    const source = join(SAMPLES, "testnet");
    const log = memoryLogger();
    const result = await copy(
      copyOptions(target, { source, storage: out.path, start: 1410048, end: 1410367 }),
      log,
    );
    const expected = [[1410048, 1410100], [1410101, 1410200], [1410201, 1410300], [
      1410301,
      1410367,
    ]];
    assert.deepEqual(result.committed.map((r) => [r.start, r.end]), expected);
    const rows = await lineageRows(target);
    assert.deepEqual(
      rows.map((r) => [r.ledger_start, r.ledger_end, r.row_count]),
      expected.map(([s, e]) => [s, e, e - s + 1]),
    );

    const lake = await openLake(openStore(source), "testnet");
    const raw = new Map<number, Uint8Array>();
    for await (const l of lake.stream(1410048, 1410367)) raw.set(l.sequence, l.xdr.slice());
    let prevHash: string | undefined;
    for (const r of rows) {
      const file = await readFile(join(out.path, r.storage_path));
      assert.equal(`sha256:${sha256(file)}`, r.checksum);
      assert.equal(file.length, r.byte_size);
      for (const row of await readPartitionRows(file)) {
        const seq = Number(row.ledger_sequence);
        const xdr = raw.get(seq)!;
        const want = decodeLedger(xdr);
        assert.deepEqual(row.xdr_bytes, xdr);
        assert.equal(row.xdr_sha256, sha256(xdr));
        assert.equal(row.xdr_byte_length, xdr.length);
        assert.equal(row.ledger_hash, want.ledgerHash);
        assert.equal(row.previous_ledger_hash, want.previousLedgerHash);
        assert.equal(row.close_time.getTime(), want.closeTimeMs);
        assert.equal(row.protocol_version, 19);
        assert.equal(row.total_coins, want.totalCoins);
        assert.equal(row.fee_pool, want.feePool);
        assert.equal(row.tx_set_hash, want.txSetHash);
        assert.equal(row.tx_count, want.txCount);
        assert.equal(row.operation_count, want.operationCount);
        assert.deepEqual([row.bronze_version, row.era_id, row.network], [
          "v1",
          "pre_p23",
          "testnet",
        ]);
        if (prevHash !== undefined) {
          assert.equal(row.previous_ledger_hash, prevHash, `chain at ${seq}`);
        }
        prevHash = row.ledger_hash;
      }
    }
    const manifest = JSON.parse(
      await readFile(
        join(out.path, "testnet/pre_p23/v1/ledgers_lcm_raw/range=1410101-1410200/_manifest.json"),
        "utf8",
      ),
    );
    const file = await readFile(join(out.path, rows[1].storage_path));
    const parsed = await readPartitionRows(file);
    assert.deepEqual(manifest.partition, {
      start: 1410101,
      end: 1410200,
      table: "ledgers_lcm_raw",
      file: "part-1410101-1410200.parquet",
      storage_path: rows[1].storage_path,
      first_previous_ledger_hash: parsed[0].previous_ledger_hash,
      last_ledger_hash: parsed[99].ledger_hash,
    });
    assert.deepEqual(manifest.table, {
      checksum: rows[1].checksum,
      rows: 100,
      bytes: rows[1].byte_size,
    });
    assert.equal(manifest.quality.tx_count, parsed.reduce((n, r) => n + r.tx_count, 0));
    assert.deepEqual(manifest.source, { type: "archive", location: source });
  },
});

Deno.test({
  name:
    "real pubnet ledger 53312000 (protocol 21, 163 transactions, .xdr.zstd) copies with its counts",
  ignore: !!SAMPLES_ABSENT,
  async fn() {
    await using target = await catalogTarget("embedded");
    await using out = await tempDir();
    await copy(
      copyOptions(target, {
        source: join(SAMPLES, "pubnet"),
        storage: out.path,
        network: "pubnet",
        start: 53312000,
        end: 53312000,
      }),
      memoryLogger(),
    );
    const [row] = await readPartitionRows(
      join(
        out.path,
        partitionKey({ network: "pubnet", eraId: "pre_p23", version: "v1" }, {
          start: 53312000,
          end: 53312000,
        }),
      ),
    );
    assert.equal(row.ledger_sequence, 53312000n);
    assert.equal(row.tx_count, 163);
    assert.equal(row.protocol_version, 21);
    assert.ok(row.operation_count >= 163);
  },
});

for (const kind of CATALOG_KINDS) {
  Deno.test(`determinism [${kind}]: two runs into separate storage and catalogs give the same sha256 for every partition`, async () => {
    const source = await syntheticLake(LAKE_450);
    const checksums: string[][] = [];
    for (let i = 0; i < 2; i++) {
      await using target = await catalogTarget(kind);
      await using out = await tempDir();
      await copy(
        copyOptions(target, { source, storage: out.path, start: 1, end: 450, concurrency: i + 1 }),
        memoryLogger(),
      );
      const rows = await lineageRows(target);
      assert.deepEqual(rows.map((r) => r.ledger_end), [100, 200, 300, 400, 450]);
      for (const r of rows) {
        assert.equal(
          `sha256:${sha256(await readFile(join(out.path, r.storage_path)))}`,
          r.checksum,
        );
      }
      checksums.push(rows.map((r) => r.checksum));
    }
    assert.deepEqual(checksums[0], checksums[1]);
  });
}

Deno.test("DuckDB reads a copied partition back with the right row count, types and an intact xdr_bytes", async () => {
  const source = await syntheticLake(LAKE_450);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await copy(
    copyOptions(target, { source, storage: out.path, start: 101, end: 200 }),
    memoryLogger(),
  );
  const path = join(
    out.path,
    partitionKey({ network: "testnet", eraId: "pre_p23", version: "v1" }, { start: 101, end: 200 }),
  );
  const db = await DuckDBInstance.create(":memory:");
  const conn = await db.connect();
  try {
    const types = await (await conn.run(`DESCRIBE SELECT * FROM read_parquet('${path}')`))
      .getRowObjects();
    const typeOf = Object.fromEntries(types.map((t) => [t.column_name, t.column_type]));
    assert.equal(typeOf.ledger_sequence, "BIGINT");
    assert.equal(typeOf.close_time, "TIMESTAMP WITH TIME ZONE");
    assert.equal(typeOf.total_coins, "BIGINT");
    assert.equal(typeOf.tx_count, "INTEGER");
    assert.equal(typeOf.xdr_bytes, "BLOB");
    assert.equal(typeOf.ledger_hash, "VARCHAR");
    const count = await (await conn.run(
      `SELECT count(*)::INTEGER AS n, min(ledger_sequence)::INTEGER AS lo, max(ledger_sequence)::INTEGER AS hi FROM read_parquet('${path}')`,
    )).getRowObjects();
    assert.deepEqual(count[0], { n: 100, lo: 101, hi: 200 });
    const one = await (await conn.run(
      `SELECT xdr_bytes, xdr_sha256 FROM read_parquet('${path}') WHERE ledger_sequence = 150`,
    )).getRowObjects();
    const bytes = (one[0].xdr_bytes as { bytes: Uint8Array }).bytes;
    assert.equal(sha256(bytes), one[0].xdr_sha256);
    const lake = await openLake(openStore(source), "testnet");
    for await (const l of lake.stream(150, 150)) assert.equal(sha256(bytes), sha256(l.xdr));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
});

/** A copy of a synthetic lake that the test may damage. */
async function damagedLake(
  dir: string,
  damage: (lakeDir: string) => Promise<string>,
): Promise<{ lake: string; key: string }> {
  const base = await syntheticLake(LAKE_300);
  const lake = join(dir, "lake");
  await cp(base, lake, { recursive: true });
  return { lake, key: await damage(lake) };
}

const objectOf = (seq: number) =>
  `FFFFFFFF--0-63999/${(0xffffffff - seq).toString(16).toUpperCase()}--${seq}.xdr.zst`;

const BAD_INPUTS: [string, (lake: string) => Promise<string>, (lake: string) => RegExp][] = [
  [
    "a missing ledger",
    async (lake) => {
      await Deno.remove(join(lake, objectOf(250)));
      return objectOf(250);
    },
    (lake) =>
      new RegExp(
        `^ledger 250 is missing from lake ${lake}: neither ${objectOf(250)} nor ${
          objectOf(250).replace(".zst", ".zstd")
        } exists$`,
      ),
  ],
  [
    "content whose sequence disagrees with its key",
    async (lake) => {
      await cp(join(lake, objectOf(251)), join(lake, objectOf(250)));
      return objectOf(250);
    },
    (lake) =>
      new RegExp(
        `^${lake}/${
          objectOf(250)
        }: batch holds ledgers 251-251, but its key says 250-250 \\(ledger 250\\)$`,
      ),
  ],
  ["corrupt zstd", async (lake) => {
    const path = join(lake, objectOf(250));
    const bytes = await readFile(path);
    bytes[bytes.length - 5] ^= 0xff;
    await writeFile(path, bytes);
    return objectOf(250);
  }, (lake) => new RegExp(`^${lake}/${objectOf(250)}: corrupt zstd \\(ledger 250\\)`)],
  ["corrupt XDR", async (lake) => {
    const path = join(lake, objectOf(250));
    const xdr = zstdDecompressSync(await readFile(path));
    await writeFile(path, zstdCompressSync(xdr.subarray(0, xdr.length - 7)));
    return objectOf(250);
  }, (lake) => new RegExp(`^${lake}/${objectOf(250)}: corrupt XDR \\(ledger 250\\)`)],
];

for (const [what, damage, message] of BAD_INPUTS) {
  Deno.test(`bad lake input: ${what} stops the copy naming the object and ledger; no lineage row for that partition`, async () => {
    await using dir = await tempDir();
    const { lake } = await damagedLake(dir.path, damage);
    await using target = await catalogTarget("postgres");
    await assert.rejects(
      () =>
        copy(
          copyOptions(target, {
            source: lake,
            storage: join(dir.path, "out"),
            start: 1,
            end: 300,
            concurrency: 1,
          }),
          memoryLogger(),
        ),
      (err: Error) => {
        assert.match(err.message, message(lake));
        return true;
      },
    );
    // Partitions before the bad one are committed; the failing one and those after are not.
    assert.deepEqual((await lineageRows(target)).map((r) => [r.ledger_start, r.ledger_end]), [
      [1, 100],
      [101, 200],
    ]);
  });
}

Deno.test("a lake of another network is refused before any work, naming both passphrases", async () => {
  const source = await syntheticLake(LAKE_300);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await assert.rejects(
    () =>
      copy(
        copyOptions(target, { source, storage: out.path, start: 1, end: 100, network: "pubnet" }),
        memoryLogger(),
      ),
    (err: Error) => {
      assert.equal(
        err.message,
        `lake ${source} is for network passphrase "Test SDF Network ; September 2015", but pubnet is "Public Global Stellar Network ; September 2015"`,
      );
      return true;
    },
  );
  assert.deepEqual(await lineageRows(target), []);
});

Deno.test("a stored partition whose bytes differ from what this run produces is refused, named, and left alone", async () => {
  const source = await syntheticLake(LAKE_300);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const key = partitionKey({ network: "testnet", eraId: "pre_p23", version: "v1" }, {
    start: 101,
    end: 200,
  });
  await Deno.mkdir(join(out.path, key, ".."), { recursive: true });
  await writeFile(join(out.path, key), "not the partition");
  await assert.rejects(
    () =>
      copy(
        copyOptions(target, { source, storage: out.path, start: 1, end: 300, concurrency: 1 }),
        memoryLogger(),
      ),
    (err: Error) => {
      assert.match(
        err.message,
        new RegExp(
          `^stored partition ${out.path}/${key} differs from what this run produces \\(stored sha256:${
            sha256(new TextEncoder().encode("not the partition"))
          }, produced sha256:[0-9a-f]{64}\\); refusing to overwrite it$`,
        ),
      );
      return true;
    },
  );
  assert.equal(await readFile(join(out.path, key), "utf8"), "not the partition");
  assert.deepEqual((await lineageRows(target)).map((r) => r.ledger_end), [100]);
});

Deno.test("the copied range is the range read: the row count always equals the ledgers in the lineage range", async () => {
  const source = await syntheticLake({
    network: "testnet",
    start: 1,
    count: 300,
    lcmVersion: 1,
    ledgerBytes: 2048,
  });
  await using target = await catalogTarget("embedded");
  await using out = await tempDir();
  await copy(
    copyOptions(target, { source, storage: out.path, start: 37, end: 263 }),
    memoryLogger(),
  );
  const rows = await lineageRows(target);
  assert.deepEqual(rows.map((r) => [r.ledger_start, r.ledger_end]), [[37, 100], [101, 200], [
    201,
    263,
  ]]);
  for (const r of rows) {
    const data = await readPartitionRows(join(out.path, r.storage_path));
    assert.equal(data.length, r.row_count);
    assert.equal(Number(data[0].ledger_sequence), r.ledger_start);
    assert.equal(Number(data.at(-1)!.ledger_sequence), r.ledger_end);
  }
  const c = await target.open();
  try {
    const w = new CatalogWriter(c);
    const [ds] = (await poolOf(c).query("SELECT id, schema_hash FROM _meta_datasets")).rows;
    assert.match(ds.schema_hash, /^[0-9a-f]{64}$/);
    const l = await w.findPartition(ds.id, 101, 200);
    assert.equal(l?.sourceType, "archive");
    assert.equal(l?.sourceLocation, source);
    assert.match(l?.producerVersion ?? "", /^bronze@\d+\.\d+\.\d+$/);
    assert.match(l?.producerGitSha ?? "", /^[0-9a-f]{40}$/);
    assert.equal(l?.storageUri, `${out.path}/${l?.storagePath}`);
  } finally {
    await c.close();
  }
});

Deno.test("every bad flag and variable is reported at once, before any work, with exit code 2", async () => {
  const r = await runCli([
    "copy",
    "--source",
    "/nonexistent",
    "--start",
    "10",
    "--end",
    "5",
    "--concurrency",
    "0",
    "--log-format",
    "xml",
  ], {
    env: { PARTITION_SIZE: "ten", NETWORK: "mainnet" },
  });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    'bronze: 6 configuration problems: PARTITION_SIZE must be a whole number, got "ten"; NETWORK must be one of pubnet, testnet, futurenet, got "mainnet"; --concurrency must be between 1 and 64, got 0; --log-format must be one of text, json, got "xml"; --end (LEDGER_END) 5 is before --start (LEDGER_START) 10; --source /nonexistent: No such file or directory (expected a Galexie data lake)\n',
  );
  const unknown = await runCli(["copy", "--frobnicate"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option --frobnicate/);
});

Deno.test("seed example, first run: LEDGER_START=1 LEDGER_END=30000 on a synthetic lake prints the seed's lines", async () => {
  const source = await syntheticLake({
    network: "testnet",
    start: 1,
    count: 30000,
    lcmVersion: 2,
    ledgerBytes: 1024,
  });
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const env = { ...copyEnv(target, source, out.path), LEDGER_START: "1", LEDGER_END: "30000" };
  const r = await runCli(["copy"], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    stderrWithoutSummary(r.stderr, { ledgers: 30000, partitions: 3 }),
    [
      "[copier] starting from ledger 1",
      "[partition] committed range 1-10000",
      "[checkpoint] saved: last_committed=10000",
      "[partition] committed range 10001-20000",
      "[checkpoint] saved: last_committed=20000",
      "[partition] committed range 20001-30000",
      "[checkpoint] saved: last_committed=30000",
      "[copier] complete",
      "",
    ].join("\n"),
  );
  const lines = psqlLines(target.dsn!, SEED_QUERY);
  assert.equal(lines.length, 3);
  assert.match(lines[0], /^1\|10000\|sha256:[0-9a-f]{64}$/);
  assert.match(lines[1], /^10001\|20000\|sha256:[0-9a-f]{64}$/);
  assert.match(lines[2], /^20001\|30000\|sha256:[0-9a-f]{64}$/);
});
