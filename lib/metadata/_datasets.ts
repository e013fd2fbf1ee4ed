/**
 * The dataset registry: registering a dataset with its storage root, grid and DuckLake table, and
 * the rule that a dataset keeps the storage and grid it was registered with. Private to
 * lib/metadata/ (writer.ts re-exports what others use).
 */
import { BronzeError, EXIT } from "../runtime/errors.ts";
import { type DatasetIdentity, datasetLabel } from "../table/dataset.ts";
import type { Tx } from "./_db.ts";
import { registerTable } from "./ducklake.ts";

/** A dataset as the copy registers it: its identity, its Parquet schema hash and description. */
export interface DatasetInfo extends DatasetIdentity {
  schemaHash: string;
  description?: string;
  /**
   * Where its partitions are stored (a canonical root: lib/blob/url.ts storageRootOf) and its grid:
   * recorded when the dataset is registered, or when an older one has none yet. A value that
   * disagrees with the recorded one is refused (PlacementError).
   */
  storageRoot?: string;
  partitionSize?: number;
}

/**
 * A dataset's storage root or grid given to a command disagrees with the one recorded with the
 * dataset: one dataset is never split over two roots or two grids (exit 2).
 */
export class PlacementError extends BronzeError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

/** The registration columns every reader of a dataset's row needs. */
export interface DatasetRow {
  id: number;
  schema_hash: string | null;
  storage_root: string | null;
  partition_size: number | null;
}

/** The dataset's row, or undefined; `forUpdate` locks it for the rest of the transaction. */
export async function findDataset(
  q: Tx,
  ds: DatasetIdentity,
  { forUpdate = false } = {},
): Promise<DatasetRow | undefined> {
  const rows = await q.query<DatasetRow & Record<string, unknown>>(
    `SELECT id, schema_hash, storage_root, partition_size FROM _meta_datasets
     WHERE domain = $1 AND dataset = $2 AND version = $3 AND era_id = $4 AND network = $5
     ${forUpdate ? "FOR UPDATE" : ""}`,
    [ds.domain, ds.dataset, ds.version, ds.eraId, ds.network],
  );
  return rows[0];
}

/**
 * Registers the dataset in transaction `c` (see CatalogWriter.ensureDataset) and returns its id.
 * Run again once it committed, it changes nothing: the dataset is found as registered.
 */
export async function registerDataset(c: Tx, ds: DatasetInfo, author: string): Promise<number> {
  const inserted = await c.query<{ id: number }>(
    `INSERT INTO _meta_datasets (domain, dataset, version, era_id, network, schema_hash,
       description, storage_root, partition_size)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (domain, dataset, version, era_id, network) DO NOTHING
     RETURNING id`,
    [
      ds.domain,
      ds.dataset,
      ds.version,
      ds.eraId,
      ds.network,
      ds.schemaHash,
      ds.description ?? null,
      ds.storageRoot ?? null,
      ds.partitionSize ?? null,
    ],
  );
  if (inserted.length === 1) {
    await registerTable(c, inserted[0].id, ds, ds.storageRoot ?? null, author);
    return inserted[0].id;
  }
  const { id, schema_hash: old, storage_root: root, partition_size: size } = (await findDataset(
    c,
    ds,
    { forUpdate: true },
  ))!; // the INSERT found it there, and registrations are never deleted
  const problem = placementProblem(datasetLabel(ds), { root, size }, ds);
  if (problem) throw new PlacementError(problem);
  if ((root === null && ds.storageRoot) || (size === null && ds.partitionSize)) {
    await c.query(
      `UPDATE _meta_datasets SET storage_root = coalesce(storage_root, $2),
         partition_size = coalesce(partition_size, $3), updated_at = now() WHERE id = $1`,
      [id, ds.storageRoot ?? null, ds.partitionSize ?? null],
    );
  }
  if (old !== ds.schemaHash) {
    await c.query(
      `UPDATE _meta_datasets SET schema_hash = $2, updated_at = now() WHERE id = $1`,
      [id, ds.schemaHash],
    );
    await c.query(
      `INSERT INTO _meta_changes (dataset_id, change_type, description, old_version, new_version)
       VALUES ($1, 'schema_change', $2, $3, $4)`,
      [
        id,
        `Parquet schema hash of ${datasetLabel(ds)} changed`,
        old?.slice(0, 32) ?? null,
        ds.schemaHash.slice(0, 32),
      ],
    );
  }
  // A dataset without a live DuckLake table (un-retired by hand) gets one, with its files.
  const [{ live }] = await c.query<{ live: number | null }>(
    `SELECT _bronze_ducklake_table_of($1) AS live`,
    [id],
  );
  if (live === null && await registerTable(c, id, ds, root ?? ds.storageRoot ?? null, author)) {
    await c.query(`SELECT _bronze_ducklake_reconcile($1, $2, $3)`, [
      id,
      author,
      "the dataset's current lineage, on its new table",
    ]);
  }
  return id;
}

/**
 * What is wrong with giving a dataset `given` storage root and grid when it has `recorded` ones
 * (null: nothing recorded yet, anything goes), or null.
 */
export function placementProblem(
  label: string,
  recorded: { root: string | null; size: number | null },
  given: { storageRoot?: string; partitionSize?: number },
): string | null {
  const problems = [];
  if (recorded.root !== null && given.storageRoot && given.storageRoot !== recorded.root) {
    problems.push(`its storage is ${recorded.root}, not ${given.storageRoot}`);
  }
  if (recorded.size !== null && given.partitionSize && given.partitionSize !== recorded.size) {
    problems.push(`its partition size is ${recorded.size}, not ${given.partitionSize}`);
  }
  return problems.length
    ? `${label}: ${problems.join("; ")} (a dataset keeps the storage and grid it was ` +
      `registered with: drop the flag, or give the dataset's)`
    : null;
}
