import type pg from "pg";
import { hostname } from "node:os";
import { processAlive } from "../process.ts";
import { BronzeError } from "../errors.ts";
import { dbOf } from "./_db.ts";
import type { Catalog } from "./catalog.ts";

/**
 * Range claims of running copiers (migration 002). A claim lives as long as the session that holds
 * its advisory lock: the lock is released by PostgreSQL when the copier's connection dies, however
 * it dies, and the next claimer then sweeps the row.
 */

// Two-key advisory locks: (CLAIM_LOCK_CLASS, claim id) marks a live claim;
// (CLAIM_LOCK_CLASS, 0) serialises sweeping and claiming.
const CLAIM_LOCK_CLASS = 0x62726f6e; // "bron"

export class RangeClaimedError extends BronzeError {}

/**
 * In one transaction: sweep dead claims, then refuse an overlap or claim. Returns the claim id, or
 * the error naming the live copier in the way (refused at once: a live claim does not go away by
 * waiting for it).
 */
async function tryClaim(
  client: pg.PoolClient,
  dataset: { id: number; label: string },
  copierId: string,
  start: number,
  end: number,
): Promise<number | RangeClaimedError> {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1, 0)", [CLAIM_LOCK_CLASS]);
    // Dead: nobody holds its advisory lock in this database (its session ended)...
    await client.query(
      `DELETE FROM _meta_copier_claims c
       WHERE NOT EXISTS (
         SELECT 1 FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.granted
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid::bigint = $1 AND l.objid::bigint = c.id AND l.objsubid = 2)`,
      [CLAIM_LOCK_CLASS],
    );
    // ...or its process on this host is gone, though its session may linger a moment (and on the
    // embedded catalog, one backend holds every lock: they never end with a connection).
    const local = await client.query<{ id: number; pid: number }>(
      `SELECT id, pid FROM _meta_copier_claims WHERE host = $1`,
      [hostname()],
    );
    for (const c of local.rows) {
      if (c.pid === Deno.pid || processAlive(c.pid)) continue;
      await client.query("DELETE FROM _meta_copier_claims WHERE id = $1", [c.id]);
      // Its lingering session, found by the lock it holds (a pid alone may have been reused).
      await client.query(
        `SELECT pg_terminate_backend(l.pid) FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 2`,
        [CLAIM_LOCK_CLASS, c.id],
      );
    }
    const overlapping = await client.query(
      `SELECT copier_id, ledger_start, ledger_end, host, pid, backend_pid, claimed_at
       FROM _meta_copier_claims
       WHERE dataset_id = $1 AND ledger_start <= $3 AND ledger_end >= $2 ORDER BY ledger_start LIMIT 1`,
      [dataset.id, start, end],
    );
    if (overlapping.rows.length) {
      await client.query("ROLLBACK");
      const o = overlapping.rows[0];
      return new RangeClaimedError(
        `range ${start}-${end} of ${dataset.label} overlaps ${o.ledger_start}-${o.ledger_end}, ` +
          `being copied by copier ${o.copier_id} (host ${o.host}, pid ${o.pid}, since ` +
          `${(o.claimed_at as Date).toISOString()}); give each copier a disjoint range`,
      );
    }
    const { rows } = await client.query<{ id: number }>(
      `INSERT INTO _meta_copier_claims (dataset_id, copier_id, ledger_start, ledger_end, host, pid, backend_pid)
       VALUES ($1, $2, $3, $4, $5, $6, pg_backend_pid()) RETURNING id`,
      [dataset.id, copierId, start, end, hostname(), Deno.pid],
    );
    // Session-level: outlives this transaction, dies with the connection.
    await client.query("SELECT pg_advisory_lock($1, $2)", [CLAIM_LOCK_CLASS, rows[0].id]);
    await client.query("COMMIT");
    return rows[0].id;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  }
}

export interface Claim {
  readonly id: number;
  /**
   * Set when the claim's connection died: the lock is gone and another copier may now claim the
   * range. (Lineage still cannot overlap: the exclusion constraint holds whatever happens here.)
   */
  readonly lost: BronzeError | undefined;
  release(): Promise<void>;
}

export async function claimRange(
  catalog: Catalog,
  dataset: { id: number; label: string },
  copierId: string,
  start: number,
  end: number,
): Promise<Claim> {
  const db = dbOf(catalog);
  const client = await db.connect();
  let lost: BronzeError | undefined;
  // A checked-out client whose server goes away emits 'error'; unheard, it would kill the process.
  client.on("error", (err: Error) => {
    lost = new BronzeError(
      `lost the claim on ledgers ${start}-${end} of ${dataset.label}: the catalog connection failed (${err.message})`,
    );
  });
  // Notice a vanished peer (a VM that lost power) within about a minute, not the kernel's two
  // hours: until the server drops that session, its claim stands.
  await client.query(
    "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3",
  )
    .catch(() => {});
  let id: number;
  try {
    const outcome = await tryClaim(client, dataset, copierId, start, end);
    if (outcome instanceof RangeClaimedError) throw outcome;
    id = outcome;
  } catch (err) {
    client.release();
    throw db.error(err);
  }
  let released = false;
  return {
    id,
    get lost() {
      return lost;
    },
    async release() {
      if (released) return;
      released = true;
      try {
        await client.query("DELETE FROM _meta_copier_claims WHERE id = $1", [id]);
        await client.query("SELECT pg_advisory_unlock($1, $2)", [CLAIM_LOCK_CLASS, id]);
        client.release();
      } catch {
        // The connection is gone: so is the lock, and the row will be swept.
        client.release(true);
      }
    },
  };
}
