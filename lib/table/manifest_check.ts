/**
 * A `_manifest.json` found in storage, checked against the folder it lies in and against what the
 * catalog's columns take (so one bad manifest cannot fail its dataset's transaction): either why
 * it is unusable, or what it says, typed. `catalog rebuild` records a partition from it.
 *
 * A manifest written before manifest_version 2 lacks fields (manifest.ts); those are null here and
 * named in `lacks`, and the caller derives them from storage.
 */
import { type DatasetIdentity, datasetLabel } from "./dataset.ts";
import type { Range } from "./grid.ts";
import type { StoredManifest } from "./manifest.ts";
import type { HashChainEnds } from "./quality.ts";
import { DOMAIN, TABLE } from "./schema.ts";

/** What an older manifest may lack. */
export type ManifestField =
  | "dataset"
  | "storage_path"
  | "schema_hash"
  | "hash_chain"
  | "quality"
  | "source"
  | "created_at";

/** Where a manifest was found: the dataset and range of its folder, the partition file's key. */
export interface ManifestPlace {
  ds: DatasetIdentity;
  range: Range;
  /** The partition file's key, relative to the storage root. */
  key: string;
}

/** What a usable manifest says; null where it says nothing (an older manifest). */
export interface CheckedManifest {
  table: { checksum: string; rows: number; bytes: number };
  producer: { version: string; gitSha: string | null };
  schemaHash: string | null;
  chain: HashChainEnds | null;
  quality: Record<string, number> | null;
  source: { type: string; location: string } | null;
  createdAt: Date | null;
  /** The fields it lacks, in ManifestField order. */
  lacks: ManifestField[];
}

const CHECKSUM = /^sha256:[0-9a-f]{64}$/;
const HASH = /^[0-9a-f]{64}$/;

/** The manifest's content, or what makes it unusable for its place (a phrase: "its manifest …"). */
export function checkManifest(
  m: StoredManifest,
  at: ManifestPlace,
): CheckedManifest | { problem: string } {
  const problem = (p: string) => ({ problem: p });
  const { range, ds, key } = at;
  const p = m.partition;
  if (p?.start !== range.start || p?.end !== range.end) {
    return problem(
      `describes partition ${p?.start}-${p?.end}, not the range=${range.start}-${range.end} it lies in`,
    );
  }
  if (p.table !== undefined && p.table !== TABLE) {
    return problem(`names table ${p.table}, not ${TABLE}`);
  }
  const file = key.slice(key.lastIndexOf("/") + 1);
  if (p.file !== undefined && p.file !== file) return problem(`names file ${p.file}, not ${file}`);
  if (p.storage_path !== undefined && p.storage_path !== key) {
    return problem(`names storage_path ${p.storage_path}, not ${key}`);
  }
  const d = m.dataset;
  if (
    d && (d.domain !== DOMAIN || d.dataset !== TABLE || d.network !== ds.network ||
      d.era_id !== ds.eraId || d.version !== ds.version)
  ) {
    return problem(
      `names dataset ${d.domain}.${d.dataset} (${d.network}/${d.era_id}/${d.version}), ` +
        `not the ${datasetLabel(ds)} it lies in`,
    );
  }
  const t = m.table;
  if (typeof t?.checksum !== "string" || !CHECKSUM.test(t.checksum)) {
    return problem(`records no sha256 checksum (table.checksum ${JSON.stringify(t?.checksum)})`);
  }
  const bytes = t.bytes;
  if (bytes === undefined || !Number.isSafeInteger(bytes) || bytes < 0) {
    return problem(`records no byte size (table.bytes ${JSON.stringify(bytes)})`);
  }
  const rows = range.end - range.start + 1;
  if (t.rows !== rows) {
    return problem(`records ${t.rows} rows for the ${rows} ledgers of its range`);
  }
  const version = m.producer?.version;
  if (typeof version !== "string" || version.length > 64) {
    return problem(
      `records no producer.version of at most 64 characters (${JSON.stringify(version)})`,
    );
  }
  const wrong = (what: string, value: unknown) =>
    problem(`records ${what} ${JSON.stringify(value)}`);
  const gitSha = m.producer?.git_sha ?? null;
  if (gitSha !== null && (typeof gitSha !== "string" || gitSha.length > 64)) {
    return wrong("a producer.git_sha that is not a string of at most 64 characters:", gitSha);
  }
  for (const field of ["first_previous_ledger_hash", "last_ledger_hash"] as const) {
    if (p[field] !== undefined && !HASH.test(String(p[field]))) {
      return wrong(`a partition.${field} that is not 64 hex digits:`, p[field]);
    }
  }
  if (d?.schema_hash !== undefined && !HASH.test(String(d.schema_hash))) {
    return wrong("a dataset.schema_hash that is not 64 hex digits:", d.schema_hash);
  }
  const metrics: Record<string, number> = {};
  for (const [name, value] of Object.entries(m.quality ?? {})) {
    if (typeof value !== "number" || !Number.isFinite(value)) {
      return wrong(`quality metric ${name} that is not a number:`, value);
    }
    metrics[name] = value;
  }
  let source: CheckedManifest["source"] = null;
  const s = m.source;
  if (s !== undefined) {
    if (typeof s?.type !== "string" || s.type.length > 32 || typeof s.location !== "string") {
      return wrong("a source that is not {type, location} strings:", s);
    }
    source = { type: s.type, location: s.location };
  }

  const first = p.first_previous_ledger_hash, last = p.last_ledger_hash;
  const chain = typeof first === "string" && typeof last === "string"
    ? { firstPreviousLedgerHash: first, lastLedgerHash: last }
    : null;
  const quality = Object.keys(metrics).length > 0 ? metrics : null;
  const created = typeof m.created_at === "string" ? new Date(m.created_at) : null;
  const createdAt = created && !Number.isNaN(created.getTime()) ? created : null;
  const schemaHash = typeof d?.schema_hash === "string" ? d.schema_hash : null;
  const lacks: ManifestField[] = [];
  if (!d) lacks.push("dataset");
  if (!p.storage_path) lacks.push("storage_path");
  if (schemaHash === null) lacks.push("schema_hash");
  if (chain === null) lacks.push("hash_chain");
  if (quality === null) lacks.push("quality");
  if (source === null) lacks.push("source");
  if (createdAt === null) lacks.push("created_at");
  return {
    table: { checksum: t.checksum, rows, bytes },
    producer: { version, gitSha },
    schemaHash,
    chain,
    quality,
    source,
    createdAt,
    lacks,
  };
}
