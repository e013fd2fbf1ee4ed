/**
 * The seed's Writer: the dataset registry and partition lineage, raw parameterized SQL. The
 * statements of its two writes live beside it (_datasets.ts registers a dataset,
 * _commit_partition.ts is a partition's commit point); the shapes and typed errors of lineage are
 * _lineage.ts's, re-exported here for the other wings.
 */
import { ConstraintError, type Db, dbOf } from "./_db.ts";
import type { Catalog } from "./catalog.ts";
import { type DatasetIdentity, datasetLabel } from "../table/dataset.ts";
import { commitPartition } from "./_commit_partition.ts";
import { type DatasetInfo, findDataset, registerDataset } from "./_datasets.ts";
import {
  DuplicatePartitionError,
  LINEAGE_COLUMNS,
  type LineageRow,
  OverlappingPartitionError,
  type PartitionRecord,
  toLineage,
} from "./_lineage.ts";

export {
  ClaimLostError,
  DuplicatePartitionError,
  type LineageRow,
  OverlappingPartitionError,
  type PartitionRecord,
  SupersededError,
} from "./_lineage.ts";
export { type DatasetInfo, PlacementError, placementProblem } from "./_datasets.ts";

export class CatalogWriter {
  readonly #db: Db;

  constructor(readonly catalog: Catalog) {
    this.#db = dbOf(catalog);
  }

  /**
   * Registers the dataset (with its storage root, grid and DuckLake table, in one transaction) or
   * returns the id it already has, recording a root or grid it lacks and refusing one that
   * disagrees. When the Parquet schema hash changed since registration, the new hash is stored and
   * a schema_change row records the old and new.
   */
  async ensureDataset(ds: DatasetInfo, author = "bronze"): Promise<number> {
    return await this.#db.transaction((c) => registerDataset(c, ds, author), { idempotent: true });
  }

