/**
 * Catalogs for the status tests, written with SQL of their own (as a copier's history would leave
 * them): a fixed one holding every state the page shows, and a big one of a 60-million-ledger
 * backfill's 6,000 cells.
 */
import type pg from "pg";
import { CLAIM_LOCK_CLASS } from "../../lib/metadata/claims.ts";

/** A lineage row of `dataset` over [s, e], committed at `at`, superseded by `by` (optional). */
function row(dataset: number, s: number, e: number, at: string, by: string | null = null) {
  return `(${dataset}, ${s}, ${e}, ${e - s + 1}, ${(e - s + 1) * 800}, 'sha256:${s}-${e}', ` +
    `'range=${s}-${e}/part-${s}-${e}.parquet', 'file:///lake/range=${s}-${e}/part-${s}-${e}.parquet', ` +
    `'p', 'h', 'v1', TIMESTAMPTZ '${at}', ${by ?? "NULL"}, ${by ? `TIMESTAMPTZ '${at}'` : "NULL"})`;
}

const COLUMNS =
  `(dataset_id, ledger_start, ledger_end, row_count, byte_size, checksum, storage_path,
  storage_uri, first_previous_ledger_hash, last_ledger_hash, producer_version, created_at,
  superseded_by, superseded_at)`;

/**
 * The fixed catalog, on the grid of 100 (dataset 1, testnet/default/v1, a fleet on 1-3000):
 * - cells 1-10 committed; cell 11 (1001-1100) two partials awaiting compaction; cell 12
 *   compacted, its two partials superseded; cells 13-15 a gap; cell 16 holds 1501-1530 only;
 *   cells 17-20 committed; the rest of the fleet's range, 2001-3000, not yet;
 * - live claims: vm-1 on 2001-2100 and 2101-2200, vm-2 on 2201-2300 (held by `locker`'s session);
 *   a dead one nobody swept: vm-3 on 2301-2400;
 * - ended claims an hour ago: vm-4 died on 1201-1300 (swept by vm-1, nobody took it over since),
 *   vm-5 died on 1601-1700 (swept by vm-2, who then claimed and released it: it is committed);
 * dataset 2 (pubnet/default/v2) retired with 1-200 committed; dataset 3 (futurenet) empty.
 * Everything was committed long ago: no copier has a pace. `locker` must stay open while the
 * claims should be live.
 */
export async function fixedCatalog(pool: pg.Pool, locker: pg.PoolClient): Promise<void> {
  const old = "2026-01-02 03:04:05+00";
  await pool.query(
    `INSERT INTO _meta_datasets (id, domain, dataset, version, era_id, network, retired_at, retired_reason)
     VALUES (1, 'bronze', 'ledgers_lcm_raw', 'v1', 'default', 'testnet', NULL, NULL),
            (2, 'bronze', 'ledgers_lcm_raw', 'v2', 'default', 'pubnet', TIMESTAMPTZ '${old}', 'superseded by v3'),
            (3, 'bronze', 'ledgers_lcm_raw', 'v1', 'default', 'futurenet', NULL, NULL)`,
  );
  const rows: string[] = [];
  for (let k = 0; k < 10; k++) rows.push(row(1, k * 100 + 1, k * 100 + 100, old));
  rows.push(row(1, 1001, 1050, old), row(1, 1051, 1100, old));
  rows.push(row(1, 1501, 1530, old));
  for (let k = 16; k < 20; k++) rows.push(row(1, k * 100 + 1, k * 100 + 100, old));
  rows.push(row(2, 1, 100, old), row(2, 101, 200, old));
  await pool.query(`INSERT INTO _meta_lineage ${COLUMNS} VALUES ${rows.join(",\n")}`);
  // Cell 12 compacted: its full row first, then the partials it superseded.
  const { rows: [full] } = await pool.query<{ id: number }>(
    `INSERT INTO _meta_lineage ${COLUMNS} VALUES ${row(1, 1101, 1200, old)} RETURNING id`,
  );
  await pool.query(
    `INSERT INTO _meta_lineage ${COLUMNS} VALUES ${row(1, 1101, 1150, old, String(full.id))},
                                               ${row(1, 1151, 1200, old, String(full.id))}`,
  );
  const { rows: claims } = await pool.query<{ id: number; copier_id: string }>(
    `INSERT INTO _meta_copier_claims (dataset_id, copier_id, ledger_start, ledger_end, host, pid,
       claimed_at, fleet_start, fleet_end, partition_size)
     VALUES (1, 'vm-1', 2001, 2100, 'host-1', 101, TIMESTAMPTZ '${old}', 1, 3000, 100),
            (1, 'vm-1', 2101, 2200, 'host-1', 101, TIMESTAMPTZ '${old}', 1, 3000, 100),
            (1, 'vm-2', 2201, 2300, 'host-2', 202, TIMESTAMPTZ '${old}', 1, 3000, 100),
            (1, 'vm-3', 2301, 2400, 'host-3', 303, TIMESTAMPTZ '${old}', 1, 3000, 100)
     RETURNING id, copier_id`,
  );
  // The live ones' locks, as their copiers' sessions would hold them.
  for (const c of claims.filter((c: { copier_id: string }) => c.copier_id !== "vm-3")) {
    await locker.query("SELECT pg_advisory_lock($1, $2)", [CLAIM_LOCK_CLASS, c.id]);
  }
  await pool.query(
    `INSERT INTO _meta_claims_ended (claim_id, dataset_id, copier_id, host, pid, ledger_start,
       ledger_end, fleet_start, fleet_end, partition_size, claimed_at, ended_at, how, ended_by)
     VALUES (90, 1, 'vm-4', 'host-4', 404, 1201, 1300, 1, 3000, 100, now() - interval '2 hours',
             now() - interval '1 hour', 'died', 'vm-1'),
            (91, 1, 'vm-5', 'host-5', 505, 1601, 1700, 1, 3000, 100, now() - interval '2 hours',
             now() - interval '1 hour', 'died', 'vm-2'),
            (92, 1, 'vm-2', 'host-2', 202, 1601, 1700, 1, 3000, 100, now() - interval '1 hour',
             now() - interval '59 minutes', 'released', NULL)`,
  );
}

