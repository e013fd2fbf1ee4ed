import type pg from "pg";
import { BronzeError } from "../runtime/errors.ts";
import { sleep } from "../runtime/time.ts";
import { transientReason } from "../runtime/transient.ts";
import { dbOf } from "./_db.ts";
import {
  CHANGES_CHANNEL,
  CLAIM_LOCK_CLASS,
  CLAIM_SESSION_SETTINGS,
  endedSql,
  SWEEP_LOCK_CLASS,
  sweepDeadClaims,
} from "./_claim_sweep.ts";
import { HEARTBEAT, heartbeat } from "./_claim_link.ts";
import { Releases } from "./_claim_releases.ts";
import {
  type Dataset,
  type FleetRange,
  FREE_CELLS,
  type Held,
  insertClaims,
  refuseOtherGrid,
  refuseOverlap,
} from "./_claim_sql.ts";
import { byFleet, reconnectedLine, retakeClaims } from "./_claim_retake.ts";
import type { Catalog } from "./catalog.ts";

export {
  CLAIM_LOCK_CLASS,
  CLAIM_SESSION_SETTINGS,
  LIVE,
  SWEEP_LOCK_CLASS,
  sweepDeadClaims,
} from "./_claim_sweep.ts";
export { type FleetRange, type Held, RangeClaimedError } from "./_claim_sql.ts";

/**
 * Claims of running copiers (migrations 002 and 005): a whole range for a copier of disjoint
 * ranges, one grid cell at a time for a fleet copier. A claim is a row plus a session advisory
 * lock keyed on the row's id, both taken on the copier's own connection (its ClaimSession): the
 * lock goes when that session ends, however it ends (process killed, VM gone, network cut, once
 * TCP keepalives give up on the peer), and the next claimer then sweeps the row. So a crashed
 * copier's claim never blocks for long, and no claim needs a heartbeat. Every claim that ends,
 * released or swept, is recorded in _meta_claims_ended (migration 009) by the statement that
 * ends it: who held what, from when to when, and who swept a dead copier's cells.
 *
 * A session whose connection is lost while the copier runs (the catalog restarted, failed over)
 * takes its claims again on a new one (ensure()), when its catalog has a retrier: reconnecting
 * with backoff under --catalog-retry-for, then re-claiming each range or cell no other copier
 * took meanwhile (those are left to it). Without one (other commands), the loss is final.
 */

/**
 * One copier's claims, on a dedicated connection of its own. Every method is one transaction of a
 * fixed number of statements: claiming costs the same round trips whatever the fleet's size.
 */
export class ClaimSession {
  #client: pg.PoolClient;
  /** The Db's generation the client was connected at (an embedded owner's renewal moves it). */
  #generation: number;
  #lost: BronzeError | undefined;
  #closed = false;
  /** Each claim held, with the fleet it is a cell of (null: a range claim). */
  readonly #held = new Map<Held, FleetRange | null>();
  /** Claims released while the connection was lost: their rows go when it is back. */
  readonly #orphans: number[] = [];
  // One connection, one statement stream: a release must never land inside a claiming
  // transaction (it would hold a row the sweeper waits for, while waiting for the sweeper).
  #queue: Promise<unknown> = Promise.resolve();
  /** Releases announced on this dataset since watch() (and whoever waits for the next one). */
  #watching = false;
  readonly #releases = new Releases();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /** Set once reconnecting gave up (the bound ran out, a range was taken over): for good. */
  #final: unknown;
  readonly #closing = new AbortController();
  readonly #dropped = new WeakSet<pg.PoolClient>();

  private constructor(
    client: pg.PoolClient,
    private readonly catalog: Catalog,
    private readonly dataset: Dataset,
    private readonly copierId: string,
    private readonly say: (line: string) => void,
  ) {
    this.#client = client;
    this.#generation = dbOf(catalog).generation;
    this.#adopt(client);
  }

  /** A session on a connection of its own; `say` hears what a reconnect re-claimed. */
  static async open(
    catalog: Catalog,
    dataset: Dataset,
    copierId: string,
    { say = () => {} }: { say?: (line: string) => void } = {},
  ): Promise<ClaimSession> {
    const client = await dbOf(catalog).connect();
    // Until the server drops this session, its claims stand: notice a vanished peer (a VM that
    // lost power, a cut cable) within about a minute, not the kernel's two hours.
    if (!catalog.embedded) await client.query(CLAIM_SESSION_SETTINGS);
    const session = new ClaimSession(client, catalog, dataset, copierId, say);
    session.#heartbeat = setInterval(() => session.#beat(), HEARTBEAT.everyMs);
    return session;
  }