  /**
   * Writes the lineage row and its quality rows in ONE transaction: the commit point of a
   * partition. A range already recorded raises DuplicatePartitionError; an overlapping one,
   * OverlappingPartitionError. Returns the lineage id.
   */
  async recordPartition(rec: PartitionRecord): Promise<number> {
    try {
      // An answer lost with the connection (a restart, a failover): the catalog is read before
      // trying again, so the partition is committed once, never twice and never lost.
      return await this.#db.transaction((c) => commitPartition(c, rec), {
        resolve: async () => (await this.#committed(rec))?.id,
      });
    } catch (err) {
      if (err instanceof ConstraintError && err.constraint?.startsWith("_meta_lineage")) {
        const label = await this.#datasetLabelOf(rec.datasetId);
        const existing = await this.findOverlapping(rec.datasetId, rec.ledgerStart, rec.ledgerEnd);
        const same = existing.find((r) =>
          r.ledgerStart === rec.ledgerStart && r.ledgerEnd === rec.ledgerEnd
        );
        if (same) throw new DuplicatePartitionError(label, same);
        throw new OverlappingPartitionError(label, rec.ledgerStart, rec.ledgerEnd, existing);
      }
      throw err;
    }
  }

  /** The current row of exactly `rec`'s range and bytes: `rec` committed, or undefined. */
  async #committed(rec: PartitionRecord): Promise<LineageRow | undefined> {
    const row = await this.findPartition(rec.datasetId, rec.ledgerStart, rec.ledgerEnd);
    return row && row.checksum === rec.checksum && row.storagePath === rec.storagePath
      ? row
      : undefined;
  }

  /** The lineage row of exactly this range, or null. */
  async findPartition(datasetId: number, start: number, end: number): Promise<LineageRow | null> {
    const rows = await this.#db.query(
      `SELECT ${LINEAGE_COLUMNS} FROM _meta_lineage
       WHERE dataset_id = $1 AND ledger_start = $2 AND ledger_end = $3 AND superseded_by IS NULL`,
      [datasetId, start, end],
    );
    return rows.length ? toLineage(rows[0]) : null;
  }

  /** Lineage rows sharing at least one ledger with [start, end], in ledger order. */
  async findOverlapping(datasetId: number, start: number, end: number): Promise<LineageRow[]> {
    const rows = await this.#db.query(
      `SELECT ${LINEAGE_COLUMNS} FROM _meta_lineage
       WHERE dataset_id = $1 AND ledger_start <= $3 AND ledger_end >= $2
         AND superseded_by IS NULL
       ORDER BY ledger_start`,
      [datasetId, start, end],
    );
    return rows.map(toLineage);
  }

  /**
   * The current lineage of a dataset in ledger order, optionally limited to rows overlapping
   * [start, end]; with `history`, the superseded rows too (by start, then the newer first).
   */
  async listLineage(
    datasetId: number,
    range?: { start?: number; end?: number },
    { history = false } = {},
  ): Promise<LineageRow[]> {
    const rows = await this.#db.query(
      `SELECT ${LINEAGE_COLUMNS} FROM _meta_lineage
       WHERE dataset_id = $1 AND ledger_end >= $2 AND ledger_start <= $3
         AND ($4 OR superseded_by IS NULL)
       ORDER BY ledger_start, id DESC`,
      [datasetId, range?.start ?? 0, range?.end ?? Number.MAX_SAFE_INTEGER, history],
    );
    return rows.map(toLineage);
  }

  /** The id, label, storage root and grid of a registered dataset, or null. */
  async findDataset(
    ds: DatasetIdentity,
  ): Promise<
    { id: number; label: string; storageRoot: string | null; partitionSize: number | null } | null
  > {
    const row = await findDataset(this.#db, ds);
    return row
      ? {
        id: row.id,
        label: datasetLabel(ds),
        storageRoot: row.storage_root,
        partitionSize: row.partition_size,
      }
      : null;
  }

  /**
   * Records a dataset's storage root and grid where it has none yet (a dataset registered before
   * they were recorded); recorded ones never change.
   */
  async recordPlacement(datasetId: number, storageRoot: string, partitionSize?: number) {
    await this.#db.query(
      `UPDATE _meta_datasets SET storage_root = coalesce(storage_root, $2),
         partition_size = coalesce(partition_size, $3), updated_at = now()
       WHERE id = $1 AND (storage_root IS NULL OR (partition_size IS NULL AND $3::int IS NOT NULL))`,
      [datasetId, storageRoot, partitionSize ?? null],
    );
  }

  /**
   * A partition's stored file was brought back (rebuilt from the source, its bytes equal to the
   * lineage's checksum): a `correction` change and a `repaired` quality row, in one transaction.
   * The lineage row itself never changes.
   */
  async recordRepair(row: LineageRow, description: string): Promise<void> {
    await this.#db.transaction(async (c) => {
      await c.query(
        `INSERT INTO _meta_changes (dataset_id, change_type, description)
         VALUES ($1, 'correction', $2)`,
        [row.datasetId, description],
      );
      await c.query(
        `INSERT INTO _meta_quality (lineage_id, metric_name, metric_value) VALUES ($1, 'repaired', 1)`,
        [row.id],
      );
    });
  }

  /** Quality rows of one verification: verify_passed (1/0) and verify_failures (count). */
  async recordVerification(lineageId: number, failures: number): Promise<void> {
    await this.#db.query(
      `INSERT INTO _meta_quality (lineage_id, metric_name, metric_value)
       VALUES ($1, 'verify_passed', $2), ($1, 'verify_failures', $3)`,
      [lineageId, failures === 0 ? 1 : 0, failures],
    );
  }

  async close(): Promise<void> {
    await this.catalog.close();
  }

  async #datasetLabelOf(id: number): Promise<string> {
    const rows = await this.#db.query(
      `SELECT domain, dataset, version, era_id, network FROM _meta_datasets WHERE id = $1`,
      [id],
    );
    if (rows.length === 0) return `dataset ${id}`;
    const r = rows[0] as Record<string, string>;
    return datasetLabel({
      domain: r.domain,
      dataset: r.dataset,
      version: r.version,
      eraId: r.era_id,
      network: r.network,
    });
  }
}
