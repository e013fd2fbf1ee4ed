/**
 * A catalog session that goes away under a copier (lib/metadata/claims.ts, _db.ts): its backend
 * is ended by the server (pg_terminate_backend: what a restart does to every session, 57P01). The
 * claim session reconnects and takes its claims again, under new ids, its old rows recorded as
 * died; a cell another copier took meanwhile is left to it; a range another copier took is a
 * refusal. Queries and transactions of a Db with a retrier ride through the same. Without a
 * retrier (every command but copy) the loss is final, as before.
 */
import assert from "node:assert/strict";
import pg from "pg";
import { createTestDatabase, freshStateDir, poolOf } from "../support/catalogs.ts";
import { countingProxy } from "../support/pg_proxy.ts";
import { until, within } from "../support/wait.ts";
import { type Catalog, openCatalog } from "../../lib/metadata/catalog.ts";
import { ClaimSession, RangeClaimedError } from "../../lib/metadata/claims.ts";
import { migrate } from "../../lib/metadata/migrate.ts";
import { dbOf } from "../../lib/metadata/_db.ts";
import { Retrier, type RetryEvents, retryPolicy } from "../../lib/runtime/retry.ts";

const DATASET = { id: 0, label: "testnet/pre_p23/v1" };

/** Every retry and settle the catalog's retrier tells, in order. */
class Heard implements RetryEvents {
  retries = 0;
  settled: string[] = [];
  onRetry(): void {
    this.retries++;
  }
  onSettled(e: { outcome: string }): void {
    this.settled.push(e.outcome);
  }
}

async function withCatalogs(
  fn: (c: { mine: Catalog; other: Catalog; heard: Heard; admin: pg.Client }) => Promise<void>,
  { retry = true } = {},
): Promise<void> {
  const db = await createTestDatabase();
  const stateDir = await freshStateDir();
  const heard = new Heard();
  const mine = await openCatalog({
    dsn: db.dsn,
    stateDir,
    retry: retry ? new Retrier(retryPolicy(20), heard) : undefined,
  });
  const other = await openCatalog({ dsn: db.dsn, stateDir });
  const admin = new pg.Client({ connectionString: db.dsn });
  await admin.connect();
  try {
    await migrate(mine);
    const [{ id }] = await dbOf(mine).query<{ id: number }>(
      `INSERT INTO _meta_datasets (domain, dataset, version, era_id, network)
       VALUES ('stellar', 'ledgers_lcm_raw', 'v1', 'pre_p23', 'testnet') RETURNING id`,
    );
    DATASET.id = id;
    await fn({ mine, other, heard, admin });
  } finally {
    await admin.end();
    await mine.close();
    await other.close();
    await db.drop();
    await Deno.remove(stateDir, { recursive: true });
  }
}

/** Ends every session of copier `copierId`'s claims (as a restart ends all of them). */
async function endSessionOf(admin: pg.Client, copierId: string): Promise<void> {
  const { rows } = await admin.query(
    `SELECT pg_terminate_backend(pid) AS ended
     FROM (SELECT DISTINCT backend_pid AS pid FROM _meta_copier_claims WHERE copier_id = $1) c`,
    [copierId],
  );
  assert.ok(
    rows.length > 0 && rows.every((r: { ended: boolean }) => r.ended),
    "no claiming session to end",
  );
}

Deno.test("a range claim whose session was ended is taken again, under a new id, on a new connection", async () => {
  await withCatalogs(async ({ mine, heard, admin }) => {
    const said: string[] = [];
    const claims = await ClaimSession.open(mine, DATASET, "copier-a", {
      say: (l) => said.push(l),
    });
    try {
      const claim = await claims.claimRange(1, 500);
      const before = claim.id;
      await endSessionOf(admin, "copier-a");
      await until(() => claims.lost !== undefined, "the claim session noticing its end");
      await claims.ensure();
      assert.equal(claims.lost, undefined);
      assert.notEqual(claim.id, before, "the claim has the new row's id");
      assert.deepEqual(claims.held.map((h) => [h.id, h.start, h.end]), [[claim.id, 1, 500]]);
      const { rows } = await admin.query(
        `SELECT c.id FROM _meta_copier_claims c WHERE EXISTS (SELECT 1 FROM pg_locks l
           WHERE l.locktype = 'advisory' AND l.granted AND l.objid::bigint = c.id)`,
      );
      assert.deepEqual(rows.map((r: { id: number }) => r.id), [claim.id], "one claim row, locked");
      const ended = await admin.query(
        `SELECT claim_id, how, ended_by FROM _meta_claims_ended ORDER BY claim_id`,
      );
      assert.deepEqual(ended.rows, [{ claim_id: before, how: "died", ended_by: "copier-a" }]);
      assert.deepEqual(said, ["reconnected; re-claimed 1-500"]);
      assert.ok(heard.retries >= 1, "the loss was counted as a catalog retry");
      assert.deepEqual(heard.settled, ["ok"]);
    } finally {
      await claims.close();
    }
  });
});

