/**
 * The catalog's status (metadata/status.ts), by its one statement against real catalogs: the
 * strip's states cell by cell on a fixed catalog, the bands of a 60-million-ledger backfill, and
 * the claims that end (released, or swept as dead by whom) recorded in _meta_claims_ended.
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { catalogStatus } from "../../lib/metadata/status.ts";
import { STATUS_SQL } from "../../lib/metadata/status_sql.ts";
import { statusDoc } from "../../lib/status/doc.ts";
import { statusPage } from "../../lib/status/page.ts";
import { ClaimSession } from "../../lib/metadata/claims.ts";
import { dbOf } from "../../lib/metadata/_db.ts";
import { catalogTarget, poolOf, withCatalog } from "../support/catalogs.ts";
import { bigCatalog, fixedCatalog } from "../support/status_catalog.ts";

Deno.test("status (postgres): every state of the strip, cell by cell, on a fixed catalog; claims live and dead; deaths and takeovers", async () => {
  await using target = await catalogTarget("postgres");
  const catalog = await target.open();
  const locker = await poolOf(catalog).connect();
  try {
    await fixedCatalog(poolOf(catalog), locker);
    const s = await catalogStatus(catalog, {
      maxBands: 240,
      paceSeconds: 300,
      historySeconds: 86_400,
    });
    assert.equal(s.standby, false);
    assert.deepEqual(s.datasets.map((d) => d.label), [
      "bronze.ledgers_lcm_raw (futurenet/default/v1)",
      "bronze.ledgers_lcm_raw (pubnet/default/v2)",
      "bronze.ledgers_lcm_raw (testnet/default/v1)",
    ]);
    const [empty, retired, d] = s.datasets;
    assert.equal(empty.extent, null);
    assert.deepEqual(empty.bands, []);
    assert.equal(retired.retiredReason, "superseded by v3");
    assert.deepEqual(retired.extent, { start: 1, end: 200 });
    assert.equal(d.size, 100);
    assert.deepEqual(d.extent, { start: 1, end: 3000 });
    assert.equal(d.cells, 30);
    // 30 cells, 30 bands: one cell each, in the fixture's states.
    const states = d.bands.map((b) =>
      ["committed", "partials", "claimed", "gap"].find((k) => b[k as "gap"] === 1)
    );
    assert.deepEqual(states, [
      ...Array(10).fill("committed"),
      "partials",
      "committed", // compacted
      "gap", // vm-4 died here; nobody took it over
      "gap",
      "gap",
      "gap", // 1501-1530 held
      ...Array(4).fill("committed"),
      "claimed",
      "claimed",
      "claimed",
      "gap", // vm-3's claim: its session is gone
      ...Array(6).fill("gap"),
    ]);
    assert.equal(d.bands[11].superseded, 2);
    assert.equal(d.bands[15].heldIncomplete, 30);
    assert.deepEqual(d.bands.slice(20, 23).map((b) => b.claimers), [
      [{ copierId: "vm-1", cells: 1 }],
      [{ copierId: "vm-1", cells: 1 }],
      [{ copierId: "vm-2", cells: 1 }],
    ]);
    assert.equal(d.superseded, 2);
    assert.equal(d.partitions, 18);
    assert.equal(d.ledgersHeld, 1630);
    assert.deepEqual(
      d.claims.map((c) => [c.copierId, c.start, c.live]),
      [["vm-1", 2001, true], ["vm-1", 2101, true], ["vm-2", 2201, true], ["vm-3", 2301, false]],
    );
    assert.deepEqual(d.fleets.map((f) => [f.start, f.end, f.size, f.cells, f.ledgersHeld]), [
      [1, 3000, 100, 30, 1630],
    ]);
    assert.deepEqual(
      d.dead.map((x) => [x.copierId, x.start, x.sweptBy, x.takenOverBy, x.ledgersHeld]),
      [
        ["vm-3", 2301, null, null, 0],
        ["vm-4", 1201, "vm-1", null, 0],
        ["vm-5", 1601, "vm-2", "vm-2", 100],
      ].sort((
        a,
        b,
      ) => (a[0] === "vm-3" ? -1 : b[0] === "vm-3" ? 1 : (a[1] as number) - (b[1] as number))),
    );
    // Live copiers with no commit in the window: a pace of nothing.
    assert.deepEqual(d.pace.map((p) => [p.copierId, p.ledgers]), [["vm-1", 0], ["vm-2", 0]]);
  } finally {
    locker.release();
    await catalog.close();
  }
});

Deno.test("status (postgres): a 60-million-ledger backfill's 6,000 cells in 240 bands; its cost, one statement", async () => {
  await using target = await catalogTarget("postgres");
  const catalog = await target.open();
  const locker = await poolOf(catalog).connect();
  try {
    await bigCatalog(poolOf(catalog), locker);
    await poolOf(catalog).query("ANALYZE");
    const s = await catalogStatus(catalog);
    const [d] = s.datasets;
    assert.deepEqual(d.extent, { start: 1, end: 60_000_000 });
    assert.equal(d.cells, 6000);
    assert.equal(d.bands.length, 240);
    assert.ok(d.bands.every((b) => b.cells === 25));
    const sum = (k: "committed" | "partials" | "claimed" | "gap" | "superseded") =>
      d.bands.reduce((n, b) => n + b[k], 0);
    // Cells 0-5983: a gap where k % 97 = 5, two partials where k % 89 = 7; 5984-5999 claimed by
    // the fleet's 8 copiers.
    let gaps = 0, partials = 0;
    for (let k = 0; k < 5984; k++) {
      if (k % 97 === 5) gaps++;
      else if (k % 89 === 7) partials++;
    }
    assert.equal(sum("gap"), gaps);
    assert.equal(sum("partials"), partials);
    assert.equal(sum("claimed"), 16);
    assert.equal(sum("committed"), 6000 - gaps - partials - 16);
    let compacted = 0;
    for (let k = 0; k < 5984; k++) if (k % 101 === 3 && k % 97 !== 5 && k % 89 !== 7) compacted++;
    assert.equal(sum("superseded"), 2 * compacted);
    assert.equal(d.superseded, 2 * compacted);
    assert.deepEqual(d.bands.at(-1)!.claimers.map((c) => c.copierId).sort(), [
      "vm-0",
      "vm-1",
      "vm-2",
      "vm-3",
      "vm-4",
      "vm-5",
      "vm-6",
      "vm-7",
    ]);
    // What one refresh costs the catalog: one statement; its plan's time and its answer's size.
    const db = dbOf(catalog);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const [plan] = await db.query<{ "QUERY PLAN": { "Execution Time": number }[] }>(
        `EXPLAIN (ANALYZE, FORMAT JSON) ${STATUS_SQL}`,
        [240, 300, 86_400, 0xffffffff],
      );
      times.push(plan["QUERY PLAN"][0]["Execution Time"]);
    }
    const rows = await db.query(STATUS_SQL, [240, 300, 86_400, 0xffffffff]);
    const { rows: [{ n }] } = await poolOf(catalog).query<{ n: number }>(
      "SELECT count(*)::int AS n FROM _meta_lineage",
    );
    // And what the page and its data weigh, as sent and compressed (Deno.serve gzips them).
    const doc = statusDoc({ catalogLabel: catalog.label, status: s, refreshSeconds: 5 });
    const sizes = [statusPage(doc, "live"), JSON.stringify(doc)].map((t) =>
      `${(t.length / 1000).toFixed(1)} KB (${(gzipSync(t).length / 1000).toFixed(1)} KB gzip)`
    );
    console.log(`the page is ${sizes[0]}, /status.json ${sizes[1]}`);
    console.log(
      `6,000 cells (${n} lineage rows, 16 live claims): the status statement runs in ` +
        `${times.map((t) => t.toFixed(1)).join(", ")} ms; its answer is ${
          JSON.stringify(rows).length
        } bytes`,
    );
  } finally {
    locker.release();
    await catalog.close();
  }
});

Deno.test("claims that end are recorded: released by their copier, or swept as dead by the next claimer", async () => {
  await using target = await catalogTarget("postgres");
  const catalog = await target.open();
  try {
    const pool = poolOf(catalog);
    await pool.query(
      `INSERT INTO _meta_datasets (id, domain, dataset, version, era_id, network)
       VALUES (1, 'bronze', 'ledgers_lcm_raw', 'v1', 'default', 'testnet')`,
    );
    const dataset = { id: 1, label: "testnet" };
    const fleet = { start: 1, end: 400, size: 100 };
    const a = await ClaimSession.open(catalog, dataset, "copier-a");
    const [first, second] = await a.claimCells(fleet, 2);
    await a.release(first.id);
    // B's session ends without releasing (its process died): its claim stays until swept.
    const b = await ClaimSession.open(catalog, dataset, "copier-b");
    const [held] = await b.claimCells(fleet, 1);
    await pool.query(
      "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND objsubid = 2",
      [held.id],
    );
    // Its connection is gone: closing the session can release nothing (no retrier: no reconnect).
    await b.close();
    const c = await ClaimSession.open(catalog, dataset, "copier-c");
    const [taken] = await c.claimCells(fleet, 1);
    assert.equal(taken.start, held.start, "C takes the dead copier's cell");
    await c.close();
    await a.close();
    const { rows } = await pool.query(
      `SELECT copier_id, ledger_start, how, ended_by FROM _meta_claims_ended ORDER BY id`,
    );
    assert.deepEqual(rows, [
      { copier_id: "copier-a", ledger_start: first.start, how: "released", ended_by: null },
      {
        copier_id: "copier-b",
        ledger_start: held.start,
        how: "died",
        ended_by: "copier-c",
      },
      { copier_id: "copier-c", ledger_start: taken.start, how: "released", ended_by: null },
      {
        copier_id: "copier-a",
        ledger_start: second.start,
        how: "released",
        ended_by: null,
      },
    ]);
    const s = await catalogStatus(catalog);
    assert.deepEqual(
      s.datasets[0].dead.map((x) => [x.copierId, x.start, x.sweptBy, x.takenOverBy]),
      [["copier-b", held.start, "copier-c", "copier-c"]],
    );
  } finally {
    await catalog.close();
  }
});

Deno.test("status (embedded): the same statement runs on PGlite", async () => {
  await withCatalog("embedded", async (catalog) => {
    const locker = await poolOf(catalog).connect();
    try {
      await fixedCatalog(poolOf(catalog), locker);
      const s = await catalogStatus(catalog);
      const d = s.datasets.find((x) => x.network === "testnet")!;
      assert.equal(d.cells, 30);
      assert.equal(d.bands.reduce((n, b) => n + b.committed, 0), 15);
      assert.equal(d.bands.reduce((n, b) => n + b.claimed, 0), 3);
    } finally {
      locker.release();
    }
  });
});
