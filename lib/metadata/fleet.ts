/**
 * What a fleet is doing, read from the catalog alone: the live claims of each dataset (claims.ts),
 * the cells of a fleet's range that are committed, claimed or left, and the recent pace. Read-only:
 * nothing here sweeps or writes, so `bronze fleet` works on a read-only standby too.
 */
import type { Range } from "../table/grid.ts";
import { dbOf } from "./_db.ts";
import type { Catalog } from "./catalog.ts";
import { type FleetRange, LIVE } from "./claims.ts";
import { type DatasetFilter, type DatasetRef, findDatasets } from "./coverage.ts";

export interface CellCounts {
  cells: number;
  committed: number;
  /** Not committed, held by a live copier. */
  claimed: number;
  /** Neither: the next claimer takes these. */
  left: number;
  /** Ledgers of the range the catalog does not hold yet. */
  ledgersLeft: number;
}

/** The grid cells of a range, each as committed, claimed by a live copier, or left. */
export async function cellCounts(
  catalog: Catalog,
  datasetId: number,
  fleet: FleetRange,
): Promise<CellCounts> {
  const [r] = await dbOf(catalog).query(
    `WITH isl AS MATERIALIZED (
       SELECT ledger_start, ledger_end FROM _meta_islands($1, $2::bigint, $3::bigint)
     ), cells AS (
       SELECT greatest(k * $4::bigint + 1, $2::bigint) AS s,
              least((k + 1) * $4::bigint, $3::bigint) AS e
       FROM generate_series(($2::bigint - 1) / $4, ($3::bigint - 1) / $4) AS k
     ), marked AS (
       SELECT EXISTS (SELECT 1 FROM isl
                      WHERE isl.ledger_start <= cells.s AND isl.ledger_end >= cells.e) AS committed,
              EXISTS (SELECT 1 FROM _meta_copier_claims c
                      WHERE c.dataset_id = $1 AND c.ledger_start <= cells.e
                        AND c.ledger_end >= cells.s AND ${LIVE}) AS claimed
       FROM cells
     )
     SELECT count(*)::int AS cells,
            (count(*) FILTER (WHERE committed))::int AS committed,
            (count(*) FILTER (WHERE NOT committed AND claimed))::int AS claimed,
            (count(*) FILTER (WHERE NOT committed AND NOT claimed))::int AS left,
            ($3::bigint - $2::bigint + 1 - coalesce((
               SELECT sum(least(ledger_end, $3::bigint) - greatest(ledger_start, $2::bigint) + 1)
               FROM isl), 0))::bigint AS ledgers_left
     FROM marked`,
    [datasetId, fleet.start, fleet.end, fleet.size],
  );
  return {
    cells: r.cells as number,
    committed: r.committed as number,
    claimed: r.claimed as number,
    left: r.left as number,
    ledgersLeft: r.ledgers_left as number,
  };
}

/**
 * The live copiers holding cells of a fleet's range that are not committed yet, each with those
 * cells, in one read: what a waiting copier waits for (a claim on a cell already committed, about
 * to be released, is not waited for). Lowest cell first.
 */
export async function holdersOfOpenCells(
  catalog: Catalog,
  datasetId: number,
  fleet: FleetRange,
): Promise<Copier[]> {
  const rows = await dbOf(catalog).query(
    `WITH isl AS MATERIALIZED (
       SELECT ledger_start, ledger_end FROM _meta_islands($1, $2::bigint, $3::bigint)
     )
     SELECT c.copier_id, c.host, c.pid, c.claimed_at, c.ledger_start, c.ledger_end
     FROM _meta_copier_claims c
     WHERE c.dataset_id = $1 AND c.ledger_start <= $3 AND c.ledger_end >= $2 AND ${LIVE}
       AND NOT EXISTS (SELECT 1 FROM isl
                       WHERE isl.ledger_start <= c.ledger_start AND isl.ledger_end >= c.ledger_end)
     ORDER BY c.ledger_start`,
    [datasetId, fleet.start, fleet.end],
  );
  return copiersOf(rows);
}

