import type pg from "pg";
import { hostname } from "node:os";
import { processAlive } from "../runtime/process.ts";
import { BronzeError } from "../runtime/errors.ts";
import { sleep } from "../runtime/time.ts";
import { dbOf } from "./_db.ts";
import type { Catalog } from "./catalog.ts";

/**
 * Claims of running copiers (migrations 002 and 005): a whole range for a copier of disjoint
 * ranges, one grid cell at a time for a fleet copier. A claim is a row plus a session advisory
 * lock keyed on the row's id, both taken on the copier's own connection (its ClaimSession): the
 * lock goes when that session ends, however it ends (process killed, VM gone, network cut, once
 * TCP keepalives give up on the peer), and the next claimer then sweeps the row. So a crashed
 * copier's claim never blocks for long, and no claim needs a heartbeat. Every claim that ends,
 * released or swept, is recorded in _meta_claims_ended (migration 009) by the statement that
 * ends it: who held what, from when to when, and who swept a dead copier's cells.
 */

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
 * The copier's own side: TCP keepalive barely helps a client (over 11 minutes to notice), so a
 * heartbeat on the claiming connection notices a dead link within every + deadline, well before
 * the server lets the claims go, and the copier stops building what it may no longer commit.
 */
const HEARTBEAT = { everyMs: 5_000, deadlineMs: 15_000 };

/**
 * Every release of a claim is announced on this channel (NOTIFY, payload: the dataset id), so a
 * fleet copier waiting for others' cells looks again at once instead of at its next poll. A claim
 * that dies with its session is not announced: the poll finds that one.
 */
const CHANGES_CHANNEL = "bronze_claims";

export class RangeClaimedError extends BronzeError {}

/** A claim this session holds: a range of one dataset. */
export interface Held {
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

type Dataset = { id: number; label: string };

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
 * One copier's claims, on a dedicated connection of its own. Every method is one transaction of a
 * fixed number of statements: claiming costs the same round trips whatever the fleet's size.
 */
export class ClaimSession {
  #lost: BronzeError | undefined;
  #closed = false;
  readonly #held = new Map<number, Held>();
  // One connection, one statement stream: a release must never land inside a claiming
  // transaction (it would hold a row the sweeper waits for, while waiting for the sweeper).
  #queue: Promise<unknown> = Promise.resolve();
  /** Releases announced on this dataset since watch() (and whoever waits for the next one). */
  #changes = 0;
  #changed = new Set<() => void>();

  private constructor(
    private readonly client: pg.PoolClient,
    private readonly catalog: Catalog,
    private readonly dataset: Dataset,
    private readonly copierId: string,
  ) {
    // A checked-out client whose server goes away emits 'error'; unheard, it would kill the
    // process. The claims are then as good as gone: whoever sweeps next takes them over.
    client.on("error", (err: Error) => {
      this.#lost ??= new BronzeError(
        `lost the claims of copier ${copierId} on ${dataset.label}: the catalog connection failed (${err.message})`,
      );
    });
  }

  static async open(catalog: Catalog, dataset: Dataset, copierId: string): Promise<ClaimSession> {
    const client = await dbOf(catalog).connect();
    // Until the server drops this session, its claims stand: notice a vanished peer (a VM that
    // lost power, a cut cable) within about a minute, not the kernel's two hours.
    if (!catalog.embedded) await client.query(CLAIM_SESSION_SETTINGS);
    const session = new ClaimSession(client, catalog, dataset, copierId);
    session.#heartbeat = setInterval(() => session.#beat(), HEARTBEAT.everyMs);
    return session;
  }

  #heartbeat: ReturnType<typeof setInterval> | undefined;

