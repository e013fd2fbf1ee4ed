/**
 * The catalog side of `bronze gc` (lib/recover/gc.ts has the argument for its safety): which stored
 * ranges lineage references, which claims of running copiers stand, and the per-dataset sweep lock
 * (claims.ts) under which gc re-checks both and deletes.
 */
import type pg from "pg";
import { hostname } from "node:os";
import { BronzeError } from "../runtime/errors.ts";
import { processAlive } from "../runtime/process.ts";
import type { Range } from "../table/grid.ts";
import { dbOf, type Row } from "./_db.ts";
import type { Catalog } from "./catalog.ts";
import { LIVE, SWEEP_LOCK_CLASS, sweepDeadClaims } from "./claims.ts";

type Query = <R extends Row = Row>(sql: string, params?: unknown[]) => Promise<R[]>;

/** A claim of a copier that may still touch storage in its range. */
export interface StandingClaim {
  copierId: string;
  host: string | null;
  pid: number | null;
  start: number;
  end: number;
}

/** What a lineage row would name for a stored object: its range and partition file key. */
export interface Reference {
  start: number;
  end: number;
  /** The Parquet file's key (for a manifest, the file beside it). */
  path: string;
}

/** The catalog's clock: retirement ages are measured on the clock that stamped retired_at. */
export async function catalogNow(catalog: Catalog): Promise<Date> {
  const [r] = await dbOf(catalog).query<{ now: Date }>(`SELECT now() AS now`);
  return r.now;
}

/**
 * Whether the dataset's lineage records files in this storage: `recorded` when it has any lineage
 * row, `here` when one of them names its file under one of `roots` (the storage's URL, in the
 * spellings a storage_uri may use), and one row's storage_uri to name where the files are instead.
 */
export async function storageAnchor(
  catalog: Catalog,
  datasetId: number,
  roots: string[],
): Promise<{ recorded: boolean; here: boolean; example: string | null }> {
  const [r] = await dbOf(catalog).query<{ recorded: boolean; here: boolean; example: string }>(
    `SELECT EXISTS (SELECT 1 FROM _meta_lineage WHERE dataset_id = $1) AS recorded,
            EXISTS (SELECT 1 FROM _meta_lineage l
                    WHERE l.dataset_id = $1
                      AND l.storage_uri IN (SELECT r || '/' || l.storage_path FROM unnest($2::text[]) r)
                   ) AS here,
            (SELECT storage_uri FROM _meta_lineage WHERE dataset_id = $1
             ORDER BY ledger_start LIMIT 1) AS example`,
    [datasetId, roots],
  );
  return { recorded: r.recorded, here: r.here, example: r.example ?? null };
}

/**
 * A lineage row `l` keeps its file: it is current, or was superseded (compacted) less than the
 * grace period ago — a reader that listed it a moment ago must still find it. `$GRACE` is the
 * grace period in seconds, on the catalog's clock.
 */
const KEEPS = (grace: string) =>
  `(l.superseded_by IS NULL OR l.superseded_at > now() - make_interval(secs => ${grace}))`;

/**
 * Of `ranges` (stored partitions of one dataset), those a current lineage row of the dataset
 * records exactly, as "start-end". One index probe each: gc's first pass over a whole dataset.
 */
export async function referencedRanges(
  catalog: Catalog,
  datasetId: number,
  ranges: Range[],
): Promise<Set<string>> {
  if (!ranges.length) return new Set();
  const rows = await dbOf(catalog).query<{ s: number; e: number }>(
    `SELECT i.s, i.e FROM unnest($2::bigint[], $3::bigint[]) AS i(s, e)
     WHERE EXISTS (SELECT 1 FROM _meta_lineage l
                   WHERE l.dataset_id = $1 AND l.ledger_start = i.s AND l.ledger_end = i.e
                     AND l.superseded_by IS NULL)`,
    [datasetId, ranges.map((r) => r.start), ranges.map((r) => r.end)],
  );
  return new Set(rows.map((r) => `${r.s}-${r.e}`));
}

/**
 * Of `ranges`, those recorded by superseded rows alone (compacted away), as "start-end" with the
 * row that replaced them and when: their files go once that is older than the grace period.
 */
export async function supersededRanges(
  catalog: Catalog,
  datasetId: number,
  ranges: Range[],
): Promise<Map<string, { by: number; at: Date }>> {
  if (!ranges.length) return new Map();
  const rows = await dbOf(catalog).query<{ s: number; e: number; by: number; at: Date }>(
    `SELECT l.ledger_start AS s, l.ledger_end AS e, l.superseded_by AS by, l.superseded_at AS at
     FROM unnest($2::bigint[], $3::bigint[]) AS i(s, e)
     JOIN _meta_lineage l ON l.dataset_id = $1 AND l.ledger_start = i.s AND l.ledger_end = i.e
     WHERE l.superseded_by IS NOT NULL`,
    [datasetId, ranges.map((r) => r.start), ranges.map((r) => r.end)],
  );
  return new Map(rows.map((r) => [`${r.s}-${r.e}`, { by: r.by, at: r.at }]));
}

/**
 * For each reference, the id of a lineage row that records its range in the dataset, or names its
 * file by storage_path in any dataset (null: none does). The second is belt and braces: every
 * writer names a partition by its range's key, but a row that names the file at all keeps it.
 */
