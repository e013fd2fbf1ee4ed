/**
 * The catalog side of `bronze catalog rebuild` (lib/recover/rebuild.ts reads storage): what a
 * dataset already holds, and the one transaction that records what storage adds to it.
 */
import { BronzeError } from "../runtime/errors.ts";
import { ConstraintError, dbOf } from "./_db.ts";
import { findDataset } from "./_datasets.ts";
import type { Catalog } from "./catalog.ts";
import { type DatasetIdentity, datasetLabel } from "../table/dataset.ts";
import { SWEEP_LOCK_CLASS } from "./claims.ts";
import { commitFiles, registerTable } from "./ducklake.ts";
import {
  CatalogWriter,
  type DatasetInfo,
  type LineageRow,
  type PartitionRecord,
} from "./writer.ts";

/** `_meta_changes.change_type` of a rebuild: lineage recorded from storage, no data changed. */
export const REBUILD_CHANGE = "rebuild";
/** The author of a rebuild's DuckLake snapshots. */
const REBUILD_AUTHOR = "bronze catalog rebuild";

export interface HeldDataset {
  id: number;
  schemaHash: string | null;
  /** Its recorded storage root and grid (null: not recorded). */
  storageRoot: string | null;
  partitionSize: number | null;
  /** Every lineage row of the dataset, in ledger order. */
  lineage: LineageRow[];
}

/** A lineage row to record, with its quality rows; createdAt is its manifest's. */
export type RebuiltRow = Omit<PartitionRecord, "datasetId" | "change" | "claimId">;

/** Another writer recorded rows of the dataset meanwhile: read it again and reclassify. */
export class LineageChangedError extends BronzeError {}

/** The dataset as the catalog holds it, or null when it is not registered. */
export async function heldDataset(
  catalog: Catalog,
  ds: DatasetIdentity,
): Promise<HeldDataset | null> {
  const found = await findDataset(dbOf(catalog), ds);
  if (!found) return null;
  const { id, schema_hash, storage_root, partition_size } = found;
  return {
    id,
    schemaHash: schema_hash,
    storageRoot: storage_root,
    partitionSize: partition_size,
    lineage: await new CatalogWriter(catalog).listLineage(id),
  };
}

/** Rows per INSERT: bounds the size of one statement's arrays. */
const CHUNK = 2000;

/**
 * ONE transaction: registers the dataset when absent (an existing registration is left as it is),
 * inserts `rows` with their quality rows, each with its own created_at, and one `_meta_changes`
 * row saying what was rebuilt. A row of the dataset in the way (recorded meanwhile by a copier)
 * rolls it all back and raises LineageChangedError. Returns the dataset id.
 *
 * The dataset's sweep lock is held from before `stillStored` runs until the commit: gc deletes
 * unrecorded files only under that lock, so a file `stillStored` finds is not deleted before its
 * row is committed (after which gc sees it recorded). `stillStored` throws to roll back.
 */
export async function recordRebuild(
  catalog: Catalog,
  dataset: DatasetInfo,
  rows: readonly RebuiltRow[],
  description: string,
  stillStored: () => Promise<void> = async () => {},
): Promise<number> {
  try {
    return await dbOf(catalog).transaction(async (c) => {
      const key = [
        dataset.domain,
        dataset.dataset,
        dataset.version,
        dataset.eraId,
        dataset.network,
      ];
      const inserted = await c.query<{ id: number }>(
        `INSERT INTO _meta_datasets (domain, dataset, version, era_id, network, schema_hash,
           description, storage_root)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (domain, dataset, version, era_id, network) DO NOTHING
         RETURNING id`,
        [...key, dataset.schemaHash, dataset.description ?? null, dataset.storageRoot ?? null],
      );
      const id = inserted.length ? inserted[0].id : (await findDataset(c, dataset))!.id;
      // Storage is read inside this transaction: the server must not end it for idling meanwhile.
      await c.query("SET LOCAL idle_in_transaction_session_timeout = 0");
      await c.query("SELECT pg_advisory_xact_lock($1, $2)", [SWEEP_LOCK_CLASS, id]);
      await stillStored();
      const added: number[] = [];
      for (let i = 0; i < rows.length; i += CHUNK) {
        const chunk = rows.slice(i, i + CHUNK);
        const col = <T>(f: (r: RebuiltRow) => T) => chunk.map(f);
        const ids = await c.query<{ id: number; ledger_start: number }>(
          `INSERT INTO _meta_lineage (dataset_id, ledger_start, ledger_end, row_count, byte_size,
             checksum, storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash,
             producer_version, producer_git_sha, source_type, source_location, created_at)
           SELECT $1, r.* FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
             $13::text[], $14::text[], $15::timestamptz[]) AS r
           RETURNING id, ledger_start`,
          [
            id,
            col((r) => r.ledgerStart),
            col((r) => r.ledgerEnd),
            col((r) => r.rowCount),
            col((r) => r.byteSize),
            col((r) => r.checksum),
            col((r) => r.storagePath),
            col((r) => r.storageUri),
            col((r) => r.firstPreviousLedgerHash),
            col((r) => r.lastLedgerHash),
            col((r) => r.producerVersion),
            col((r) => r.producerGitSha),
            col((r) => r.sourceType),
            col((r) => r.sourceLocation),
            col((r) => r.createdAt?.toISOString() ?? new Date().toISOString()),
          ],
        );
        const idOf = new Map(ids.map((r) => [r.ledger_start, r.id]));
        added.push(...ids.map((r) => r.id));
        const q = { lineage: [] as number[], name: [] as string[], value: [] as number[] };
        const at: string[] = [];
        for (const r of chunk) {
          for (const [name, value] of Object.entries(r.quality ?? {})) {
            q.lineage.push(idOf.get(r.ledgerStart)!);
            q.name.push(name);
            q.value.push(value);
            at.push(r.createdAt?.toISOString() ?? new Date().toISOString());
          }
        }
        if (q.lineage.length) {
          await c.query(
            `INSERT INTO _meta_quality (lineage_id, metric_name, metric_value, created_at)
             SELECT * FROM unnest($1::int[], $2::text[], $3::float8[], $4::timestamptz[])`,
            [q.lineage, q.name, q.value, at],
          );
        }
      }
      await c.query(
        `INSERT INTO _meta_changes (dataset_id, change_type, description) VALUES ($1, $2, $3)`,
        [id, REBUILD_CHANGE, description],
      );
      // A dataset registered here has the root it was rebuilt from and the grid its rows show.
      if (inserted.length) {
        await c.query(
          `UPDATE _meta_datasets SET partition_size = _bronze_inferred_partition_size(id)
           WHERE id = $1`,
          [id],
        );
      }
      // The same files in the DuckLake, one snapshot (after the table's, for a new dataset).
      await registerTable(c, id, dataset, dataset.storageRoot ?? null, REBUILD_AUTHOR);
      await commitFiles(c, id, added, REBUILD_AUTHOR, description);
      return id;
    });
  } catch (err) {
    if (err instanceof ConstraintError && err.constraint?.startsWith("_meta_lineage")) {
      throw new LineageChangedError(
        `lineage of ${datasetLabel(dataset)} changed during the rebuild (${err.message})`,
      );
    }
    throw err;
  }
}
