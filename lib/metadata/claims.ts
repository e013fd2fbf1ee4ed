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

const CLAIM_WAIT_MS = 10_000;

type Conflict = { error: RangeClaimedError; deadBackend?: number };

/** One attempt, in one transaction: sweep dead claims, refuse an overlap, or claim. */
async function tryClaim(
  client: pg.PoolClient,
  dataset: { id: number; label: string },
  copierId: string,
  start: number,
  end: number,
): Promise<number | Conflict> {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1, 0)", [CLAIM_LOCK_CLASS]);
    await client.query(
      `DELETE FROM _meta_copier_claims c
       WHERE NOT EXISTS (
         SELECT 1 FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.granted
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid::bigint = $1 AND l.objid::bigint = c.id AND l.objsubid = 2)`,
      [CLAIM_LOCK_CLASS],
    );
    const overlapping = await client.query(
      `SELECT copier_id, ledger_start, ledger_end, host, pid, backend_pid, claimed_at
       FROM _meta_copier_claims
       WHERE dataset_id = $1 AND ledger_start <= $3 AND ledger_end >= $2 ORDER BY ledger_start LIMIT 1`,
      [dataset.id, start, end],
    );
    if (overlapping.rows.length) {
      await client.query("ROLLBACK");
      const o = overlapping.rows[0];
      const error = new RangeClaimedError(
        `range ${start}-${end} of ${dataset.label} overlaps ${o.ledger_start}-${o.ledger_end}, ` +
          `being copied by copier ${o.copier_id} (host ${o.host}, pid ${o.pid}, since ` +
          `${(o.claimed_at as Date).toISOString()}); give each copier a disjoint range`,
      );
      const dead = o.host === hostname() && o.pid !== Deno.pid && !processAlive(o.pid);
      return { error, deadBackend: dead && o.backend_pid ? o.backend_pid : undefined };
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
    // A copier killed a moment ago may still hold its session for a few hundred milliseconds;
    // one on this host whose process is gone is ended at once.
    const deadline = Date.now() + CLAIM_WAIT_MS;
    for (;;) {
      const outcome = await tryClaim(client, dataset, copierId, start, end);
      if (typeof outcome === "number") {
        id = outcome;
        break;
      }
      if (Date.now() > deadline) throw outcome.error;
      if (outcome.deadBackend !== undefined) {
        await client.query("SELECT pg_terminate_backend($1) WHERE $1 <> pg_backend_pid()", [
          outcome.deadBackend,
        ]);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
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
