/**
 * A claim session's claims taken again after its connection was lost (a catalog restart, a
 * failover, an embedded catalog's owner gone): the statements, in a claiming transaction, and the
 * line that says what was taken again. Private to lib/metadata/ (claims.ts).
 */
import type pg from "pg";
import { endClaimsAndSessions } from "./_claim_sweep.ts";
import {
  type Dataset,
  type FleetRange,
  type Held,
  insertClaims,
  refuseOverlap,
} from "./_claim_sql.ts";

/** The claims held, by the fleet they are cells of (null: range claims), for retakeClaims. */
export function byFleet(
  held: Map<Held, FleetRange | null>,
): { fleet: FleetRange | null; held: Held[] }[] {
  const groups = new Map<string, { fleet: FleetRange | null; held: Held[] }>();
  for (const [h, fleet] of held) {
    const key = fleet ? `${fleet.start}-${fleet.end}/${fleet.size}` : "range";
    if (!groups.has(key)) groups.set(key, { fleet, held: [] });
    groups.get(key)!.held.push(h);
  }
  return [...groups.values()];
}

/**
 * A session's claims taken again on its new connection, after the old one was lost (a catalog
 * restart, a failover): in a claiming transaction (sweep lock held). The old rows go, recorded as
 * died (ended by this copier), and a session of ours that lingers on them (a link cut while the
 * server still waits on it) is ended; then each claim is inserted again unless another claim
 * overlaps it (a copier took it over meanwhile) or, for a fleet's cell, it is fully committed.
 * Returns the claims taken again; the caller locks them.
 */
export async function retakeClaims(
  client: pg.PoolClient,
  dataset: Dataset,
  copierId: string,
  oldIds: number[],
  groups: { fleet: FleetRange | null; held: Held[] }[],
): Promise<Held[]> {
  await endClaimsAndSessions(client, oldIds, copierId, { skipLocked: false });
  const taken: Held[] = [];
  for (const { fleet, held } of groups) {
    if (!held.length) continue;
    const rows = await retake(client, dataset, copierId, fleet, held);
    // A range claim is the copier's whole work: taken over, it is a refusal naming who took it.
    for (const h of fleet ? [] : held) {
      if (!rows.some((r) => r.start === h.start && r.end === h.end)) {
        await refuseOverlap(
          client,
          dataset,
          h.start,
          h.end,
          "it was claimed while this copier's catalog connection was lost",
        );
      }
    }
    taken.push(...rows);
  }
  return taken;
}

/** Inserts `held` again, each unless another claim overlaps it or (a cell) it is committed. */
function retake(
  client: pg.PoolClient,
  dataset: Dataset,
  copierId: string,
  fleet: FleetRange | null,
  held: Held[],
): Promise<Held[]> {
  const arrays = fleet ? "$8::bigint[], $9::bigint[]" : "$5::bigint[], $6::bigint[]";
  const uncommitted = fleet
    ? `AND NOT EXISTS (SELECT 1 FROM _meta_islands($1, p.s, p.e) isl
                       WHERE isl.ledger_start <= p.s AND isl.ledger_end >= p.e)`
    : "";
  return insertClaims(
    client,
    dataset,
    copierId,
    `SELECT p.s, p.e FROM unnest(${arrays}) AS p(s, e)
     WHERE NOT EXISTS (SELECT 1 FROM _meta_copier_claims o
                       WHERE o.dataset_id = $1 AND o.ledger_start <= p.e AND o.ledger_end >= p.s)
       ${uncommitted}`,
    [
      ...(fleet ? [fleet.start, fleet.end, fleet.size] : []),
      held.map((h) => h.start),
      held.map((h) => h.end),
    ],
    fleet,
  );
}

/** The line a reconnect ends with: what was re-claimed, and what was left to others. */
export function reconnectedLine(before: Held[], kept: Held[]): string {
  const span = (h: Held) => `${h.start}-${h.end}`;
  const left = before.filter((h) => !kept.some((k) => k.start === h.start && k.end === h.end));
  return `reconnected; ${
    kept.length ? `re-claimed ${kept.map(span).join(", ")}` : "no claims to take again"
  }${left.length ? `; left to the copier that took it over: ${left.map(span).join(", ")}` : ""}`;
}