async function lineageIds(
  query: Query,
  datasetId: number,
  refs: Reference[],
  graceSeconds: number,
): Promise<(number | null)[]> {
  if (!refs.length) return [];
  const rows = await query<{ n: number; id: number | null }>(
    `WITH i AS (
       SELECT * FROM unnest($2::bigint[], $3::bigint[], $4::text[]) WITH ORDINALITY AS i(s, e, p, n)
     ), paths AS MATERIALIZED (
       SELECT l.storage_path, min(l.id) AS id FROM _meta_lineage l
       WHERE l.storage_path = ANY($4::text[]) AND ${KEEPS("$5")} GROUP BY l.storage_path
     )
     SELECT i.n, coalesce(
       (SELECT l.id FROM _meta_lineage l
        WHERE l.dataset_id = $1 AND l.ledger_start = i.s AND l.ledger_end = i.e AND ${KEEPS("$5")}
        ORDER BY l.id LIMIT 1),
       (SELECT p.id FROM paths p WHERE p.storage_path = i.p)) AS id
     FROM i ORDER BY i.n`,
    [
      datasetId,
      refs.map((r) => r.start),
      refs.map((r) => r.end),
      refs.map((r) => r.path),
      graceSeconds,
    ],
  );
  return rows.map((r) => r.id);
}

async function claimRows(
  query: Query,
  datasetId: number,
): Promise<(StandingClaim & { live: boolean })[]> {
  const rows = await query<Row>(
    `SELECT c.copier_id, c.host, c.pid, c.ledger_start, c.ledger_end, ${LIVE} AS live
     FROM _meta_copier_claims c WHERE c.dataset_id = $1 ORDER BY c.ledger_start`,
    [datasetId],
  );
  return rows.map((r) => ({
    copierId: r.copier_id as string,
    host: r.host as string | null,
    pid: r.pid as number | null,
    start: r.ledger_start as number,
    end: r.ledger_end as number,
    live: r.live as boolean,
  }));
}

/**
 * What a dry run sees, without a lock and without writing: lineage ids of `refs`, and the claims
 * of live copiers (a claim whose session ended, or whose process on this host is gone, is dead).
 */
export async function lookWithoutLock(
  catalog: Catalog,
  datasetId: number,
  refs: Reference[],
  graceSeconds: number,
): Promise<{ lineage: (number | null)[]; claims: StandingClaim[] }> {
  const db = dbOf(catalog);
  const query: Query = (sql, params) => db.query(sql, params);
  const here = hostname();
  const claims = (await claimRows(query, datasetId)).filter((c) =>
    c.live && !(c.host === here && c.pid !== null && c.pid !== Deno.pid && !processAlive(c.pid))
  );
  return { lineage: await lineageIds(query, datasetId, refs, graceSeconds), claims };
}

/** Inside withSweepLock: the checks, and proof that the lock is still held. */
export interface SweepLocked {
  /** Lineage ids of `refs` that keep their files (null: none), as committed now. */
  lineage(refs: Reference[], graceSeconds: number): Promise<(number | null)[]>;
  /**
   * Every claim of the dataset left after the sweep of dead ones: a live copier's, or one whose
   * commit is in flight. While this transaction lasts, no claim can be added.
   */
  claims(): Promise<StandingClaim[]>;
  /**
   * One round trip on the locking connection: it answers only while the session, and so the
   * lock, lives. Throws otherwise (and gc must then delete nothing more).
   */
  stillLocked(): Promise<void>;
  /**
   * The file of the superseded partition over `range` is deleted: a `gc_deleted` quality row on
   * its lineage row says so (committed with the batch), so the status page counts only the
   * superseded files still awaiting gc.
   */
  deletedSuperseded(range: Range): Promise<void>;
}

/**
 * Runs `fn` in one transaction on a connection of its own that holds the dataset's sweep lock,
 * after sweeping its dead claims (as every claiming transaction does first). No copier can claim
 * a range of the dataset until it ends; keep it short (gc holds it for one bounded batch).
 */
export async function withSweepLock<T>(
  catalog: Catalog,
  dataset: { id: number; label: string },
  fn: (locked: SweepLocked) => Promise<T>,
): Promise<T> {
  const db = dbOf(catalog);
  const client: pg.PoolClient = await db.connect();
  const query: Query = async (sql, params) => (await client.query(sql, params)).rows;
  let failed = false;
  try {
    await client.query("BEGIN");
    // The server must not end this session for idling in its transaction while a storage delete
    // (and the store's own retries) runs: the lock would go with it while the delete may still
    // land. The batch is bounded instead (see recover/gc.ts).
    await client.query("SET LOCAL idle_in_transaction_session_timeout = 0");
    await client.query("SELECT pg_advisory_xact_lock($1, $2)", [SWEEP_LOCK_CLASS, dataset.id]);
    await sweepDeadClaims(client, catalog, dataset.id, "gc");
    const result = await fn({
      lineage: (refs, graceSeconds) => lineageIds(query, dataset.id, refs, graceSeconds),
      claims: async () => await claimRows(query, dataset.id),
      deletedSuperseded: async (range) => {
        await query(
          `INSERT INTO _meta_quality (lineage_id, metric_name, metric_value)
           SELECT l.id, 'gc_deleted', 1 FROM _meta_lineage l
           WHERE l.dataset_id = $1 AND l.ledger_start = $2 AND l.ledger_end = $3
             AND l.superseded_by IS NOT NULL`,
          [dataset.id, range.start, range.end],
        );
      },
      stillLocked: async () => {
        try {
          await client.query("SELECT 1");
        } catch (err) {
          throw new BronzeError(
            `lost the catalog connection that holds the gc lock of ${dataset.label} ` +
              `(${db.error(err).message}); stopped before deleting anything more`,
          );
        }
      },
    });
    await client.query("COMMIT");
    return result;
  } catch (err) {
    failed = true;
    await client.query("ROLLBACK").catch(() => {});
    throw db.error(err);
  } finally {
    client.release(failed);
  }
}
