/**
 * The status page in a real browser (Debian's headless Chromium, over the DevTools protocol): the
 * page of a running fleet copy and of a follower, as a person sees it, refreshed in place as the
 * catalog changes; and what its refresh costs the catalog with 20 pages open. Screenshots go to
 * .test-output/status/.
 */
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { type CatalogTarget, catalogTarget } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv } from "../support/copy.ts";
import { Copier, growingLake, range } from "../support/growing.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { Browser, browserMissing, type Page } from "../support/browser.ts";
import { countingProxy } from "../support/pg_proxy.ts";
import { EXIT_MS } from "../support/wait.ts";

const missing = browserMissing();
const OUT = new URL("../../.test-output/status/", import.meta.url).pathname;
const SIZE = 20;

async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(OUT, { recursive: true });
  const path = join(OUT, name);
  const png = await page.screenshot(path);
  assert.ok(png.length > 1000, `a screenshot at ${path}`);
  console.log(`screenshot: ${path} (${png.length} bytes)`);
}

/** What a person sees of one dataset's strip: each segment's state, cells and hover text. */
interface Seen {
  state: string;
  cells: number;
  title: string;
}

function strip(page: Page, dataset = 0): Promise<Seen[]> {
  return page.eval<Seen[]>(
    `[...document.querySelectorAll("section.dataset")[${dataset}].querySelectorAll(".strip .seg")]
      .map((s) => ({ state: s.dataset.state, cells: Number(s.dataset.cells), title: s.title }))`,
  );
}

/** The rows of the table(s) matching `selector`, as text, cell by cell. */
function rows(page: Page, selector: string): Promise<string[][]> {
  return page.eval<string[][]>(
    `[...document.querySelectorAll(${JSON.stringify(selector)})]
      .flatMap((t) => [...t.tBodies[0].rows].map((r) => [...r.cells].map((c) => c.innerText.trim())))`,
  );
}

const text = (page: Page, selector: string) =>
  page.eval<string>(`document.querySelector(${JSON.stringify(selector)})?.innerText ?? ""`);

/** Waits for the page's next refresh (its script counts them), then for `ready` to hold. */
async function refreshed(page: Page, ready: string, what: string): Promise<void> {
  const n = await page.eval<number>(`Number(document.documentElement.dataset.refreshes ?? 0)`);
  await page.waitFor(
    `Number(document.documentElement.dataset.refreshes ?? 0) > ${n}`,
    "the page refreshing",
  );
  await page.waitFor(ready, what);
}

function fleetEnv(
  target: CatalogTarget,
  source: string,
  storage: string,
  state: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    ...copyEnv(target, source, storage),
    STATE_DIR: state,
    LEDGER_START: "1",
    LEDGER_END: String(10 * SIZE),
    PARTITION_SIZE: String(SIZE),
    FLEET: "true",
    POLL_INTERVAL: "200ms",
    CONCURRENCY: "1",
    ...extra,
  };
}

