/**
 * lib/table/quality.ts: the one counter of a partition's quality metrics and hash-chain ends. The
 * copy counts while it writes (copy/build.ts), a catalog rebuild counts the stored file's rows
 * (tallyFile): both must give the same numbers, or a rebuilt catalog's quality rows would differ.
 */
import assert from "node:assert/strict";
import { writePartitionFile } from "../../lib/copy/build.ts";
import { decodeLedger, type LedgerRow } from "../../lib/source/ledger.ts";
import { PartitionTally, tallyFile } from "../../lib/table/quality.ts";
import { SCHEMA_HASH } from "../../lib/table/schema.ts";
import { syntheticLedgers } from "../../scripts/make-lake.ts";
import { testTempDir } from "../support/leftovers.ts";

const META = { bronzeVersion: "0.1.0-test", eraId: "era-1", network: "testnet" };

function rows(start: number, count: number): LedgerRow[] {
  return [...syntheticLedgers({ start, count, lcmVersion: 2, ledgerBytes: 2500, seed: 7 })]
    .map((l) => decodeLedger(l.xdr));
}

async function* each<T>(items: T[]): AsyncIterable<T> {
  yield* items;
}

Deno.test("PartitionTally: the copy's counts while writing equal the counts of the stored file's rows (a rebuild's)", async () => {
  const dir = await testTempDir("quality");
  try {
    const data = rows(101, 40);
    const path = `${dir}/part.parquet`;
    const built = await writePartitionFile(each(data), { start: 101, end: 140 }, path, META, {
      stopped: () => false,
      progress: () => {},
    });
    assert.ok(built);
    const { schemaHash, tally } = await tallyFile(path);
    assert.equal(schemaHash, SCHEMA_HASH);
    assert.deepEqual(tally.quality({ start: 101, end: 140 }), built.quality);
    assert.deepEqual(tally.chain, {
      firstPreviousLedgerHash: built.firstPreviousLedgerHash,
      lastLedgerHash: built.lastLedgerHash,
    });
    // And both are the sums of the ledgers themselves.
    const sum = (f: (r: LedgerRow) => number) => data.reduce((n, r) => n + f(r), 0);
    assert.deepEqual(built.quality, {
      row_count: 40,
      row_count_matches_range: 1,
      chain_intact: 1,
      first_close_time_ms: data[0].closeTimeMs,
      last_close_time_ms: data[39].closeTimeMs,
      close_time_min_ms: Math.min(...data.map((r) => r.closeTimeMs)),
      close_time_max_ms: Math.max(...data.map((r) => r.closeTimeMs)),
      tx_count: sum((r) => r.txCount),
      operation_count: sum((r) => r.operationCount),
      xdr_bytes: sum((r) => r.xdrByteLength),
    });
    assert.ok(built.quality.tx_count > 0 && built.quality.operation_count > 0);
    assert.equal(built.firstPreviousLedgerHash, data[0].previousLedgerHash);
    assert.equal(built.lastLedgerHash, data[39].ledgerHash);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PartitionTally: a broken hash chain, a gap in sequence and an empty or shifted range are each said", () => {
  const data = rows(1, 10);
  const whole = new PartitionTally();
  for (const r of data) whole.add(r);
  assert.equal(whole.rangeProblem({ start: 1, end: 10 }), null);
  assert.equal(whole.chainBreaks, 0);
  assert.equal(
    whole.rangeProblem({ start: 1, end: 11 }),
    "file holds 10 rows, ledgers 1-10, not the ledgers 1-11 of its range",
  );
  assert.equal(whole.quality({ start: 1, end: 11 }).row_count_matches_range, 0);

  const broken = new PartitionTally();
  for (const r of data) {
    broken.add(r.ledgerSequence === 5 ? { ...r, previousLedgerHash: "00".repeat(32) } : r);
  }
  assert.equal(broken.chainBreaks, 1);
  assert.equal(broken.quality({ start: 1, end: 10 }).chain_intact, 0);

  const gap = new PartitionTally();
  for (const r of data) if (r.ledgerSequence !== 4) gap.add(r);
  assert.equal(gap.gaps, 1);
  assert.equal(
    gap.rangeProblem({ start: 1, end: 10 }),
    "file holds 9 rows, ledgers 1-10 with 1 break(s) in sequence, not the ledgers 1-10 of its range",
  );

  assert.equal(
    new PartitionTally().rangeProblem({ start: 1, end: 10 }),
    "file holds no rows, its range is 1-10",
  );
});
