import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { xdr } from "@stellar/stellar-sdk";
import { openStore } from "../../lib/blob/mod.ts";
import { openLake } from "../../lib/source/lake.ts";
import { decodeLedger, type LedgerRow } from "../../lib/source/ledger.ts";
import type { Network } from "../../lib/source/network.ts";
import { syntheticLedgers } from "../../scripts/make-lake.ts";
import { SAMPLES, SAMPLES_ABSENT } from "../support/lakes.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

// deno-lint-ignore no-explicit-any
type Wire = any;

function envelopeOps(e: Wire): number {
  if (e.type === 0) return e.v0.tx.operations.length;
  if (e.type === 2) return e.v1.tx.operations.length;
  if (e.type === 5) return e.feeBump.tx.innerTx.v1.tx.operations.length;
  throw new Error(`envelope type ${e.type}`);
}

/** What a full SDK decode says each column should be: the reference for decodeLedger. */
export function referenceRow(bytes: Uint8Array): Omit<LedgerRow, "xdr"> & { envelopes: Wire[] } {
  const lcm = xdr.LedgerCloseMeta.fromXdr(bytes);
  // The SDK re-encodes to the same bytes: the extent the lake handed us is exactly one LCM.
  assert.deepEqual(lcm.toXdr(), bytes);
  const wire = lcm.toXdrObject() as Wire;
  const body = wire.v0 ?? wire.v1 ?? wire.v2;
  const { hash, header } = body.ledgerHeader;
  let envelopes: Wire[];
  if (wire.v === 0) envelopes = body.txSet.txs;
  else {
    envelopes = body.txSet.v1TxSet.phases.flatMap((p: Wire) =>
      p.v === 0
        ? p.v0Components.flatMap((c: Wire) => c.txsMaybeDiscountedFee.txs)
        : p.parallelTxsComponent.executionStages.flat(2)
    );
  }
  return {
    ledgerSequence: header.ledgerSeq,
    ledgerHash: hex(hash),
    previousLedgerHash: hex(header.previousLedgerHash),
    closeTimeMs: Number(header.scpValue.closeTime) * 1000,
    protocolVersion: header.ledgerVersion,
    totalCoins: header.totalCoins,
    feePool: header.feePool,
    txSetHash: hex(header.scpValue.txSetHash),
    txCount: body.txProcessing.length,
    operationCount: envelopes.reduce((n: number, e: Wire) => n + envelopeOps(e), 0),
    xdrByteLength: bytes.length,
    xdrSha256: createHash("sha256").update(bytes).digest("hex"),
    envelopes,
  };
}

function assertMatchesSdk(bytes: Uint8Array): LedgerRow {
  const row = decodeLedger(bytes);
  const { envelopes: _, ...ref } = referenceRow(bytes);
  const { xdr: rowXdr, ...rest } = row;
  assert.deepEqual(rest, ref);
  assert.equal(rowXdr, bytes);
  return row;
}

async function lakeRows(network: Network, start: number, end: number): Promise<LedgerRow[]> {
  const lake = await openLake(openStore(`${SAMPLES}${network}`), network);
  const rows: LedgerRow[] = [];
  for await (const l of lake.stream(start, end)) {
    assert.equal(l.sequence, start + rows.length);
    const row = assertMatchesSdk(l.xdr);
    assert.equal(row.ledgerSequence, l.sequence);
    rows.push(row);
  }
  assert.equal(rows.length, end - start + 1);
  return rows;
}

Deno.test({
  name: "real testnet v0 run 1410048-1410367: every column equals the SDK's, hash chain holds",
  ignore: !!SAMPLES_ABSENT,
  fn: async () => {
    const rows = await lakeRows("testnet", 1410048, 1410367);
    for (let i = 1; i < rows.length; i++) {
      assert.equal(
        rows[i].previousLedgerHash,
        rows[i - 1].ledgerHash,
        `ledger ${rows[i].ledgerSequence}`,
      );
    }
    assert.ok(rows.every((r) => r.protocolVersion === 19));
    assert.ok(rows.some((r) => r.operationCount > r.txCount), "some multi-op transactions");
  },
});

