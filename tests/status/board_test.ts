/**
 * The status board (what --metrics-addr serves at / and /status.json): however many requests come
 * at once or within the refresh interval, the catalog is asked once, counted at the wire (a proxy
 * in front of PostgreSQL); the next interval asks again; before the catalog is open, and after it
 * closes, the page shows the copier alone.
 */
import assert from "node:assert/strict";
import { openCatalog } from "../../lib/metadata/catalog.ts";
import { StatusBoard } from "../../lib/status/board.ts";
import { catalogTarget, poolOf } from "../support/catalogs.ts";
import { countingProxy } from "../support/pg_proxy.ts";
import { fixedCatalog } from "../support/status_catalog.ts";
import { until } from "../support/wait.ts";

Deno.test("status board: 20 requests at once and more within the interval ask the catalog once; the next interval asks again", async () => {
  await using target = await catalogTarget("postgres");
  const setup = await target.open();
  const locker = await poolOf(setup).connect();
  await using proxy = await countingProxy(target.dsn!, "/* bronze status */");
  const catalog = await openCatalog({ dsn: proxy.dsn, stateDir: target.stateDir });
  try {
    await fixedCatalog(poolOf(setup), locker);
    let ms = 0;
    const board = new StatusBoard({ refreshSeconds: 5, now: () => ms });
    const before = JSON.parse(await board.json());
    assert.equal(before.catalog.problem, "not open yet");
    assert.deepEqual(before.datasets, []);
    assert.equal(proxy.count, 0);

    board.opened(catalog);
    const docs = await Promise.all(Array.from({ length: 20 }, () => board.json()));
    assert.equal(new Set(docs).size, 1, "every request got the same answer");
    await until(() => proxy.count >= 1, "the status query reaching the catalog");
    assert.equal(proxy.count, 1);
    assert.equal(board.queries, 1);
    ms += 4_999;
    for (let i = 0; i < 20; i++) await board.html();
    assert.equal(board.queries, 1, "still within the interval");
    ms += 1;
    await Promise.all(Array.from({ length: 20 }, () => board.doc()));
    assert.equal(board.queries, 2, "a new interval, one more query");
    await until(() => proxy.count >= 2, "the second status query reaching the catalog");
    assert.equal(proxy.count, 2);
    const doc = await board.doc();
    assert.equal(doc.datasets.length, 3);
    assert.equal(doc.refresh_seconds, 5);

    board.closing();
    const after = await board.doc();
    assert.equal(after.catalog.problem, "not open yet");
    assert.equal(proxy.count, 2);
  } finally {
    await catalog.close();
    locker.release();
    await setup.close();
  }
});

Deno.test("status board: a catalog that fails is shown as the problem, kept for the interval like an answer", async () => {
  await using target = await catalogTarget("postgres");
  const catalog = await target.open();
  let ms = 0;
  const board = new StatusBoard({ refreshSeconds: 5, now: () => ms });
  board.opened(catalog);
  await catalog.close(); // every query now fails
  const first = await board.doc();
  assert.match(
    first.catalog.problem!,
    /^catalog postgres:\/\/\S+: Cannot use a pool after calling end on the pool$/,
  );
  assert.deepEqual(first.datasets, []);
  for (let i = 0; i < 10; i++) await board.doc();
  assert.equal(board.queries, 1, "a failure is not retried by every request");
  ms += 5_000;
  await board.doc();
  assert.equal(board.queries, 2);
});