export interface Copier {
  copierId: string;
  host: string;
  pid: number;
  /** Its oldest live claim. */
  since: Date;
  /** The ranges it holds now: cells for a fleet copier, its whole range otherwise. */
  held: Range[];
}

export interface Fleet {
  dataset: DatasetRef;
  /**
   * False on a hot standby: its advisory locks are its own, not the primary's, so which claims are
   * live cannot be seen there; the claims recorded are shown, live or not.
   */
  liveness: boolean;
  /** A fleet's shared range and grid; null for the copiers of disjoint ranges. */
  range: FleetRange | null;
  copiers: Copier[];
  /** For a fleet: its cells; null for disjoint-range copiers. */
  cells: CellCounts | null;
  /** Ledgers committed in the range per second, over the last few minutes (null: none). */
  ledgersPerSecond: number | null;
}

/** Over this window the pace is measured. */
const PACE_MINUTES = 5;

/** Every dataset's live copiers, grouped into fleets (same range and grid) and lone copiers. */
export async function fleetReport(catalog: Catalog, filter: DatasetFilter): Promise<Fleet[]> {
  const db = dbOf(catalog);
  const out: Fleet[] = [];
  const [{ standby }] = await db.query<{ standby: boolean }>(
    "SELECT pg_is_in_recovery() AS standby",
  );
  const live = standby ? "true" : LIVE;
  for (const dataset of await findDatasets(catalog, filter)) {
    const rows = await db.query(
      `SELECT c.copier_id, c.host, c.pid, c.ledger_start, c.ledger_end, c.claimed_at,
              c.fleet_start, c.fleet_end, c.partition_size
       FROM _meta_copier_claims c
       WHERE c.dataset_id = $1 AND ${live}
       ORDER BY c.fleet_start NULLS LAST, c.fleet_end, c.partition_size, c.copier_id, c.ledger_start`,
      [dataset.id],
    );
    const groups = new Map<string, { range: FleetRange | null; rows: typeof rows }>();
    for (const r of rows) {
      const range = r.fleet_start === null ? null : {
        start: r.fleet_start as number,
        end: r.fleet_end as number,
        size: r.partition_size as number,
      };
      const key = range ? `${range.start}-${range.end}/${range.size}` : "lone";
      if (!groups.has(key)) groups.set(key, { range, rows: [] });
      groups.get(key)!.rows.push(r);
    }
    for (const { range, rows: claims } of groups.values()) {
      out.push({
        dataset,
        liveness: !standby,
        range,
        copiers: copiersOf(claims),
        cells: range ? await cellCounts(catalog, dataset.id, range) : null,
        ledgersPerSecond: range ? await pace(catalog, dataset.id, range) : null,
      });
    }
  }
  return out;
}

/** Claim rows (copier_id, host, pid, claimed_at, ledger_start, ledger_end) by copier. */
function copiersOf(rows: Record<string, unknown>[]): Copier[] {
  const copiers = new Map<string, Copier>();
  for (const r of rows) {
    const id = `${r.copier_id}@${r.host}/${r.pid}`;
    const c = copiers.get(id) ??
      {
        copierId: r.copier_id as string,
        host: r.host as string,
        pid: r.pid as number,
        since: r.claimed_at as Date,
        held: [],
      };
    if ((r.claimed_at as Date) < c.since) c.since = r.claimed_at as Date;
    c.held.push({ start: r.ledger_start as number, end: r.ledger_end as number });
    copiers.set(id, c);
  }
  return [...copiers.values()];
}

/** Ledgers committed in the range per second, over the last PACE_MINUTES (null: none). */
async function pace(catalog: Catalog, datasetId: number, range: Range): Promise<number | null> {
  const [r] = await dbOf(catalog).query(
    `SELECT sum(row_count)::bigint AS ledgers,
            extract(epoch FROM now() - min(created_at)) AS seconds
     FROM _meta_lineage
     WHERE dataset_id = $1 AND ledger_start >= $2 AND ledger_end <= $3
       AND created_at > now() - make_interval(mins => $4)`,
    [datasetId, range.start, range.end, PACE_MINUTES],
  );
  if (r.ledgers === null) return null;
  return (r.ledgers as number) / Math.max(Number(r.seconds), 1);
}
