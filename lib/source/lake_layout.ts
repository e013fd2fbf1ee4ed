/**
 * A Galexie data lake's layout (SEP-54): its `.config.json` and the object key of every batch.
 * Apart from the reading (lake.ts) because the lake's writers need it as much as its reader: the
 * bench and tests make lakes (scripts/make-lake.ts) under the very keys the reader will ask for.
 */
import { BronzeError } from "../runtime/errors.ts";
import { oneLine } from "../runtime/format.ts";

export interface LakeConfig {
  networkPassphrase: string;
  version: string;
  compression: "zstd";
  ledgersPerBatch: number;
  batchesPerPartition: number;
}

export const CONFIG_KEY = ".config.json";
/** Real lakes mix both: a batch is looked for under either. */
const EXTENSIONS = ["zst", "zstd"] as const;
export type Ext = typeof EXTENSIONS[number];
/** `[%08X--<pstart>-<pend>/]%08X--<start>[-<end>].xdr.<ext>`: groups are start and ext. */
const BATCH_KEY = /^(?:[0-9A-F]{8}--\d+-\d+\/)?[0-9A-F]{8}--(\d+)(?:-\d+)?\.xdr\.(zstd?)$/;

/** `.config.json`'s bytes, checked; `where` names it in the one line of a problem. */
export function parseConfig(bytes: Uint8Array, where: string): LakeConfig {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new BronzeError(`${where}: not valid JSON (${oneLine((e as Error).message)})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new BronzeError(`${where}: expected a JSON object`);
  }
  const o = json as Record<string, unknown>;
  const bad = (field: string, want: string) =>
    new BronzeError(`${where}: field ${field} must be ${want}, got ${JSON.stringify(o[field])}`);
  if (typeof o.networkPassphrase !== "string" || !o.networkPassphrase) {
    throw bad("networkPassphrase", "a non-empty string");
  }
  if (o.compression !== "zstd") throw bad("compression", `"zstd"`);
  for (const f of ["ledgersPerBatch", "batchesPerPartition"]) {
    const v = o[f];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw bad(f, "a positive integer");
  }
  if (o.version !== undefined && typeof o.version !== "string") throw bad("version", "a string");
  return {
    networkPassphrase: o.networkPassphrase,
    version: (o.version as string | undefined) ?? "",
    compression: "zstd",
    ledgersPerBatch: o.ledgersPerBatch as number,
    batchesPerPartition: o.batchesPerPartition as number,
  };
}

/** SEP-54 hex prefix: 0xFFFFFFFF - n, upper case, 8 digits (newest sorts first). */
function _prefix(n: number): string {
  return (0xFFFFFFFF - n).toString(16).toUpperCase().padStart(8, "0");
}

/** The object key for the batch starting at `batchStart`, per SEP-54. */
export function objectKey(config: LakeConfig, batchStart: number, ext: Ext): string {
  const lpb = config.ledgersPerBatch;
  const file = lpb > 1
    ? `${_prefix(batchStart)}--${batchStart}-${batchStart + lpb - 1}.xdr.${ext}`
    : `${_prefix(batchStart)}--${batchStart}.xdr.${ext}`;
  if (config.batchesPerPartition === 1) return file;
  const size = lpb * config.batchesPerPartition;
  const pstart = Math.floor(batchStart / size) * size;
  return `${_prefix(pstart)}--${pstart}-${pstart + size - 1}/${file}`;
}

/** The grid start of the batch that holds ledger `seq`. */
export function batchStartOf(config: LakeConfig, seq: number): number {
  const lpb = config.ledgersPerBatch;
  return Math.floor(seq / lpb) * lpb;
}

/**
 * The start and extension a key names, if it has the shape of a batch key (null for any other
 * object, .config.json say). Whether it is on this lake's grid is objectKey()'s to say.
 */
export function parseBatchKey(key: string): { start: number; ext: Ext } | null {
  const m = BATCH_KEY.exec(key);
  return m ? { start: Number(m[1]), ext: m[2] as Ext } : null;
}