Deno.test({
  name:
    "the page of a running fleet: the strip's segments, the copier rows, a copier that dies and whose cell is taken over, refreshed in place",
  ignore: missing !== null,
  async fn() {
    const source = await syntheticLake({
      network: "testnet",
      start: 1,
      count: 10 * SIZE,
      lcmVersion: 2,
      ledgerBytes: 1024,
      seed: 11,
    });
    await using target = await catalogTarget("postgres");
    await using out = await tempDir();
    await using states = await tempDir();
    // Cells 1-60 are committed before the fleet starts.
    const first = await runCli(["copy"], {
      env: {
        ...copyEnv(target, source, out.path),
        LEDGER_START: "1",
        LEDGER_END: "60",
        PARTITION_SIZE: String(SIZE),
      },
    });
    assert.equal(first.code, 0, first.stderr);
    // Copier A serves the page; A and B each claim one cell and pause inside its build.
    const paused = { BRONZE_FAILPOINT: "build-ledger:5:pause" };
    const a = new Copier(
      fleetEnv(target, source, out.path, join(states.path, "a"), {
        ...paused,
        COPIER_ID: "copier-a",
        METRICS_ADDR: "127.0.0.1:0",
        STATUS_REFRESH: "500ms",
      }),
      [],
    );
    const copiers = [a];
    try {
      const [, url] = await a.until(/\[metrics\] serving (http:\/\/\S+)\/metrics/);
      await a.until(/\[failpoint\] paused at build-ledger:5/);
      const b = new Copier(
        fleetEnv(target, source, out.path, join(states.path, "b"), {
          ...paused,
          COPIER_ID: "copier-b",
        }),
        [],
      );
      copiers.push(b);
      await b.until(/\[failpoint\] paused at build-ledger:5/);

      await using browser = await Browser.launch();
      const page = await browser.page({ width: 1280, height: 1000 });
      await page.goto(`${url}/`);
      await refreshed(page, `document.querySelector("table.copiers")`, "the copiers table");
      assert.deepEqual(
        (await strip(page)).map((s) => [s.state, s.cells]),
        [["committed", 3], ["claimed", 1], ["claimed", 1], ["gap", 5]],
      );
      const [done, byA, byB, gap] = await strip(page);
      assert.equal(done.title, "ledgers 1–60, 3 cells: 3 committed");
      assert.equal(byA.title, "ledgers 61–80, 1 cell: 1 claimed now (by copier-a: 1)");
      assert.equal(byB.title, "ledgers 81–100, 1 cell: 1 claimed now (by copier-b: 1)");
      assert.equal(gap.title, "ledgers 101–200, 5 cells: 5 gap");
      assert.match(
        await text(page, "section.dataset .legend"),
        /committed: 3 \(30\.0%\)\s+partials awaiting compaction: 0\s+claimed now: 2\s+gap: 5\s+superseded, files for gc: 0/,
      );
      const fleetRows = await rows(page, "table.copiers");
      // The copier of 1-60 holds nothing now; it committed within the pace window.
      assert.deepEqual(fleetRows.map((r) => [r[0], r[2], r[3]]), [
        ["bronze-copier", "range", "nothing now"],
        ["copier-a", "fleet", "1 cell: 61–80"],
        ["copier-b", "fleet", "1 cell: 81–100"],
      ]);
      assert.match(
        await text(page, "section.dataset .fleet"),
        /^Fleet on 1–200 in 10 cells of 20: 140 ledgers left; pace – ledgers\/s, –; ETA –$/,
      );
      assert.match(
        await text(page, "section.self h2"),
        /^This copier: copier-a \(fleet, testnet\/default\/v1\)$/,
      );
      await screenshot(page, "fleet.png");

      // B dies: its claim's session is gone; the page says so at its next refresh.
      b.child.kill("SIGKILL");
      await b.end();
      await refreshed(
        page,
        `[...document.querySelectorAll("table.dead td")].some((c) => c.innerText.includes("not swept yet"))`,
        "copier-b shown as dead",
      );
      assert.deepEqual(
        (await strip(page)).map((s) => [s.state, s.cells]),
        [["committed", 3], ["claimed", 1], ["gap", 6]],
      );
      assert.deepEqual((await rows(page, "table.dead")).map((r) => [r[0], r[3], r[4]]), [
        ["copier-b", "session gone; not swept yet", "nobody yet"],
      ]);

      // C joins: it sweeps B's claim, copies every cell but A's, and waits for A's.
      const c = new Copier(
        fleetEnv(target, source, out.path, join(states.path, "c"), { COPIER_ID: "copier-c" }),
        [],
      );
      copiers.push(c);
      await c.until(/\[fleet\] waiting for 1 cell held by copier-a/, EXIT_MS);
      await refreshed(
        page,
        `document.querySelectorAll("section.dataset .strip .seg").length === 3 &&
         document.querySelector("section.dataset .strip .seg:last-child").dataset.cells === "6"`,
        "the strip showing C's cells committed",
      );
      assert.deepEqual(
        (await strip(page)).map((s) => [s.state, s.cells]),
        [["committed", 3], ["claimed", 1], ["committed", 6]],
      );
      const died = await rows(page, "table.dead");
      assert.equal(died.length, 1);
      assert.equal(died[0][0], "copier-b");
      assert.equal(died[0][2], "81–100");
      assert.match(died[0][3], /^swept \S+ ago by copier-c$/);
      assert.deepEqual(died[0].slice(4), ["copier-c", "committed"]);
      const now = await rows(page, "table.copiers");
      assert.deepEqual(now.map((r) => [r[0], r[2], r[3]]), [
        ["bronze-copier", "range", "nothing now"],
        ["copier-a", "fleet", "1 cell: 61–80"],
        ["copier-c", "fleet", "nothing now"],
      ]);
      const cRow = now[2];
      assert.match(cRow[5], /^\d[\d,.]*$/, `copier-c's pace in ledgers/s: ${cRow}`);
      assert.ok(Number(cRow[5].replaceAll(",", "")) > 0, `copier-c's pace: ${cRow}`);
      assert.match(cRow[6], /^[\d.]+ (B|KB|MB)\/s$/);
      assert.match(
        await text(page, "section.dataset .fleet"),
        /^Fleet on 1–200 in 10 cells of 20: 20 ledgers left; pace [\d,.]+ ledgers\/s, [\d.]+ [KM]?B\/s; ETA \S+$/,
      );
      await screenshot(page, "fleet-after.png");
      assert.deepEqual(page.problems, [], "no script error or policy violation");
      const origin = new URL(url).origin;
      assert.deepEqual(
        [...new Set(page.requests)].sort(),
        [`${origin}/`, `${origin}/status.json`],
        "the page asks its own server for itself and its data, nothing else",
      );
    } finally {
      for (const c of copiers) {
        try {
          c.child.kill("SIGTERM");
        } catch { /* exited */ }
        await c.end().catch(() => {});
      }
    }
  },
});