Deno.test({
  name: "real testnet 997-999 (LedgerCloseMeta v1, protocol 20)",
  ignore: !!SAMPLES_ABSENT,
  fn: async () => {
    const rows = await lakeRows("testnet", 997, 999);
    assert.deepEqual(rows.map((r) => r.protocolVersion), [20, 20, 20]);
    assert.equal(rows[2].previousLedgerHash, rows[1].ledgerHash);
  },
});

Deno.test({
  name: "real pubnet sparse ledgers (.xdr.zstd, up to ~1 MB) and 53312000 with 163 txs",
  ignore: !!SAMPLES_ABSENT,
  fn: async () => {
    for (const seq of [6154623, 16154623, 26154623, 36154623, 46154623]) {
      await lakeRows("pubnet", seq, seq);
    }
    const [big] = await lakeRows("pubnet", 53312000, 53312000);
    assert.equal(big.txCount, 163);
    assert.equal(big.protocolVersion, 21);
    // total_coins is above 2^53: it must stay a bigint end to end.
    assert.ok(big.totalCoins > BigInt(Number.MAX_SAFE_INTEGER));
  },
});

Deno.test("synthetic v0, v1 and v2 ledgers: every column equals the SDK's", () => {
  for (const lcmVersion of [0, 1, 2] as const) {
    let feeBumps = 0;
    let parallel = 0;
    let v0Envelopes = 0;
    let prev: string | undefined;
    for (
      const l of syntheticLedgers({ start: 100, count: 40, lcmVersion, ledgerBytes: 6000, seed: 3 })
    ) {
      const row = assertMatchesSdk(l.xdr);
      const ref = referenceRow(l.xdr);
      if (prev) assert.equal(row.previousLedgerHash, prev);
      prev = row.ledgerHash;
      assert.equal(row.ledgerHash, hex(l.hash));
      feeBumps += ref.envelopes.filter((e) => e.type === 5).length;
      v0Envelopes += ref.envelopes.filter((e) => e.type === 0).length;
      const w = xdr.LedgerCloseMeta.fromXdr(l.xdr).toXdrObject() as Wire;
      if (w.v === 2) {
        parallel += w.v2.txSet.v1TxSet.phases.filter((p: Wire) => p.v === 1).length;
      }
    }
    assert.ok(feeBumps > 0, `v${lcmVersion}: fee bumps exercised`);
    assert.ok(v0Envelopes > 0, `v${lcmVersion}: v0 envelopes exercised`);
    if (lcmVersion === 2) assert.ok(parallel > 0, "parallel Soroban phase exercised");
  }
});

Deno.test("synthetic v2: parallel phase spans several stages and clusters", () => {
  let stages = 0;
  let clusters = 0;
  for (const l of syntheticLedgers({ start: 1, count: 30, lcmVersion: 2, ledgerBytes: 20000 })) {
    const w = xdr.LedgerCloseMeta.fromXdr(l.xdr).toXdrObject() as Wire;
    const phase = w.v2.txSet.v1TxSet.phases[1].parallelTxsComponent;
    stages = Math.max(stages, phase.executionStages.length);
    for (const s of phase.executionStages) clusters = Math.max(clusters, s.length);
    assertMatchesSdk(l.xdr);
  }
  assert.ok(stages >= 2 && clusters >= 2, `stages ${stages}, clusters ${clusters}`);
});

Deno.test("decodeLedger: corrupt XDR is a one-line BronzeError naming the source", () => {
  const [l] = syntheticLedgers({ start: 5, count: 1, lcmVersion: 1 });
  assert.throws(
    () => decodeLedger(l.xdr.subarray(0, 200), "s3://lake/FFFFFFFA--5.xdr.zst ledger 5"),
    {
      name: "BronzeError",
      message: /^s3:\/\/lake\/FFFFFFFA--5\.xdr\.zst ledger 5: corrupt LedgerCloseMeta XDR: [^\n]+$/,
    },
  );
  const bad = l.xdr.slice();
  bad[3] = 9; // LedgerCloseMeta version 9
  assert.throws(() => decodeLedger(bad), {
    message:
      "LedgerCloseMeta: corrupt LedgerCloseMeta XDR: unknown LedgerCloseMeta version 9 at byte 0",
  });
});