/**
 * A 60-million-ledger backfill's catalog: 6,000 cells of 10,000 (dataset 1, pubnet), all
 * committed but a gap every 97 cells and two partials every 89, one cell compacted every 101
 * (two superseded partials each), and a fleet of 8 copiers holding 16 cells at the end, their
 * claims live on `locker`'s session. Committed over the last 6000 seconds, one cell a second.
 */
export async function bigCatalog(pool: pg.Pool, locker: pg.PoolClient): Promise<void> {
  await pool.query(
    `INSERT INTO _meta_datasets (id, domain, dataset, version, era_id, network)
     VALUES (1, 'bronze', 'ledgers_lcm_raw', 'v1', 'default', 'pubnet')`,
  );
  const values = `1, k * 10000 + 1, (k + 1) * 10000, 10000, 6000000, 'sha256:x', 'p' || k,
    'file:///lake/p' || k, 'p', 'h', 'v1', now() - make_interval(secs => 6000 - k)`;
  await pool.query(
    `INSERT INTO _meta_lineage (dataset_id, ledger_start, ledger_end, row_count, byte_size,
       checksum, storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash,
       producer_version, created_at)
     SELECT ${values} FROM generate_series(0, 5983) k WHERE k % 97 <> 5 AND k % 89 <> 7`,
  );
  await pool.query(
    `INSERT INTO _meta_lineage (dataset_id, ledger_start, ledger_end, row_count, byte_size,
       checksum, storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash,
       producer_version, created_at)
     SELECT 1, k * 10000 + 1 + h * 5000, k * 10000 + 5000 + h * 5000, 5000, 3000000, 'sha256:y',
            'q' || k || '-' || h, 'file:///lake/q', 'p', 'h', 'v1', now()
     FROM generate_series(0, 5983) k, generate_series(0, 1) h WHERE k % 89 = 7 AND k % 97 <> 5`,
  );
  await pool.query(
    `INSERT INTO _meta_lineage (dataset_id, ledger_start, ledger_end, row_count, byte_size,
       checksum, storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash,
       producer_version, created_at, superseded_by, superseded_at)
     SELECT 1, l.ledger_start + h * 5000, l.ledger_start + 4999 + h * 5000, 5000, 3000000,
            'sha256:z', l.storage_path || '-' || h, 'file:///lake/z', 'p', 'h', 'v1', now(),
            l.id, now()
     FROM _meta_lineage l, generate_series(0, 1) h
     WHERE l.superseded_by IS NULL AND l.row_count = 10000 AND ((l.ledger_start - 1) / 10000) % 101 = 3`,
  );
  const { rows } = await pool.query<{ id: number }>(
    `INSERT INTO _meta_copier_claims (dataset_id, copier_id, ledger_start, ledger_end, host, pid,
       claimed_at, fleet_start, fleet_end, partition_size)
     SELECT 1, 'vm-' || (k % 8), k * 10000 + 1, (k + 1) * 10000, 'host-' || (k % 8), 1000 + k % 8,
            now() - interval '10 minutes', 1, 60000000, 10000
     FROM generate_series(5984, 5999) k
     RETURNING id`,
  );
  await locker.query(
    "SELECT pg_advisory_lock($1, id) FROM unnest($2::int[]) AS id",
    [CLAIM_LOCK_CLASS, rows.map((r: { id: number }) => r.id)],
  );
}