Deno.test({
  name:
    "the page of a follower: its head, last committed ledger and lag, refreshed as the lake grows; 20 open pages cost the catalog one query per refresh interval",
  ignore: missing !== null,
  async fn() {
    await using target = await catalogTarget("postgres");
    await using dir = await tempDir();
    await using out = await tempDir();
    const lake = await growingLake(dir.path);
    await lake.publish(...range(1, 130));
    // The follower talks to its catalog through a proxy that counts the status page's queries.
    await using proxy = await countingProxy(target.dsn!, "/* bronze status */");
    const follower = new Copier(
      {
        ...copyEnv(target, lake.url, out.path),
        CATALOG_DSN: proxy.dsn,
        PARTITION_SIZE: "50",
        POLL_INTERVAL: "200ms",
        COPIER_ID: "follower-1",
      },
      ["--follow", "--start", "1", "--metrics-addr", "127.0.0.1:0", "--status-refresh", "1s"],
    );
    try {
      const [, url] = await follower.until(/\[metrics\] serving (http:\/\/\S+)\/metrics/);
      await follower.until(/\[follow\] caught up at ledger 130;/);
      await using browser = await Browser.launch();
      const page = await browser.page({ width: 1280, height: 900 });
      await page.goto(`${url}/`);
      await refreshed(page, `document.querySelector("table.followers")`, "the followers table");
      const facts = await page.eval<Record<string, string>>(
        `Object.fromEntries([...document.querySelectorAll("section.self .facts div")]
           .map((d) => [d.querySelector("dt").innerText, d.querySelector("dd").innerText]))`,
      );
      assert.match(facts["Health"], /^✓ OK ok: last committed ledger 100, head 130$/);
      assert.equal(facts["Source head"], "130");
      assert.equal(facts["Last committed ledger"], "100");
      assert.equal(facts["Lag"], "30 ledgers");
      const [row] = await rows(page, "table.followers");
      assert.equal(row[0], "follower-1");
      assert.equal(row[1], "130");
      assert.equal(row[2], "100");
      assert.match(row[3], /^30 ledgers; closed \S+ ago$/);
      assert.match(row[4], /^\S+ ago$/);
      assert.match(row[5], /^✓ OK /);
      assert.deepEqual(
        (await strip(page)).map((s) => [s.state, s.cells]),
        [["committed", 2], ["claimed", 1]],
      );
      await screenshot(page, "follower.png");

      // The lake grows: the follower commits the cell at the head, and the page follows.
      await lake.publish(...range(131, 200));
      await follower.until(/\[follow\] caught up at ledger 200;/);
      await refreshed(
        page,
        `[...document.querySelectorAll("table.followers td")][2]?.innerText === "200"`,
        "the page showing ledger 200 committed",
      );
      assert.match((await rows(page, "table.followers"))[0][3], /^0 ledgers; closed \S+ ago$/);
      // Its next cell, 201-250, is the one it works on now.
      assert.deepEqual(
        (await strip(page)).map((s) => [s.state, s.cells]),
        [["committed", 4], ["claimed", 1]],
      );
      await screenshot(page, "follower-after.png");

      // 20 pages open, each refreshing every second: the catalog is asked at most once a second.
      const pages = [page];
      for (let i = 1; i < 20; i++) {
        const p = await browser.page({ width: 1280, height: 900 });
        await p.goto(`${url}/`);
        pages.push(p);
      }
      const before = proxy.count;
      const t0 = performance.now();
      const served0 = await Promise.all(
        pages.map((p) => p.eval<number>(`Number(document.documentElement.dataset.refreshes ?? 0)`)),
      );
      for (const [i, p] of pages.entries()) {
        await p.waitFor(
          `Number(document.documentElement.dataset.refreshes ?? 0) >= ${served0[i] + 3}`,
          `page ${i} refreshing three times`,
        );
      }
      const seconds = (performance.now() - t0) / 1000;
      const queries = proxy.count - before;
      const refreshes = (await Promise.all(pages.map((p) =>
        p.eval<number>(`Number(document.documentElement.dataset.refreshes ?? 0)`)
      ))).reduce((n, r, i) =>
        n + r - served0[i], 0);
      console.log(
        `20 pages: ${refreshes} refreshes in ${
          seconds.toFixed(1)
        } s cost ${queries} catalog queries`,
      );
      assert.ok(refreshes >= 60);
      assert.ok(queries >= 1, "the catalog was asked");
      assert.ok(
        queries <= Math.ceil(seconds) + 1,
        `${queries} status queries in ${seconds.toFixed(1)} s of 1 s refreshes`,
      );
      for (const p of pages) {
        assert.deepEqual(p.problems, []);
      }
    } finally {
      follower.child.kill("SIGTERM");
      await follower.end();
    }
  },
});
