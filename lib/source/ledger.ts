/**
 * One LedgerCloseMeta -> one `ledgers_lcm_raw` row, reading only the bytes the row needs: the
 * ledger header, the transaction set's operation counts and txProcessing's length. Everything
 * else (transaction meta, the bulk of a ledger) is never touched.
 */
import { createHash } from "node:crypto";
import { BronzeError } from "../runtime/errors.ts";
import { oneLine } from "../runtime/format.ts";
import { readU32, XdrCorruptError } from "./_xdr.ts";
import {
  innerOfFeeBump,
  opsOfTx,
  opsOfTxV0,
  skipEnvelope,
  skipHeaderEntry,
  skipLcm,
  skipLcmExt,
  skipOptionalBaseFee,
  skipStellarValue,
} from "./_skippers.generated.ts";

export interface LedgerRow {
  ledgerSequence: number;
  ledgerHash: string;
  previousLedgerHash: string;
  /** scpValue.closeTime in milliseconds since the Unix epoch (UTC). */
  closeTimeMs: number;
  protocolVersion: number;
  totalCoins: bigint;
  feePool: bigint;
  txSetHash: string;
  txCount: number;
  operationCount: number;
  /** The exact LedgerCloseMeta XDR. */
  xdr: Uint8Array;
  xdrByteLength: number;
  xdrSha256: string;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function toHex(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let s = "";
  for (let i = start; i < end; i++) s += HEX[bytes[i]];
  return s;
}

const ENVELOPE_TX_V0 = 0;
const ENVELOPE_TX = 2;
const ENVELOPE_TX_FEE_BUMP = 5;

function i32(view: DataView, off: number): number {
  readU32(view, off); // bounds check
  return view.getInt32(off);
}

/** Operations in the TransactionEnvelope at `off` (a fee bump counts its inner transaction's). */
function envelopeOps(view: DataView, off: number): number {
  const type = i32(view, off);
  switch (type) {
    case ENVELOPE_TX_V0:
      return readU32(view, opsOfTxV0(view, off + 4));
    case ENVELOPE_TX:
      return readU32(view, opsOfTx(view, off + 4));
    case ENVELOPE_TX_FEE_BUMP: {
      const inner = innerOfFeeBump(view, off + 4);
      const innerType = i32(view, inner);
      if (innerType !== ENVELOPE_TX) {
        throw new XdrCorruptError(
          `fee bump inner transaction has envelope type ${innerType}`,
          inner,
        );
      }
      return readU32(view, opsOfTx(view, inner + 4));
    }
    default:
      throw new XdrCorruptError(`unknown TransactionEnvelope type ${type}`, off);
  }
}

/** Sums operations over `TransactionEnvelope txs<>` at `off`; returns [ops, end offset]. */
function envelopeArrayOps(view: DataView, off: number): [number, number] {
  const n = readU32(view, off);
  off += 4;
  let ops = 0;
  for (let i = 0; i < n; i++) {
    ops += envelopeOps(view, off);
    off = skipEnvelope(view, off);
  }
  return [ops, off];
}

/** Operations in a classic TransactionSet (LedgerCloseMeta v0); returns [ops, end offset]. */
function txSetOps(view: DataView, off: number): [number, number] {
  return envelopeArrayOps(view, off + 32); // previousLedgerHash
}

/** Operations in a GeneralizedTransactionSet (v1/v2); returns [ops, end offset]. */
function generalizedTxSetOps(view: DataView, off: number): [number, number] {
  const v = i32(view, off);
  if (v !== 1) throw new XdrCorruptError(`unknown GeneralizedTransactionSet version ${v}`, off);
  off += 4 + 32; // previousLedgerHash
  const phases = readU32(view, off);
  off += 4;
  let ops = 0;
  let n: number;
  for (let p = 0; p < phases; p++) {
    const phase = i32(view, off);
    off += 4;
    if (phase === 0) {
      // TxSetComponent v0Components<>: each txsMaybeDiscountedFee { int64* baseFee; txs<> }
      const components = readU32(view, off);
      off += 4;
      for (let c = 0; c < components; c++) {
        const type = i32(view, off);
        if (type !== 0) throw new XdrCorruptError(`unknown TxSetComponent type ${type}`, off);
        [n, off] = envelopeArrayOps(view, skipOptionalBaseFee(view, off + 4));
        ops += n;
      }
    } else if (phase === 1) {
      // Protocol 23 parallel Soroban phase: executionStages[stage][cluster][envelope]
      off = skipOptionalBaseFee(view, off);
      const stages = readU32(view, off);
      off += 4;
      for (let s = 0; s < stages; s++) {
        const clusters = readU32(view, off);
        off += 4;
        for (let c = 0; c < clusters; c++) {
          [n, off] = envelopeArrayOps(view, off);
          ops += n;
        }
      }
    } else {
      throw new XdrCorruptError(`unknown TransactionPhase version ${phase}`, off - 4);
    }
  }
  return [ops, off];
}

/** Offset of the LedgerHeaderHistoryEntry in the LedgerCloseMeta at `off`. */
function headerEntryOffset(view: DataView, off: number): [version: number, offset: number] {
  const v = i32(view, off);
  if (v === 0) return [0, off + 4];
  if (v === 1 || v === 2) return [v, skipLcmExt(view, off + 4)];
  throw new XdrCorruptError(`unknown LedgerCloseMeta version ${v}`, off);
}

// LedgerHeader: ledgerVersion, previousLedgerHash, scpValue, txSetResultHash, bucketListHash,
// ledgerSeq, totalCoins, feePool, ...
const SEQ_AFTER_SCP = 32 + 32;

/**
 * Where the LedgerCloseMeta starting at `off` ends, and its ledgerSeq. The whole structure is
 * walked, so corrupt XDR anywhere in it throws XdrCorruptError.
 */
export function lcmExtent(view: DataView, off: number): { end: number; ledgerSeq: number } {
  const [, h] = headerEntryOffset(view, off);
  const afterScp = skipStellarValue(view, h + 32 + 4 + 32);
  const ledgerSeq = readU32(view, afterScp + SEQ_AFTER_SCP);
  return { end: skipLcm(view, off), ledgerSeq };
}

/**
 * Extents `[sequence, start, end]` of the `count` LedgerCloseMetas at `off` in `data`, which must
 * be ledgers `first`, `first + 1`, ... and end exactly at the end of `data`. Every source runs its
 * bytes through this one check (a lake batch, an RPC `metadataXdr`), so garbage is caught the same
 * way whichever way a ledger came. Errors are one line, prefixed by `where`.
 */
export function splitLedgers(
  data: Uint8Array,
  off: number,
  first: number,
  count: number,
  where: string,
): Array<[number, number, number]> {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const ledgers: Array<[number, number, number]> = [];
  let seq = first;
  try {
    for (let i = 0; i < count; i++) {
      seq = first + i;
      const { end, ledgerSeq } = lcmExtent(view, off);
      if (ledgerSeq !== seq) {
        throw new BronzeError(
          `${where}: LedgerCloseMeta #${i} has ledgerSeq ${ledgerSeq}, expected ledger ${seq}`,
        );
      }
      ledgers.push([seq, off, end]);
      off = end;
    }
    if (off !== data.byteLength) {
      throw new XdrCorruptError(`${data.byteLength - off} trailing byte(s)`, off);
    }
  } catch (e) {
    if (e instanceof XdrCorruptError || e instanceof RangeError) {
      throw new BronzeError(`${where}: corrupt XDR (ledger ${seq}): ${oneLine(e.message)}`);
    }
    throw e;
  }
  return ledgers;
}

function decode(bytes: Uint8Array): LedgerRow {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [version, entry] = headerEntryOffset(view, 0);
  const header = entry + 32;
  const scp = header + 4 + 32;
  readU32(view, scp + 32 + 4); // bounds: closeTime
  const closeTime = view.getBigUint64(scp + 32);
  const afterScp = skipStellarValue(view, scp);
  const seqAt = afterScp + SEQ_AFTER_SCP;
  readU32(view, seqAt + 4 + 16 - 4); // bounds: ledgerSeq, totalCoins, feePool
  const txSetAt = skipHeaderEntry(view, entry);
  const [operationCount, txProcessingAt] = version === 0
    ? txSetOps(view, txSetAt)
    : generalizedTxSetOps(view, txSetAt);
  return {
    ledgerSequence: view.getUint32(seqAt),
    ledgerHash: toHex(bytes, entry, entry + 32),
    previousLedgerHash: toHex(bytes, header + 4, header + 36),
    closeTimeMs: Number(closeTime) * 1000,
    protocolVersion: view.getUint32(header),
    totalCoins: view.getBigInt64(seqAt + 4),
    feePool: view.getBigInt64(seqAt + 12),
    txSetHash: toHex(bytes, scp, scp + 32),
    txCount: readU32(view, txProcessingAt),
    operationCount,
    xdr: bytes,
    xdrByteLength: bytes.byteLength,
    xdrSha256: createHash("sha256").update(bytes).digest("hex"),
  };
}

/**
 * Decodes the row for one LedgerCloseMeta (v0, v1 or v2). `source` names where the bytes came
 * from, for the error message (e.g. the object URL and ledger).
 */
export function decodeLedger(bytes: Uint8Array, source = "LedgerCloseMeta"): LedgerRow {
  try {
    return decode(bytes);
  } catch (e) {
    if (e instanceof XdrCorruptError || e instanceof RangeError) {
      throw new BronzeError(`${source}: corrupt LedgerCloseMeta XDR: ${e.message}`);
    }
    throw e;
  }
}
