/**
 * The statements of claiming (claims.ts runs them on its session's connection, inside its
 * claiming transaction): refusing a range another copier holds, or a grid another fleet cuts,
 * inserting claim rows. Private to lib/metadata/: claims.ts re-exports the shapes.
 */
import type pg from "pg";
import { hostname } from "node:os";
import { BronzeError } from "../runtime/errors.ts";

export class RangeClaimedError extends BronzeError {}

/** A claim this session holds: a range of one dataset. */
export interface Held {
  /** The claim row's id: a claim re-taken after the catalog came back has a new one. */
  id: number;
  start: number;
  end: number;
}

/** The range a fleet shares, cut on the grid of `size`. */
export interface FleetRange {
  start: number;
  end: number;
  size: number;
}

export type Dataset = { id: number; label: string };

/** Refuses [start, end] when any claim overlaps it, naming the copier in the way. */
export async function refuseOverlap(
  client: pg.PoolClient,
  dataset: Dataset,
  start: number,
  end: number,
  why = "give each copier a disjoint range",
): Promise<void> {
  const { rows } = await client.query(
    `SELECT copier_id, ledger_start, ledger_end, host, pid, claimed_at
     FROM _meta_copier_claims
     WHERE dataset_id = $1 AND ledger_start <= $3 AND ledger_end >= $2
     ORDER BY ledger_start LIMIT 1`,
    [dataset.id, start, end],
  );
  if (!rows.length) return;
  const o = rows[0];
  throw new RangeClaimedError(
    `range ${start}-${end} of ${dataset.label} overlaps ${o.ledger_start}-${o.ledger_end}, ` +
      `being copied by copier ${o.copier_id} (host ${o.host}, pid ${o.pid}, since ` +
      `${(o.claimed_at as Date).toISOString()}); ${why}`,
  );
}

/** Copiers of one fleet must cut the same grid, or their cells would overlap half-way. */
export async function refuseOtherGrid(
  client: pg.PoolClient,
  dataset: Dataset,
  fleet: FleetRange,
): Promise<void> {
  const { rows } = await client.query(
    `SELECT copier_id, host, pid, partition_size FROM _meta_copier_claims
     WHERE dataset_id = $1 AND partition_size IS NOT NULL AND partition_size <> $2
       AND ledger_start <= $4 AND ledger_end >= $3 LIMIT 1`,
    [dataset.id, fleet.size, fleet.start, fleet.end],
  );
  if (!rows.length) return;
  const o = rows[0];
  throw new RangeClaimedError(
    `copier ${o.copier_id} (host ${o.host}, pid ${o.pid}) copies ${dataset.label} in ` +
      `cells of ${o.partition_size} ledgers, this copier in cells of ${fleet.size}; ` +
      `give every copier of a fleet the same --partition-size`,
  );
}

/**
 * Up to $8 cells of the fleet's range [$5, $6] on the grid of $7 that are neither fully committed
 * nor claimed, lowest first (the `select` of insertClaims for a fleet).
 */
export const FREE_CELLS = `WITH isl AS MATERIALIZED (
    SELECT ledger_start, ledger_end FROM _meta_islands($1, $5::bigint, $6::bigint)
  ), cells AS (
    SELECT greatest(k * $7::bigint + 1, $5::bigint) AS s,
           least((k + 1) * $7::bigint, $6::bigint) AS e
    FROM generate_series(($5::bigint - 1) / $7, ($6::bigint - 1) / $7) AS k
  )
  SELECT c.s, c.e FROM cells c
  WHERE NOT EXISTS (SELECT 1 FROM isl WHERE isl.ledger_start <= c.s AND isl.ledger_end >= c.e)
    AND NOT EXISTS (SELECT 1 FROM _meta_copier_claims o
                    WHERE o.dataset_id = $1 AND o.ledger_start <= c.e AND o.ledger_end >= c.s)
  ORDER BY c.s LIMIT $8`;

/** Inserts a claim row for each (s, e) that `select` yields ($5.. are its parameters). */
export async function insertClaims(
  client: pg.PoolClient,
  dataset: Dataset,
  copierId: string,
  select: string,
  params: unknown[],
  fleet: FleetRange | null,
): Promise<Held[]> {
  const { rows } = await client.query<{ id: number; s: number; e: number }>(
    `INSERT INTO _meta_copier_claims (dataset_id, copier_id, ledger_start, ledger_end, host, pid,
       backend_pid, fleet_start, fleet_end, partition_size)
     SELECT $1, $2, p.s, p.e, $3, $4, pg_backend_pid(), ${
      fleet ? "$5::bigint, $6::bigint, $7::int" : "NULL::bigint, NULL::bigint, NULL::int"
    }
     FROM (${select}) p
     RETURNING id, ledger_start AS s, ledger_end AS e`,
    [dataset.id, copierId, hostname(), Deno.pid, ...params],
  );
  return rows.map((r: { id: number; s: number; e: number }) => ({
    id: r.id,
    start: r.s,
    end: r.e,
  }));
}
