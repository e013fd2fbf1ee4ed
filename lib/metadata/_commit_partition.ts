/**
 * The commit point of a partition (CatalogWriter.recordPartition): the lineage row, its quality
 * rows, a change row and the DuckLake snapshot of the same file, written in one transaction, only
 * while the claim it was built under is still this copier's. Private to lib/metadata/.
 */
import type { Tx } from "./_db.ts";
import { ClaimLostError, type PartitionRecord, SupersededError } from "./_lineage.ts";
import { commitFiles } from "./ducklake.ts";

/** Writes `rec` in transaction `c`; returns the new lineage id. */
export async function commitPartition(c: Tx, rec: PartitionRecord): Promise<number> {
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
}
