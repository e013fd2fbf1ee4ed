/**
 * The checking step of `catalog rebuild`: one partition's manifest read and checked
 * (table/manifest_check.ts), its file hashed against it, and what an older manifest lacks derived
 * from the file's schema and rows. The result is the lineage row to record, or why not.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { BronzeError } from "../runtime/errors.ts";
import { hashObject, NotFoundError, type ObjectStore, objectUrl } from "../blob/mod.ts";
import type { RebuiltRow } from "../metadata/rebuild.ts";
import { type DatasetIdentity, datasetLabel } from "../table/dataset.ts";
import type { Range } from "../table/grid.ts";
import { parseManifest } from "../table/manifest.ts";
import {
  type CheckedManifest,
  checkManifest,
  type ManifestField,
} from "../table/manifest_check.ts";
import { type FileTally, type HashChainEnds, tallyFile } from "../table/quality.ts";
import type { Manifested } from "./rebuild_list.ts";

/** Why a partition was not recorded: its manifest, or its file against its manifest. */
export type RebuildCheck =
  | "manifest"
  | "missing"
  | "size"
  | "checksum"
  | "unreadable"
  | "ledger_range";

/** A partition named in a rebuild's report, with the one line that says why. */
export interface PartitionNote {
  start: number;
  end: number;
  uri: string;
  message: string;
}

export interface PartitionFailure extends PartitionNote {
  check: RebuildCheck;
}

/** A partition whose file matched its manifest: the row to record. */
export interface Sound {
  ds: DatasetIdentity;
  row: RebuiltRow;
  uri: string;
  /** The key of its manifest (the file's is row.storagePath). */
  manifestKey: string;
  schemaHash: string;
  /** What its manifest lacked, derived from storage. */
  derived: ManifestField[];
}

export type Checked = Sound | { ds: DatasetIdentity; failure: PartitionFailure };

/** The one line naming a partition: `partition 1-64 of <dataset> (<uri>): <what>`. */
export function partitionNote(
  ds: DatasetIdentity,
  range: Range,
  uri: string,
  what: string,
): PartitionNote {
  return {
    start: range.start,
    end: range.end,
    uri,
    message: `partition ${range.start}-${range.end} of ${datasetLabel(ds)} (${uri}): ${what}`,
  };
}

/** What the catalog needs that an older manifest may lack, and the file's rows always hold. */
interface Derivable {
  schemaHash: string;
  chain: HashChainEnds;
  quality: Record<string, number>;
}

/**
 * Where the derivable fields come from: the manifest when it holds them all, else the file's rows
 * (read in place when local, else from a temp copy made while hashing).
 */
type Origin =
  | { from: "manifest"; values: Derivable }
  | { from: "file"; path: string; copy: boolean };

/** Reads a partition's manifest and checks its file against it; derives what the manifest lacks. */
export async function checkPartition(
  store: ObjectStore,
  slot: Manifested,
  tmpDir: string,
): Promise<Checked> {
  const { ds, range } = slot;
  const key = slot.file?.key ?? `${slot.dir}part-${range.start}-${range.end}.parquet`;
  const uri = objectUrl(store, key);
  const manifestUri = objectUrl(store, slot.manifest.key);
  const fail = (check: RebuildCheck, what: string): Checked => ({
    ds,
    failure: { ...partitionNote(ds, range, uri, what), check },
  });
  let m: CheckedManifest;
  try {
    const checked = checkManifest(
      parseManifest(await store.get(slot.manifest.key), manifestUri),
      { ds, range, key },
    );
    if ("problem" in checked) return fail("manifest", `its manifest ${checked.problem}`);
    m = checked;
  } catch (err) {
    // Gone since the listing, or not a manifest; anything else (the store failing) stops the run.
    if (!(err instanceof BronzeError)) throw err;
    return fail("manifest", err.message);
  }
  const { table } = m;
  if (!slot.file) return fail("missing", `file not found beside its manifest ${manifestUri}`);
  if (slot.file.size !== table.bytes) {
    return fail("size", `file is ${slot.file.size} bytes, its manifest records ${table.bytes}`);
  }

  const { schemaHash, chain, quality } = m;
  const local = store.localPath?.(key) ?? null;
  const origin: Origin = schemaHash !== null && chain !== null && quality !== null
    ? { from: "manifest", values: { schemaHash, chain, quality } }
    : local !== null
    ? { from: "file", path: local, copy: false }
    : {
      from: "file",
      path: join(tmpDir, `rebuild-${Deno.pid}-${crypto.randomUUID()}.parquet`),
      copy: true,
    };
  const copy = origin.from === "file" && origin.copy ? origin.path : null;
  try {
    let sha256: string;
    try {
      ({ sha256 } = await hashObject(store, key, copy));
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      return fail("missing", `file not found (removed since the listing)`);
    }
    if (`sha256:${sha256}` !== table.checksum) {
      return fail(
        "checksum",
        `file hashes to sha256:${sha256}, its manifest records ${table.checksum}`,
      );
    }
    let values: Derivable;
    if (origin.from === "manifest") values = origin.values;
    else {
      let facts: FileTally;
      try {
        facts = await tallyFile(origin.path);
      } catch (err) {
        return fail("unreadable", `not a readable Parquet file (${(err as Error).message})`);
      }
      const off = facts.tally.rangeProblem(range);
      if (off) return fail("ledger_range", off);
      values = {
        schemaHash: schemaHash ?? facts.schemaHash,
        chain: chain ?? facts.tally.chain,
        quality: quality ?? facts.tally.quality(range),
      };
    }
    return {
      ds,
      uri,
      manifestKey: slot.manifest.key,
      schemaHash: values.schemaHash,
      derived: m.lacks,
      row: {
        ledgerStart: range.start,
        ledgerEnd: range.end,
        rowCount: table.rows,
        byteSize: table.bytes,
        checksum: table.checksum,
        storagePath: key,
        storageUri: uri,
        ...values.chain,
        producerVersion: m.producer.version,
        producerGitSha: m.producer.gitSha,
        sourceType: m.source?.type ?? null,
        sourceLocation: m.source?.location ?? null,
        createdAt: m.createdAt ?? undefined,
        quality: values.quality,
      },
    };
  } finally {
    if (copy) await rm(copy, { force: true });
  }
}
