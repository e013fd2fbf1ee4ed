import { BronzeError, EXIT } from "../runtime/errors.ts";
import { ConstraintError, type Db, dbOf, type Row } from "./_db.ts";
import type { Catalog } from "./catalog.ts";
import { type DatasetIdentity, datasetLabel } from "../table/dataset.ts";
import { commitFiles, registerTable } from "./ducklake.ts";

/** The seed's Writer: dataset registry and partition lineage, raw parameterized SQL. */

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

export interface PartitionRecord {
  datasetId: number;
  ledgerStart: number;
  ledgerEnd: number;
  rowCount: number;
  byteSize: number;
  /** "sha256:<hex>" of the Parquet file. */
  checksum: string;
  /** Key of the Parquet file relative to the storage root. */
  storagePath: string;
  /** Full URL of the Parquet file. */
  storageUri: string;
  /** previous_ledger_hash of the partition's first ledger: links it to the partition before. */
  firstPreviousLedgerHash: string;
  /** ledger_hash of the partition's last ledger. */
  lastLedgerHash: string;
  producerVersion: string;
  producerGitSha: string | null;
  sourceType: string | null;
  sourceLocation: string | null;
  /**
   * The row's created_at, and its quality rows': the partition manifest's created_at, so a
   * catalog rebuilt from storage equals the lost one (default: the transaction's time).
   */
  createdAt?: Date;
  /** Quality metrics written in the same transaction as the lineage row. */
  quality?: Record<string, number>;
  /** A _meta_changes row (e.g. a backfill) written in the same transaction. */
  change?: { type: string; description: string };
  /**
   * The claim (ClaimSession) the partition was built under: the commit happens only if it is still
   * this copier's, so a copier cut off long enough for others to take its cell over commits nothing.
   */
  claimId?: number;
  /**
   * Compaction: the current partial rows this full-cell row replaces, marked superseded by it in
   * the same transaction (the one change a lineage row may ever receive).
   */
  supersedes?: number[];
  /** The DuckLake snapshot's author (the copier) and commit message. */
  author?: string;
  message?: string;
}

export interface LineageRow extends
  Omit<
    PartitionRecord,
    "quality" | "change" | "claimId" | "supersedes" | "createdAt" | "author" | "message"
  > {
  id: number;
  createdAt: Date;
  /** The row that replaced this one (compaction), or null for a current row. */
  supersededBy: number | null;
  supersededAt: Date | null;
}

export class DuplicatePartitionError extends BronzeError {
  constructor(readonly dataset: string, readonly existing: LineageRow) {
    super(
      `partition ${existing.ledgerStart}-${existing.ledgerEnd} of ${dataset} is already recorded ` +
        `(lineage id ${existing.id}, ${existing.checksum})`,
    );
  }
}

/** A compaction found the rows it would replace already replaced: nothing was changed. */
export class SupersededError extends BronzeError {}

/**
 * A dataset's storage root or grid given to a command disagrees with the one recorded with the
 * dataset: one dataset is never split over two roots or two grids (exit 2).
 */
export class PlacementError extends BronzeError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

/** The claim a partition was built under was swept: another copier may have taken it over. */
export class ClaimLostError extends BronzeError {}

export class OverlappingPartitionError extends BronzeError {
  constructor(
    readonly dataset: string,
    readonly start: number,
    readonly end: number,
    readonly existing: LineageRow[],
  ) {
    super(
      `partition ${start}-${end} of ${dataset} overlaps recorded partition` +
        `${existing.length === 1 ? "" : "s"} ` +
        existing.map((r) => `${r.ledgerStart}-${r.ledgerEnd} (lineage id ${r.id})`).join(", "),
    );
  }
}

const LINEAGE_COLUMNS = `id, dataset_id, ledger_start, ledger_end, row_count, byte_size, checksum,
  storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash, producer_version,
  producer_git_sha, source_type, source_location, created_at, superseded_by, superseded_at`;

