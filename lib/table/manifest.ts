/**
 * `_manifest.json`, written beside each partition file: what the partition is and who made it, so
 * storage describes itself without the catalog. It holds everything the partition's lineage row
 * (and its commit-time quality rows) holds but the storage root, so `bronze catalog rebuild`
 * recreates a lost catalog from storage alone: a row's storage_uri is the root it is rebuilt from
 * joined with `partition.storage_path` (a bucket copied elsewhere rebuilds with its new URIs).
 *
 * Manifests written before `manifest_version` 2 hold only `partition` {start, end, table, file},
 * `table`, `producer` and `created_at`; StoredManifest is what may be found in storage, and
 * `catalog rebuild` derives what such a manifest lacks (manifest_check.ts says what it lacks).
 */
import { BronzeError } from "../runtime/errors.ts";

export const MANIFEST_VERSION = 2;

export interface Manifest {
  manifest_version: typeof MANIFEST_VERSION;
  /** The dataset's identity in the catalog (_meta_datasets) and its Parquet schema hash. */
  dataset: {
    domain: string;
    dataset: string;
    network: string;
    era_id: string;
    version: string;
    schema_hash: string;
  };
  partition: {
    start: number;
    end: number;
    table: string;
    file: string;
    /** The file's key relative to the storage root. */
    storage_path: string;
    /** previous_ledger_hash of the first ledger: links the partition to the one before. */
    first_previous_ledger_hash: string;
    /** ledger_hash of the last ledger. */
    last_ledger_hash: string;
  };
  table: { checksum: string; rows: number; bytes: number };
  /** The quality metrics recorded with the lineage row when it was committed. */
  quality: Record<string, number>;
  /** lineage source_type ("archive": a lake, "live": RPC) and source_location (no credentials). */
  source: { type: string; location: string };
  producer: { version: string; git_sha: string | null };
  /** When the partition was described in storage; its lineage row's created_at. */
  created_at: string;
}

/** Every level optional: a manifest as found in storage, of any version (or a damaged one). */
export type StoredManifest = {
  [K in keyof Manifest]?: Manifest[K] extends Record<string, unknown> ? Partial<Manifest[K]>
    : Manifest[K];
};

/**
 * The manifest's bytes: JSON with its fields always in the order of the Manifest interface,
 * whatever order the object was built in, so equal manifests are equal bytes.
 */
export function encodeManifest(m: Manifest): Uint8Array {
  const ordered: Manifest = {
    manifest_version: MANIFEST_VERSION,
    dataset: {
      domain: m.dataset.domain,
      dataset: m.dataset.dataset,
      network: m.dataset.network,
      era_id: m.dataset.era_id,
      version: m.dataset.version,
      schema_hash: m.dataset.schema_hash,
    },
    partition: {
      start: m.partition.start,
      end: m.partition.end,
      table: m.partition.table,
      file: m.partition.file,
      storage_path: m.partition.storage_path,
      first_previous_ledger_hash: m.partition.first_previous_ledger_hash,
      last_ledger_hash: m.partition.last_ledger_hash,
    },
    table: { checksum: m.table.checksum, rows: m.table.rows, bytes: m.table.bytes },
    quality: Object.fromEntries(
      Object.keys(m.quality).sort().map((k) => [k, m.quality[k]]),
    ),
    source: { type: m.source.type, location: m.source.location },
    producer: { version: m.producer.version, git_sha: m.producer.git_sha },
    created_at: m.created_at,
  };
  return new TextEncoder().encode(JSON.stringify(ordered, null, 2) + "\n");
}

/** Parses a manifest's bytes; `where` names it in the one-line error. */
export function parseManifest(bytes: Uint8Array, where: string): StoredManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new BronzeError(`manifest ${where} is not valid JSON (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new BronzeError(`manifest ${where} is not a JSON object`);
  }
  return parsed as StoredManifest;
}
