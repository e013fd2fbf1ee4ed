/**
 * lib/table/writer.ts: PartitionFileWriter writes deterministic Parquet (the same rows, the same
 * bytes), bounded row groups, and files hyparquet and DuckDB read back exactly.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DuckDBInstance } from "@duckdb/node-api";
import { parquetMetadata } from "hyparquet";
import { decodeLedger, type LedgerRow } from "../../lib/source/ledger.ts";
import { COLUMN_NAMES, CREATED_BY, SCHEMA_HASH } from "../../lib/table/schema.ts";
import { PartitionFileWriter } from "../../lib/table/writer.ts";
import { readPartitionRows } from "../../lib/table/reader.ts";
import { syntheticLedgers } from "../../scripts/make-lake.ts";
import { testTempDir } from "../support/leftovers.ts";

const META = { bronzeVersion: "0.1.0-test", eraId: "era-1", network: "testnet" };

const tempDirs: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const d of tempDirs) Deno.removeSync(d, { recursive: true });
});
async function tempFile(name: string): Promise<string> {
  const dir = await testTempDir("parquet");
  tempDirs.push(dir);
  return `${dir}/${name}`;
}

function rows(count: number, ledgerBytes = 3000, lcmVersion: 0 | 1 | 2 = 2): LedgerRow[] {
  return [...syntheticLedgers({ start: 1000, count, lcmVersion, ledgerBytes, seed: 5 })]
    .map((l) => decodeLedger(l.xdr));
}

async function write(
  path: string,
  data: LedgerRow[],
  opts?: { rowGroupBytes?: number; rowGroupRows?: number },
) {
  const w = await PartitionFileWriter.create(path, META, opts);
  for (const r of data) await w.write(r);
  return await w.finish();
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

Deno.test("same rows, two writes: byte-identical files and the sha256 of their bytes", async () => {
  const data = rows(50);
  const a = await tempFile("a.parquet");
  const b = await tempFile("b.parquet");
  const ia = await write(a, data);
  const ib = await write(b, data);
  assert.deepEqual(ia, ib);
  const bytes = await Deno.readFile(a);
  assert.equal(ia.sha256, sha256(bytes));
  assert.equal(ia.bytes, bytes.length);
  assert.equal(ia.rows, 50);
  assert.deepEqual(bytes, await Deno.readFile(b));
  assert.match(SCHEMA_HASH, /^[0-9a-f]{64}$/);
});

Deno.test("row groups are bounded by the XDR byte budget, deterministically", async () => {
  const data = rows(60, 4000);
  const path = await tempFile("rg.parquet");
  const info = await write(path, data, { rowGroupBytes: 40_000 });
  const meta = parquetMetadata((await Deno.readFile(path)).buffer);
  // A row group closes on the row that reaches the budget.
  const expected: number[] = [];
  let n = 0;
  let bytes = 0;
  for (const r of data) {
    n++;
    bytes += r.xdrByteLength;
    if (bytes >= 40_000) [expected[expected.length], n, bytes] = [n, 0, 0];
  }
  if (n) expected.push(n);
  assert.ok(expected.length >= 5);
  assert.deepEqual(meta.row_groups.map((g) => Number(g.num_rows)), expected);
  assert.equal(meta.created_by, CREATED_BY);
  const again = await write(await tempFile("rg2.parquet"), data, { rowGroupBytes: 40_000 });
  assert.equal(again.sha256, info.sha256);
  const capped = await tempFile("rg3.parquet");
  await write(capped, data, { rowGroupRows: 25 });
  const capMeta = parquetMetadata((await Deno.readFile(capped)).buffer);
  assert.deepEqual(capMeta.row_groups.map((g) => Number(g.num_rows)), [25, 25, 10]);
});

Deno.test("round trip through hyparquet: every column, total_coins above 2^53 exact", async () => {
  const data = [
    ...rows(7, 2500, 0),
    ...rows(7, 2500, 2).map((r, i) => ({ ...r, ledgerSequence: 2000 + i })),
  ];
  const path = await tempFile("rt.parquet");
  await write(path, data, { rowGroupBytes: 10_000 });
  const back = await readPartitionRows(path);
  assert.equal(back.length, data.length);
  back.forEach((got, i) => {
    const r = data[i];
    assert.deepEqual(Object.keys(got), [...COLUMN_NAMES]);
    assert.deepEqual(got, {
      ledger_sequence: BigInt(r.ledgerSequence),
      ledger_hash: r.ledgerHash,
      previous_ledger_hash: r.previousLedgerHash,
      close_time: new Date(r.closeTimeMs),
      protocol_version: r.protocolVersion,
      total_coins: r.totalCoins,
      fee_pool: r.feePool,
      tx_set_hash: r.txSetHash,
      tx_count: r.txCount,
      operation_count: r.operationCount,
      xdr_bytes: r.xdr,
      xdr_byte_length: r.xdrByteLength,
      xdr_sha256: r.xdrSha256,
      bronze_version: META.bronzeVersion,
      era_id: META.eraId,
      network: META.network,
    });
  });
  assert.ok(back[0].total_coins > 2n ** 53n);
  assert.equal(back[0].total_coins, 1_054_439_020_873_472_865n);
  // readPartitionRows also takes bytes.
  assert.equal((await readPartitionRows(await Deno.readFile(path))).length, data.length);
});

Deno.test("DuckDB reads the file: row count, column types, xdr_bytes intact", async () => {
  const data = rows(30, 3000);
  const path = await tempFile("duck.parquet");
  await write(path, data, { rowGroupBytes: 30_000 });
  const db = await DuckDBInstance.create(":memory:");
  const c = await db.connect();
  try {
    const types = Object.fromEntries(
      (await c.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${path}')`)).getRowObjects()
        .map((r) => [String(r.column_name), String(r.column_type)]),
    );
    assert.deepEqual(types, {
      ledger_sequence: "BIGINT",
      ledger_hash: "VARCHAR",
      previous_ledger_hash: "VARCHAR",
      // TIMESTAMP(MILLIS, isAdjustedToUTC=true): DuckDB's name for a UTC instant.
      close_time: "TIMESTAMP WITH TIME ZONE",
      protocol_version: "INTEGER",
      total_coins: "BIGINT",
      fee_pool: "BIGINT",
      tx_set_hash: "VARCHAR",
      tx_count: "INTEGER",
      operation_count: "INTEGER",
      xdr_bytes: "BLOB",
      xdr_byte_length: "INTEGER",
      xdr_sha256: "VARCHAR",
      bronze_version: "VARCHAR",
      era_id: "VARCHAR",
      network: "VARCHAR",
    });
    const [agg] = (await c.runAndReadAll(
      `SELECT count(*) AS n, min(ledger_sequence) AS lo, max(total_coins) AS coins,
              epoch_ms(min(close_time)) AS t FROM read_parquet('${path}')`,
    )).getRowObjects();
    assert.equal(agg.n, 30n);
    assert.equal(agg.lo, 1000n);
    assert.equal(agg.coins, data[0].totalCoins);
    assert.equal(Number(agg.t), data[0].closeTimeMs);
    const pick = data[17];
    const reader = await c.runAndReadAll(
      `SELECT xdr_bytes, xdr_sha256 FROM read_parquet('${path}') WHERE ledger_sequence = ${pick.ledgerSequence}`,
    );
    const [row] = reader.getRowObjects();
    const blob = (row.xdr_bytes as { bytes: Uint8Array }).bytes;
    assert.equal(sha256(blob), pick.xdrSha256);
    assert.equal(row.xdr_sha256, pick.xdrSha256);
  } finally {
    c.closeSync();
    db.closeSync();
  }
});

Deno.test("rows out of order are refused; abort removes the partial file", async () => {
  const data = rows(3);
  const path = await tempFile("abort.parquet");
  const w = await PartitionFileWriter.create(path, META);
  await w.write(data[1]);
  await assert.rejects(w.write(data[0]), /ledger 1000 written after ledger 1001/);
  await w.abort();
  await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
});