  /** Listens on `client`: its failure, and the releases announced once watching. */
  #adopt(client: pg.PoolClient): void {
    // A checked-out client whose server goes away emits 'error'; unheard, it would kill the
    // process. The claims are then as good as gone: whoever sweeps next takes them over.
    client.on("error", (err: Error) => {
      if (client === this.#client) {
        this.#lose(`the catalog connection failed (${err.message})`, err);
      }
    });
    client.on("notification", (n: { channel: string; payload?: string }) => {
      if (n.channel === CHANGES_CHANNEL && n.payload === String(this.dataset.id)) {
        this.#releases.heard();
      }
    });
  }

  #lose(why: string, cause: unknown): void {
    if (this.#lost) return;
    this.#lost = new BronzeError(
      `lost the claims of copier ${this.copierId} on ${this.dataset.label}: ${why}`,
    );
    (this.#lost as { cause?: unknown }).cause = cause;
    // Reconnected at once, in the same burst as the run's other failed calls: one outage, one line.
    if (this.#retrying && !this.#closed) queueMicrotask(() => void this.ensure().catch(() => {}));
  }

  /** One heartbeat: an answer within the deadline, or the claims are given up as lost. */
  #beat(): void {
    if (this.#closed) return;
    // Lost: taken again now (when the catalog can be reconnected to), not at the next commit, so
    // that no other copier starts on a range this one still copies.
    if (this.#lost) return void this.ensure().catch(() => {});
    this.#serially(() => heartbeat(this.#client, (why, cause) => this.#lose(why, cause)))
      .catch(() => {});
  }

  /**
   * From now on, hear every claim of this dataset released by any copier (changedSince). Only on
   * PostgreSQL: the embedded catalog has no fleets.
   */
  async watch(): Promise<void> {
    if (this.catalog.embedded) return;
    this.#watching = true;
    await this.#serially(() => this.#client.query(`LISTEN ${CHANGES_CHANNEL}`));
  }

  /** A count of the releases heard so far: read it before looking, then wait with it. */
  get changes(): number {
    return this.#releases.count;
  }

  /**
   * Waits until a release is heard after `seen` (at once if one already was), `ms` pass, or
   * `signal` aborts.
   */
  changedSince(seen: number, ms: number, signal: AbortSignal): Promise<void> {
    return this.#releases.since(seen, ms, signal);
  }

  /** Set when the session's connection failed: its claims may already be someone else's. */
  get lost(): BronzeError | undefined {
    return this.#lost;
  }

  /**
   * Resolves once the session holds its claims on a live connection: at once when nothing was
   * lost; after reconnecting and re-claiming when the connection was (a cell another copier took
   * meanwhile is dropped: a commit under it finds its claim gone). Throws the loss when the
   * catalog has no retrier, a range claim was taken over, or the bound ran out (exit 75).
   */
  async ensure(): Promise<void> {
    if (!this.#lost) return;
    await this.#serially(() => this.#recover());
  }

  /** The claims held now, in ledger order. */
  get held(): Held[] {
    return [...this.#held.keys()].sort((a, b) => a.start - b.start);
  }

  /**
   * A whole range, for a copier of disjoint ranges: refused at once, naming the live copier in
   * the way, when any live claim overlaps it (a live claim does not go away by waiting for it).
   */
  async claimRange(start: number, end: number): Promise<Held> {
    const [held] = await this.#claim(async (client) => {
      await refuseOverlap(client, this.dataset, start, end);
      return await insertClaims(
        client,
        this.dataset,
        this.copierId,
        `SELECT $5::bigint AS s, $6::bigint AS e`,
        [start, end],
        null,
      );
    }, null);
    return held;
  }

  /**
   * Up to `n` cells of a fleet's range that are neither fully committed nor claimed by a live
   * copier, lowest first; [] when none is free. A cell is claimed whole (at the range's edges, the
   * part of it inside the range), even when part of it is committed: the claimer copies the rest.
   */
  async claimCells(fleet: FleetRange, n: number): Promise<Held[]> {
    return await this.#claim(async (client) => {
      await refuseOtherGrid(client, this.dataset, fleet);
      return await insertClaims(
        client,
        this.dataset,
        this.copierId,
        FREE_CELLS,
        [fleet.start, fleet.end, fleet.size, n],
        fleet,
      );
    }, fleet);
  }

  /** Ends one claim: its row and its lock (its current id: a re-taken claim's is new). */
  release(id: number): Promise<void> {
    return this.#serially(async () => {
      const held = [...this.#held.keys()].find((h) => h.id === id);
      if (!held) return;
      this.#held.delete(held);
      if (this.#lost) {
        this.#orphans.push(id);
        return;
      }
      try {
        await this.#client.query(
          `WITH gone AS (DELETE FROM _meta_copier_claims WHERE id = $2 RETURNING *),
                ended AS (${endedSql("released", "NULL")})
           SELECT pg_advisory_unlock($1, $2), pg_notify($3, $4)`,
          [CLAIM_LOCK_CLASS, id, CHANGES_CHANNEL, String(this.dataset.id)],
        );
      } catch (err) {
        // Lost on the way: its row goes with the session's next reconnect (or a sweep).
        this.#orphans.push(id);
        if (!(this.#retrying && transientReason(err))) throw dbOf(this.catalog).error(err);
        this.#lose(`the catalog connection failed (${(err as Error).message})`, err);
      }
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
    this.#closing.abort(new BronzeError("the claim session was closed"));
    clearInterval(this.#heartbeat);
    try {
      if (this.#lost) throw this.#lost;
      for (const h of this.held) await this.release(h.id);
      await this.#queue;
      this.#client.release();
    } catch {
      // The connection is gone: so are the locks, and the rows will be swept.
      this.#drop(this.#client);
    }
  }

  /**
   * One claiming transaction: under the dataset's sweep lock, sweep the dead claims, then `pick`
   * decides (and may refuse). Statements: BEGIN, lock, sweep, local claims, pick (1-2), the
   * session locks, COMMIT. A connection lost on the way is reconnected to and the claim tried
   * again (with a retrier).
   */
  #claim(
    pick: (client: pg.PoolClient) => Promise<Held[]>,
    fleet: FleetRange | null,
  ): Promise<Held[]> {
    return this.#serially(async () => {
      for (;;) {
        await this.#recover();
        try {
          const held = await this.#claimNow(pick);
          for (const h of held) this.#held.set(h, fleet);
          return held;
        } catch (err) {
          if (!(this.#retrying && transientReason(err))) throw dbOf(this.catalog).error(err);
          this.#lose(`the catalog connection failed (${(err as Error).message})`, err);
        }
      }
    });
  }

  async #claimNow(pick: (client: pg.PoolClient) => Promise<Held[]>): Promise<Held[]> {
    const client = this.#client;
    try {
      await client.query("BEGIN");
      await client.query("SELECT pg_advisory_xact_lock($1, $2)", [
        SWEEP_LOCK_CLASS,
        this.dataset.id,
      ]);
      await sweepDeadClaims(client, this.catalog, this.dataset.id, this.copierId);
      const held = await pick(client);
      await client.query(
        `SELECT pg_advisory_lock($1, id) FROM unnest($2::int[]) AS id`,
        [CLAIM_LOCK_CLASS, held.map((h) => h.id)],
      );
      await client.query("COMMIT");
      return held;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    }
  }

  /** Gives a failed connection back to be destroyed (once: a second release throws). */
  #drop(client: pg.PoolClient): void {
    if (this.#dropped.has(client)) return;
    this.#dropped.add(client);
    client.release(true);
  }

  /** Whether a lost connection is reconnected to: a catalog with a retrier (copy's). */
  get #retrying(): boolean {
    return dbOf(this.catalog).retry !== undefined;
  }

  /**
   * When the connection was lost: a new one, with backoff under the catalog's bound (the loss
   * counts as the first failure), and the claims taken again on it. In the session's queue.
   */
  async #recover(): Promise<void> {
    if (this.#final !== undefined) throw this.#final;
    if (!this.#lost) return;
    if (this.#closed || !this.#retrying) throw this.#lost;
    const db = dbOf(this.catalog);
    // Closing the session ends a reconnect under way (and its burst), leaving no connection.
    const signal = this.#closing.signal;
    const tries = db.retry!.begin("catalog", { what: `catalog ${db.label}`, signal });
    this.#drop(this.#client);
    let err: unknown = this.#lost;
    let generation = this.#generation;
    for (;;) {
      try {
        await sleep(tries.failed(err), signal);
        if (signal.aborted) tries.failed(signal.reason);
      } catch (final) {
        this.#final = final;
        throw final;
      }
      // An embedded catalog's owner that went away: its next one (maybe this process).
      await db.renew(err, generation);
      generation = db.generation;
      let client: pg.PoolClient | undefined;
      try {
        client = await db.connect({ once: true });
        signal.throwIfAborted();
        if (!this.catalog.embedded) await client.query(CLAIM_SESSION_SETTINGS);
        this.#client = client;
        this.#generation = generation;
        this.#adopt(client);
        if (this.#watching) await client.query(`LISTEN ${CHANGES_CHANNEL}`);
        const before = this.held;
        const kept = await this.#retake();
        tries.succeeded();
        this.#lost = undefined;
        this.say(reconnectedLine(before, kept));
        return;
      } catch (e) {
        if (client) this.#drop(client);
        err = e instanceof BronzeError || signal.aborted ? e : db.named(e);
      }
    }
  }

  /**
   * Re-claims what this session held: each claim keeps its Held object, with the new row's id; a
   * cell another copier took meanwhile is dropped; a range claim taken over is refused.
   */
  async #retake(): Promise<Held[]> {
    const oldIds = [...this.#orphans, ...[...this.#held.keys()].map((h) => h.id)];
    const taken = await this.#claimNow((c) =>
      retakeClaims(c, this.dataset, this.copierId, oldIds, byFleet(this.#held))
    );
    this.#orphans.length = 0;
    for (const h of [...this.#held.keys()]) {
      const row = taken.find((r) => r.start === h.start && r.end === h.end);
      if (row) h.id = row.id;
      else this.#held.delete(h);
    }
    return taken;
  }
}