Deno.test("fleet cells are taken again after a reconnect, except one another copier took meanwhile", async () => {
  await withCatalogs(async ({ mine, other, admin }) => {
    const fleet = { start: 1, end: 100, size: 20 };
    const said: string[] = [];
    const a = await ClaimSession.open(mine, DATASET, "copier-a", { say: (l) => said.push(l) });
    const b = await ClaimSession.open(other, DATASET, "copier-b");
    try {
      const cells = await a.claimCells(fleet, 2);
      assert.deepEqual(cells.map((c) => c.start), [1, 21]);
      await endSessionOf(admin, "copier-a");
      await until(() => a.lost !== undefined, "copier A's claim session noticing its end");
      // Copier B sweeps A's dead claims and takes the first free cell: A's first.
      const [taken] = await b.claimCells(fleet, 1);
      assert.equal(taken.start, 1);
      // A comes back: cell 21-40 is its again; 1-20 is B's.
      const oldSecond = cells[1].id;
      await a.ensure();
      assert.deepEqual(a.held.map((h) => h.start), [21]);
      assert.notEqual(cells[1].id, oldSecond);
      assert.deepEqual(said, [
        "reconnected; re-claimed 21-40; left to the copier that took it over: 1-20",
      ]);
      const { rows } = await poolOf(other).query(
        `SELECT copier_id, ledger_start FROM _meta_copier_claims ORDER BY ledger_start`,
      );
      assert.deepEqual(rows, [
        { copier_id: "copier-b", ledger_start: 1 },
        { copier_id: "copier-a", ledger_start: 21 },
      ]);
      // A's next claim goes on from there.
      const [next] = await a.claimCells(fleet, 1);
      assert.equal(next.start, 41);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

Deno.test("a range another copier claimed while the session was away is refused, naming it", async () => {
  await withCatalogs(async ({ mine, other, admin }) => {
    const a = await ClaimSession.open(mine, DATASET, "copier-a");
    const b = await ClaimSession.open(other, DATASET, "copier-b");
    try {
      await a.claimRange(1, 500);
      await endSessionOf(admin, "copier-a");
      await until(() => a.lost !== undefined, "copier A's claim session noticing its end");
      await b.claimRange(400, 600);
      await assert.rejects(
        a.ensure(),
        (err: Error) =>
          err instanceof RangeClaimedError &&
          /range 1-500 .* overlaps 400-600, being copied by copier copier-b .*claimed while this copier's catalog connection was lost/
            .test(err.message),
      );
      // For good: a later call says the same.
      await assert.rejects(a.ensure(), RangeClaimedError);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

Deno.test("without a retrier a lost claim session stays lost (other commands than copy)", async () => {
  await withCatalogs(async ({ mine, admin }) => {
    const a = await ClaimSession.open(mine, DATASET, "copier-a");
    try {
      await a.claimRange(1, 500);
      await endSessionOf(admin, "copier-a");
      await until(() => a.lost !== undefined, "copier A's claim session noticing its end");
      await assert.rejects(
        a.ensure(),
        /lost the claims of copier copier-a .*administrator command/,
      );
    } finally {
      await a.close();
    }
  }, { retry: false });
});

Deno.test("a Db with a retrier runs a query again on a new connection when its session was ended", async () => {
  await withCatalogs(async ({ mine, heard, admin }) => {
    const db = dbOf(mine);
    // The query waits for a lock the test holds; its session is ended while it waits, and only
    // then is the lock let go, so the query cannot finish first.
    const LOCK = 20_201;
    await admin.query(`SELECT pg_advisory_lock($1)`, [LOCK]);
    const running = db.query<{ n: number }>(
      `SELECT pg_advisory_xact_lock_shared(${LOCK}), 7 AS n`,
    );
    await until(async () => {
      const { rows } = await admin.query(
        `SELECT pid FROM pg_stat_activity
          WHERE state = 'active' AND query LIKE 'SELECT pg_advisory_xact_lock_shared(${LOCK})%'`,
      );
      if (!rows.length) return false;
      await admin.query(`SELECT pg_terminate_backend($1)`, [rows[0].pid]);
      return true;
    }, "the query's session found");
    await admin.query(`SELECT pg_advisory_unlock($1)`, [LOCK]);
    assert.deepEqual((await running).map((r) => r.n), [7]);
    assert.ok(heard.retries >= 1);
    assert.deepEqual(heard.settled, ["ok"]);
  });
});

Deno.test("a session closed while it reconnects stops reconnecting, leaves no connection, and its catalog closes", async () => {
  const db = await createTestDatabase();
  const stateDir = await freshStateDir();
  await using link = await countingProxy(db.dsn, "/* unused */");
  const heard = new Heard();
  const catalog = await openCatalog({
    dsn: link.dsn,
    stateDir,
    retry: new Retrier(retryPolicy(300), heard),
  });
  try {
    await migrate(catalog);
    const [{ id }] = await dbOf(catalog).query<{ id: number }>(
      `INSERT INTO _meta_datasets (domain, dataset, version, era_id, network)
       VALUES ('stellar', 'ledgers_lcm_raw', 'v1', 'pre_p23', 'testnet') RETURNING id`,
    );
    const claims = await ClaimSession.open(catalog, { id, label: "testnet" }, "copier-a");
    await claims.claimRange(1, 100);
    link.cut();
    await until(() => heard.retries >= 2, "the session retrying to reconnect");
    await within(claims.close(), "closing the session while it reconnects");
    assert.deepEqual(heard.settled, ["failed"], "the burst ended with the session");
    link.restore();
    await within(catalog.close(), "the catalog closing: no connection left checked out");
  } finally {
    await catalog.close().catch(() => {});
    await db.drop();
    await Deno.remove(stateDir, { recursive: true });
  }
});
