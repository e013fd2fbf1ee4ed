/**
 * The claims' locks and the end of dead claims: the advisory lock classes, the session settings of
 * a claiming connection, what a live claim is, and sweeping the dead ones (every claiming
 * transaction does, and gc). Private to lib/metadata/: claims.ts re-exports what others use.
 */
import type pg from "pg";
import { hostname } from "node:os";
import { processAlive } from "../runtime/process.ts";
import type { Catalog } from "./catalog.ts";

// Two-key advisory locks: (CLAIM_LOCK_CLASS, claim id) marks a live claim; (SWEEP_LOCK_CLASS,
// dataset id) serialises sweeping and claiming within one dataset (and gc's deletions: gc.ts).
export const CLAIM_LOCK_CLASS = 0x62726f6e; // "bron"
export const SWEEP_LOCK_CLASS = CLAIM_LOCK_CLASS + 1;
// (CLAIM_LOCK_CLASS + 2, 0) orders DuckLake snapshots: taken, transaction-level, by migration 008's
// _bronze_ducklake_last_snapshot() only.

/**
 * How long a vanished peer's session may hold its claims, bounded on the server's side of the
 * claiming connection: an idle one is probed after 30 s, then every 10 s, and dropped after 3
 * unanswered probes; one with data in flight (keepalive does not run then) is dropped once data
 * has gone unacknowledged for 60 s (tcp_user_timeout), instead of after ~15 minutes of
 * retransmits. Measured from a pulled cable to the claim's release: 61-62.5 s idle, 60.7 s busy
 * (tests/metadata/claims_keepalive_test.ts).
 */
export const CLAIM_SESSION_SETTINGS =
  "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; " +
  "SET tcp_keepalives_count = 3; SET tcp_user_timeout = 60000";

/**
 * Every release of a claim is announced on this channel (NOTIFY, payload: the dataset id), so a
 * fleet copier waiting for others' cells looks again at once instead of at its next poll. A claim
 * that dies with its session is not announced: the poll finds that one.
 */
export const CHANGES_CHANNEL = "bronze_claims";

/**
 * A live claim (SQL, on a claims row aliased `c`): one whose advisory lock some session of this
 * database holds.
 */
export const LIVE = `EXISTS (
  SELECT 1 FROM pg_locks l
  WHERE l.locktype = 'advisory' AND l.granted
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND l.classid::bigint = ${CLAIM_LOCK_CLASS} AND l.objid::bigint = c.id AND l.objsubid = 2)`;

/**
 * The claims a `gone` CTE (a DELETE ... RETURNING * of claim rows) ended, recorded in
 * _meta_claims_ended (migration 009) by the same statement: `by` is the SQL of who swept them.
 */
export function endedSql(how: "released" | "died", by: string): string {
  return `INSERT INTO _meta_claims_ended (claim_id, dataset_id, copier_id, host, pid, ledger_start,
            ledger_end, fleet_start, fleet_end, partition_size, claimed_at, how, ended_by)
          SELECT id, dataset_id, copier_id, host, pid, ledger_start, ledger_end, fleet_start,
                 fleet_end, partition_size, claimed_at, '${how}', ${by}
          FROM gone`;
}

/**
 * Deletes the dataset's dead claims; to be run inside a transaction holding the dataset's sweep
 * lock (every claiming transaction does, and so does gc). A claim is dead when nobody holds its
 * advisory lock in this database (its session ended). A row locked by a commit in flight
 * (writer.ts checks its claim) is skipped, never waited for: that commit settles whose cell it is.
 * Once its row is gone, a copier that still runs (cut off from the catalog for longer than its
 * session lasted) can commit nothing under that claim. Each claim swept is recorded as died,
 * swept `by` (the claiming copier's id, or "gc").
 */
export async function sweepDeadClaims(
  client: pg.PoolClient,
  catalog: Catalog,
  datasetId: number,
  by: string,
): Promise<void> {
  await client.query(
    `WITH gone AS (
       DELETE FROM _meta_copier_claims WHERE id IN (
         SELECT c.id FROM _meta_copier_claims c WHERE c.dataset_id = $1 AND NOT ${LIVE}
         FOR UPDATE SKIP LOCKED)
       RETURNING *)
     ${endedSql("died", "$2")}`,
    [datasetId, by],
  );
  // ...or its process on this host is gone, though its session may linger a moment (and on
  // the embedded catalog, one backend holds every lock: they never end with a connection).
  await sweepLocalDead(client, catalog, datasetId, by);
}

async function sweepLocalDead(
  client: pg.PoolClient,
  catalog: Catalog,
  datasetId: number,
  by: string,
): Promise<void> {
  const { rows } = await client.query<{ id: number; pid: number }>(
    `SELECT id, pid FROM _meta_copier_claims WHERE dataset_id = $1 AND host = $2`,
    [datasetId, hostname()],
  );
  const dead = rows.filter((c: { pid: number }) => c.pid !== Deno.pid && !processAlive(c.pid))
    .map((c: { id: number }) => c.id);
  if (!dead.length) return;
  // Their lingering sessions, found by the locks they hold (a pid alone may have been reused).
  // On the embedded catalog one backend holds every lock, for whichever process took it: there
  // the lock is simply released.
  if (catalog.embedded) {
    await client.query(
      `WITH gone AS (DELETE FROM _meta_copier_claims WHERE id = ANY($2::int[]) RETURNING *),
            ended AS (${endedSql("died", "$3")})
       SELECT pg_advisory_unlock($1, id) FROM unnest($2::int[]) AS id`,
      [CLAIM_LOCK_CLASS, dead, by],
    );
    return;
  }
  await endClaimsAndSessions(client, dead, by, { skipLocked: true });
}

/**
 * Deletes the claims `ids` (recorded as died, ended `by`) and ends any other session that still
 * holds their advisory locks (a process gone, or a link cut while the server waits on it).
 * `skipLocked`: leave a row a commit in flight has locked (a sweep of others' claims); a copier
 * taking back its own claims after a reconnect waits for it instead.
 */
export async function endClaimsAndSessions(
  client: pg.PoolClient,
  ids: number[],
  by: string,
  { skipLocked }: { skipLocked: boolean },
): Promise<void> {
  const rows = skipLocked
    ? `SELECT id FROM _meta_copier_claims WHERE id = ANY($2::int[]) FOR UPDATE SKIP LOCKED`
    : `SELECT unnest($2::int[])`;
  await client.query(
    `WITH gone AS (DELETE FROM _meta_copier_claims WHERE id IN (${rows}) RETURNING *),
           ended AS (${endedSql("died", "$3")})
     SELECT pg_terminate_backend(l.pid) FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid::bigint = $1 AND l.objid::bigint = ANY($2::int[]) AND l.objsubid = 2`,
    [CLAIM_LOCK_CLASS, ids, by],
  );
}
