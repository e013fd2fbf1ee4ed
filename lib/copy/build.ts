/**
 * Step 1 of the commit protocol: one partition's Parquet file and its sha256, built from the lake
 * in a local temp file. Runs inside a build worker (lib/copy/_worker.ts), so partitions are built in
 * parallel while the main thread commits them in ledger order; it streams (memory is bounded by
 * the row-group budget and the lake's prefetch, never by the partition's size).
 */
import { BronzeError, inArea } from "../runtime/errors.ts";
import type { LedgerSource } from "../source/source.ts";
import { decodeLedger, type LedgerRow } from "../source/ledger.ts";
import { PartitionFileWriter } from "../table/writer.ts";
import { PartitionTally } from "../table/quality.ts";
import type { PartitionMeta } from "../table/schema.ts";
import type { Range } from "../table/grid.ts";
import { failpoint } from "../runtime/failpoint.ts";

export interface Built {
  range: Range;
  /** Fewer ledgers than planned were read: the run was interrupted. */
  partial: boolean;
  path: string;
  sha256: string;
  bytes: number;
  firstPreviousLedgerHash: string;
  lastLedgerHash: string;
  /** Breaks in the previous-ledger-hash chain within the partition (logged by the caller). */
  chainBreaks: number;
  quality: Record<string, number>;
  /** Wall time of the build, seconds. */
  seconds: number;
}

export interface BuildHooks {
  /** True once the run is interrupted: the build stops after the ledger in hand. */
  stopped(): boolean;
  /** Called for each ledger written, with its XDR size. */
  progress(ledgers: number, bytes: number): void;
  /** Each row group's rows, once in the file: their XDR is not read again. */
  written?(rows: readonly LedgerRow[]): void;
}

/**
 * Builds `range` into `path` from the source. Returns null when stopped before the first ledger
 * (no file is left), a `partial` result when stopped after some.
 */
export async function buildPartitionFile(
  source: LedgerSource,
  range: Range,
  path: string,
  meta: PartitionMeta,
  hooks: BuildHooks,
): Promise<Built | null> {
  return await writePartitionFile(decoded(source, range), range, path, meta, {
    ...hooks,
    // Written ledgers' memory goes back to the source for the next ones (see source/_buffers.ts).
    written: source.release && ((rows) => {
      for (const r of rows) source.release!(r.xdr);
    }),
  });
}

/** The source's ledgers of `range`, decoded into rows; its errors are the source's. */
async function* decoded(source: LedgerSource, range: Range): AsyncIterable<LedgerRow> {
  try {
    for await (const raw of source.stream(range.start, range.end)) {
      const row = decodeLedger(raw.xdr, `${raw.key} (ledger ${raw.sequence})`);
      if (row.ledgerSequence !== raw.sequence) {
        throw new BronzeError(
          `${raw.key}: holds ledger ${row.ledgerSequence} where ledger ${raw.sequence} belongs`,
        );
      }
      yield row;
    }
  } catch (err) {
    throw inArea(err, "source");
  }
}

/**
 * Writes rows (in ledger order, the first `range.start`) into the partition file at `path`: the
 * same bytes whatever they were read from, a source or the partial files of a cell (compaction).
 */
export async function writePartitionFile(
  rows: AsyncIterable<LedgerRow>,
  range: Range,
  path: string,
  meta: PartitionMeta,
  hooks: BuildHooks,
): Promise<Built | null> {
  if (hooks.stopped()) return null;
  const t0 = performance.now();
  const file = await PartitionFileWriter.create(path, meta, { onWritten: hooks.written });
  const tally = new PartitionTally();
  try {
    for await (const row of rows) {
      tally.add(row);
      await file.write(row);
      hooks.progress(1, row.xdrByteLength);
      await failpoint("build-ledger", hooks.stopped);
      if (hooks.stopped()) break;
    }
    if (tally.rows === 0) {
      await file.abort();
      return null;
    }
    const info = await file.finish();
    const read = { start: range.start, end: tally.last };
    const off = tally.rangeProblem(read) ??
      (info.rows === tally.rows ? null : `wrote ${info.rows} rows for ${tally.rows} ledgers`);
    if (off) throw new Error(`partition ${read.start}-${read.end}: ${off}`);
    return {
      range: read,
      partial: read.end < range.end,
      path,
      sha256: info.sha256,
      bytes: info.bytes,
      ...tally.chain,
      chainBreaks: tally.chainBreaks,
      quality: tally.quality(read),
      seconds: (performance.now() - t0) / 1000,
    };
  } catch (err) {
    await file.abort();
    throw err;
  }
}