  /** One heartbeat: an answer within the deadline, or the claims are given up as lost. */
  #beat(): void {
    if (this.#lost || this.#closed) return;
    this.#serially(async () => {
      const deadline = setTimeout(() => {
        this.#lost ??= new BronzeError(
          `lost the claims of copier ${this.copierId} on ${this.dataset.label}: the catalog did ` +
            `not answer within ${HEARTBEAT.deadlineMs / 1000}s`,
        );
        // A dead link would otherwise hold the connection for ~15 minutes of retransmits.
        (this.client as unknown as { connection?: { stream?: { destroy(): void } } })
          .connection?.stream?.destroy();
      }, HEARTBEAT.deadlineMs);
      try {
        await this.client.query("SELECT 1");
      } finally {
        clearTimeout(deadline);
      }
    }).catch(() => {});
  }

  /**
   * From now on, hear every claim of this dataset released by any copier (changedSince). Only on
   * PostgreSQL: the embedded catalog has no fleets.
   */
  async watch(): Promise<void> {
    if (this.catalog.embedded) return;
    this.client.on("notification", (n: { channel: string; payload?: string }) => {
      if (n.channel !== CHANGES_CHANNEL || n.payload !== String(this.dataset.id)) return;
      this.#changes++;
      for (const wake of this.#changed) wake();
    });
    await this.#serially(() => this.client.query(`LISTEN ${CHANGES_CHANNEL}`));
  }

  /** A count of the releases heard so far: read it before looking, then wait with it. */
  get changes(): number {
    return this.#changes;
  }

  /**
   * Waits until a release is heard after `seen` (at once if one already was), `ms` pass, or
   * `signal` aborts.
   */
  async changedSince(seen: number, ms: number, signal: AbortSignal): Promise<void> {
    if (this.#changes !== seen) return;
    const heard = new AbortController();
    const wake = () => heard.abort();
    this.#changed.add(wake);
    try {
      await sleep(ms, AbortSignal.any([signal, heard.signal]));
    } finally {
      this.#changed.delete(wake);
    }
  }

  /** Set when the session's connection failed: its claims may already be someone else's. */
  get lost(): BronzeError | undefined {
    return this.#lost;
  }

  /** The claims held now, in ledger order. */
  get held(): Held[] {
    return [...this.#held.values()].sort((a, b) => a.start - b.start);
  }

  /**
   * A whole range, for a copier of disjoint ranges: refused at once, naming the live copier in
   * the way, when any live claim overlaps it (a live claim does not go away by waiting for it).
   */
  async claimRange(start: number, end: number): Promise<Held> {
    const [held] = await this.#claim(async () => {
      const { rows } = await this.client.query(
        `SELECT copier_id, ledger_start, ledger_end, host, pid, claimed_at
         FROM _meta_copier_claims
         WHERE dataset_id = $1 AND ledger_start <= $3 AND ledger_end >= $2
         ORDER BY ledger_start LIMIT 1`,
        [this.dataset.id, start, end],
      );
      if (rows.length) {
        const o = rows[0];
        throw new RangeClaimedError(
          `range ${start}-${end} of ${this.dataset.label} overlaps ${o.ledger_start}-${o.ledger_end}, ` +
            `being copied by copier ${o.copier_id} (host ${o.host}, pid ${o.pid}, since ` +
            `${(o.claimed_at as Date).toISOString()}); give each copier a disjoint range`,
        );
      }
      return await this.#insert(`SELECT $5::bigint AS s, $6::bigint AS e`, [start, end], null);
    });
    return held;
  }

  /**
   * Up to `n` cells of a fleet's range that are neither fully committed nor claimed by a live
   * copier, lowest first; [] when none is free. A cell is claimed whole (at the range's edges, the
   * part of it inside the range), even when part of it is committed: the claimer copies the rest.
   */
  async claimCells(fleet: FleetRange, n: number): Promise<Held[]> {
    return await this.#claim(async () => {
      // Copiers of one fleet must cut the same grid, or their cells would overlap half-way.
      const { rows: other } = await this.client.query(
        `SELECT copier_id, host, pid, partition_size FROM _meta_copier_claims
         WHERE dataset_id = $1 AND partition_size IS NOT NULL AND partition_size <> $2
           AND ledger_start <= $4 AND ledger_end >= $3 LIMIT 1`,
        [this.dataset.id, fleet.size, fleet.start, fleet.end],
      );
      if (other.length) {
        const o = other[0];
        throw new RangeClaimedError(
          `copier ${o.copier_id} (host ${o.host}, pid ${o.pid}) copies ${this.dataset.label} in ` +
            `cells of ${o.partition_size} ledgers, this copier in cells of ${fleet.size}; ` +
            `give every copier of a fleet the same --partition-size`,
        );
      }
      return await this.#insert(
        `WITH isl AS MATERIALIZED (
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
         ORDER BY c.s LIMIT $8`,
        [fleet.start, fleet.end, fleet.size, n],
        fleet,
      );
    });
  }

  /** Ends one claim: its row and its lock. */
  release(id: number): Promise<void> {
    return this.#serially(async () => {
      if (!this.#held.delete(id) || this.#lost) return;
      await this.client.query(
        `WITH gone AS (DELETE FROM _meta_copier_claims WHERE id = $2 RETURNING *),
              ended AS (${endedSql("released", "NULL")})
         SELECT pg_advisory_unlock($1, $2), pg_notify($3, $4)`,
        [CLAIM_LOCK_CLASS, id, CHANGES_CHANNEL, String(this.dataset.id)],
      );
    });
  }

  #serially<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  /** Ends every claim and gives the connection back (or drops it, if it failed). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    try {
      if (this.#lost) throw this.#lost;
      for (const id of [...this.#held.keys()]) await this.release(id);
      await this.#queue;
      this.client.release();
    } catch {
      // The connection is gone: so are the locks, and the rows will be swept.
      this.client.release(true);
    }
  }

  /**
   * One claiming transaction: under the dataset's sweep lock, sweep the dead claims, then `pick`
   * decides (and may refuse). Statements: BEGIN, lock, sweep, local claims, pick (1-2), the
   * session locks, COMMIT.
   */
  #claim(pick: () => Promise<Held[]>): Promise<Held[]> {
    return this.#serially(() => this.#claimNow(pick));
  }

  async #claimNow(pick: () => Promise<Held[]>): Promise<Held[]> {
    if (this.#lost) throw this.#lost;
    const db = dbOf(this.catalog);
    try {
      await this.client.query("BEGIN");
      await this.client.query("SELECT pg_advisory_xact_lock($1, $2)", [
        SWEEP_LOCK_CLASS,
        this.dataset.id,
      ]);
      await sweepDeadClaims(this.client, this.catalog, this.dataset.id, this.copierId);
      const held = await pick();
      await this.client.query(
        `SELECT pg_advisory_lock($1, id) FROM unnest($2::int[]) AS id`,
        [CLAIM_LOCK_CLASS, held.map((h) => h.id)],
      );
      await this.client.query("COMMIT");
      for (const h of held) this.#held.set(h.id, h);
      return held;
    } catch (err) {
      await this.client.query("ROLLBACK").catch(() => {});
      throw db.error(err);
    }
  }

  /** Inserts a claim row for each (s, e) that `select` yields ($5.. are its parameters). */
  async #insert(select: string, params: unknown[], fleet: FleetRange | null): Promise<Held[]> {
    const { rows } = await this.client.query<{ id: number; s: number; e: number }>(
      `INSERT INTO _meta_copier_claims (dataset_id, copier_id, ledger_start, ledger_end, host, pid,
         backend_pid, fleet_start, fleet_end, partition_size)
       SELECT $1, $2, p.s, p.e, $3, $4, pg_backend_pid(), ${
        fleet ? "$5::bigint, $6::bigint, $7::int" : "NULL::bigint, NULL::bigint, NULL::int"
      }
       FROM (${select}) p
       RETURNING id, ledger_start AS s, ledger_end AS e`,
      [this.dataset.id, this.copierId, hostname(), Deno.pid, ...params],
    );
    return rows.map((r: { id: number; s: number; e: number }) => ({
      id: r.id,
      start: r.s,
      end: r.e,
    }));
  }
}

/**
 * The claims a `gone` CTE (a DELETE ... RETURNING * of claim rows) ended, recorded in
 * _meta_claims_ended (migration 009) by the same statement: `by` is the SQL of who swept them.
 */
function endedSql(how: "released" | "died", by: string): string {
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
  await client.query(
    `WITH gone AS (DELETE FROM _meta_copier_claims WHERE id IN (
       SELECT id FROM _meta_copier_claims WHERE id = ANY($2::int[]) FOR UPDATE SKIP LOCKED)
       RETURNING *),
           ended AS (${endedSql("died", "$3")})
     SELECT pg_terminate_backend(l.pid) FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid::bigint = $1 AND l.objid::bigint = ANY($2::int[]) AND l.objsubid = 2`,
    [CLAIM_LOCK_CLASS, dead, by],
  );
}