function toLineage(r: Row): LineageRow {
  return {
    id: r.id as number,
    datasetId: r.dataset_id as number,
    ledgerStart: r.ledger_start as number,
    ledgerEnd: r.ledger_end as number,
    rowCount: r.row_count as number,
    byteSize: r.byte_size as number,
    checksum: r.checksum as string,
    storagePath: r.storage_path as string,
    storageUri: r.storage_uri as string,
    firstPreviousLedgerHash: r.first_previous_ledger_hash as string,
    lastLedgerHash: r.last_ledger_hash as string,
    producerVersion: r.producer_version as string,
    producerGitSha: r.producer_git_sha as string | null,
    sourceType: r.source_type as string | null,
    sourceLocation: r.source_location as string | null,
    createdAt: r.created_at as Date,
    supersededBy: (r.superseded_by as number | null) ?? null,
    supersededAt: (r.superseded_at as Date | null) ?? null,
  };
}

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
    return await this.#db.transaction(async (c) => {
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
      const rows = await c.query<{
        id: number;
        schema_hash: string | null;
        storage_root: string | null;
        partition_size: number | null;
      }>(
        `SELECT id, schema_hash, storage_root, partition_size FROM _meta_datasets
         WHERE domain = $1 AND dataset = $2 AND version = $3 AND era_id = $4 AND network = $5
         FOR UPDATE`,
        [ds.domain, ds.dataset, ds.version, ds.eraId, ds.network],
      );
      const { id, schema_hash: old, storage_root: root, partition_size: size } = rows[0];
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
    });
  }

  /**
   * Writes the lineage row and its quality rows in ONE transaction: the commit point of a
   * partition. A range already recorded raises DuplicatePartitionError; an overlapping one,
   * OverlappingPartitionError. Returns the lineage id.
   */
  async recordPartition(rec: PartitionRecord): Promise<number> {
    try {
      return await this.#db.transaction(async (c) => {
        if (rec.claimId !== undefined) {
          // Locked until the commit: a sweeper cannot take the cell over in the middle of it.
          const mine = await c.query(
            `SELECT 1 FROM _meta_copier_claims WHERE id = $1 FOR UPDATE`,
            [rec.claimId],
          );
          if (!mine.length) {
            throw new ClaimLostError(
              `partition ${rec.ledgerStart}-${rec.ledgerEnd}: this copier's claim on it is gone ` +
                `(its catalog session ended, and another copier may have taken it over); not committed`,
            );
          }
        }
        // A full cell replacing partials: they are marked first (with the id the new row will
        // have), so the no-overlap rule, which counts current rows only, sees the cell free.
        let newId: number | null = null;
        if (rec.supersedes?.length) {
          [{ id: newId }] = await c.query<{ id: number }>(
            `SELECT nextval(pg_get_serial_sequence('_meta_lineage', 'id'))::int AS id`,
          );
          const marked = await c.query(
            `UPDATE _meta_lineage SET superseded_by = $1, superseded_at = now()
             WHERE id = ANY($2::int[]) AND dataset_id = $3 AND superseded_by IS NULL
             RETURNING id`,
            [newId, rec.supersedes, rec.datasetId],
          );
          if (marked.length !== rec.supersedes.length) {
            throw new SupersededError(
              `partition ${rec.ledgerStart}-${rec.ledgerEnd}: ${
                rec.supersedes.length - marked.length
              } of the rows it would replace are no longer current (compacted meanwhile?); not committed`,
            );
          }
        }
        const rows = await c.query<{ id: number }>(
          `INSERT INTO _meta_lineage (id, dataset_id, ledger_start, ledger_end, row_count, byte_size,
             checksum, storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash,
             producer_version, producer_git_sha, source_type, source_location, created_at)
           VALUES (coalesce($15::int, nextval(pg_get_serial_sequence('_meta_lineage', 'id'))::int),
                   $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                   coalesce($16::timestamptz, now()))
           RETURNING id`,
          [
            rec.datasetId,
            rec.ledgerStart,
            rec.ledgerEnd,
            rec.rowCount,
            rec.byteSize,
            rec.checksum,
            rec.storagePath,
            rec.storageUri,
            rec.firstPreviousLedgerHash,
            rec.lastLedgerHash,
            rec.producerVersion,
            rec.producerGitSha,
            rec.sourceType,
            rec.sourceLocation,
            newId,
            rec.createdAt?.toISOString() ?? null,
          ],
        );
        const id = rows[0].id;
        const metrics = Object.entries(rec.quality ?? {});
        if (metrics.length > 0) {
          await c.query(
            `INSERT INTO _meta_quality (lineage_id, metric_name, metric_value, created_at)
             SELECT $1, m.name, m.value, coalesce($4::timestamptz, now())
             FROM unnest($2::text[], $3::float8[]) AS m(name, value)`,
            [
              id,
              metrics.map(([k]) => k),
              metrics.map(([, v]) => v),
              rec.createdAt?.toISOString() ?? null,
            ],
          );
        }
        if (rec.change) {
          await c.query(
            `INSERT INTO _meta_changes (dataset_id, change_type, description) VALUES ($1, $2, $3)`,
            [rec.datasetId, rec.change.type, rec.change.description],
          );
        }
        // The DuckLake snapshot of the same files: made as this transaction commits.
        await commitFiles(
          c,
          rec.datasetId,
          [id],
          rec.author ?? "bronze",
          rec.message ?? rec.change?.description ??
            `ledgers ${rec.ledgerStart}-${rec.ledgerEnd} committed`,
        );
        return id;
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
    const rows = await this.#db.query<
      { id: number; storage_root: string | null; partition_size: number | null }
    >(
      `SELECT id, storage_root, partition_size FROM _meta_datasets
       WHERE domain = $1 AND dataset = $2 AND version = $3 AND era_id = $4 AND network = $5`,
      [ds.domain, ds.dataset, ds.version, ds.eraId, ds.network],
    );
    return rows.length
      ? {
        id: rows[0].id,
        label: datasetLabel(ds),
        storageRoot: rows[0].storage_root,
        partitionSize: rows[0].partition_size,
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
