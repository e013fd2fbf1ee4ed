/**
 * The status page in a real browser (Debian's headless Chromium, over the DevTools protocol): the
 * page of a running fleet copy and of a follower, as a person sees it, refreshed in place as the
 * catalog changes; what its refresh costs the catalog with 20 pages open; and the page `bronze
 * status --html` writes, at 1280 px, on a phone and on paper. Screenshots go to
 * .test-output/status/.
 */
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { type CatalogTarget, catalogTarget, poolOf } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv } from "../support/copy.ts";
import { Copier, growingLake, range } from "../support/growing.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { Browser, browserMissing, type Page } from "../support/browser.ts";
import { countingProxy } from "../support/pg_proxy.ts";
import { fixedCatalog } from "../support/status_catalog.ts";
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
      assert.equal(gap.title, "ledgers 101–200, 5 cells: 5 gaps");
      assert.match(
        await text(page, "section.dataset .legend"),
        /committed: 3 \(30\.0%\)\s+partials awaiting compaction: 0\s+claimed now: 2\s+gaps: 5\s+superseded, awaiting gc: 0/,
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
        /^Fleet on 1–200 in 10 cells of 20: 140 ledgers left; no commits in the last 5m00s$/,
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

/** WCAG's contrast ratio of two CSS rgb() colours. */
function contrast(a: string, b: string): number {
  const lum = (c: string) => {
    const [r, g, bl] = c.match(/[\d.]+/g)!.slice(0, 3).map((v) => {
      const s = Number(v) / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

Deno.test({
  name:
    "the page written by bronze status --html: readable at 1280 px and on a phone, text contrast, states told by pattern and words, prints with its tables open",
  ignore: missing !== null,
  async fn() {
    await using target = await catalogTarget("postgres");
    await using out = await tempDir();
    const catalog = await target.open();
    const locker = await poolOf(catalog).connect();
    try {
      await fixedCatalog(poolOf(catalog), locker);
      const file = join(out.path, "status.html");
      const r = await runCli(["status", "--html", file], {
        env: { CATALOG_DSN: target.dsn!, STATE_DIR: target.stateDir },
      });
      assert.equal(r.code, 0, r.stderr);
      await using browser = await Browser.launch();

      const wide = await browser.page({ width: 1280, height: 900 });
      await wide.goto(`file://${file}`);
      const fits = `document.documentElement.scrollWidth <= innerWidth`;
      assert.equal(await wide.eval(fits), true, "no sideways scrolling at 1280 px");
      const body = await wide.eval<{ fg: string; bg: string; muted: string }>(
        `({ fg: getComputedStyle(document.body).color,
            bg: getComputedStyle(document.body).backgroundColor,
            muted: getComputedStyle(document.querySelector(".summary")).color })`,
      );
      assert.ok(contrast(body.fg, body.bg) >= 7, `text contrast ${JSON.stringify(body)}`);
      assert.ok(contrast(body.muted, body.bg) >= 7, `muted text contrast ${JSON.stringify(body)}`);
      // Each state a pattern of its own (committed the only solid one) and a name in the legend.
      const swatches = await wide.eval<Record<string, string>>(
        `Object.fromEntries([...document.querySelectorAll("section#dataset-1 .legend li")]
           .map((li) => [li.dataset.state,
                         getComputedStyle(li.querySelector(".sw")).backgroundImage]))`,
      );
      assert.equal(swatches.committed, "none");
      const patterns = ["partials", "claimed", "gap", "superseded"].map((s) => swatches[s]);
      assert.ok(patterns.every((p) => p.includes("gradient")), JSON.stringify(swatches));
      assert.equal(new Set(patterns).size, 4, "four different patterns");
      const titles = await wide.eval<string[]>(
        `[...document.querySelectorAll("section#dataset-1 .strip .seg")].map((s) => s.title)`,
      );
      assert.ok(
        titles.every((t) => /committed|partials|claimed|gaps?\b/.test(t)),
        titles.join("\n"),
      );
      assert.deepEqual(wide.problems, [], "no error, no policy violation");
      assert.deepEqual(wide.requests, [`file://${file}`], "nothing fetched but the page");
      await screenshot(wide, "static.png");

      // A phone: the page does not scroll sideways (wide tables scroll in their own box), the
      // strip fits the screen.
      const phone = await browser.page({ width: 375, height: 740, mobile: true });
      await phone.goto(`file://${file}`);
      assert.equal(await phone.eval(fits), true, "no sideways scrolling on a phone");
      const strip = await phone.eval<number>(
        `document.querySelector("section#dataset-1 .strip").getBoundingClientRect().right`,
      );
      assert.ok(strip <= 375, `the strip fits the phone's width (right edge ${strip})`);
      await screenshot(phone, "phone.png");

      // On paper: the segment tables print open, the patterns print as they are.
      await wide.printMedia(true);
      const printed = await wide.eval<{ rows: number; adjust: string }>(
        `({ rows: document.querySelector("section#dataset-1 details table").getBoundingClientRect().height,
            adjust: getComputedStyle(document.querySelector(".strip .seg")).printColorAdjust })`,
      );
      assert.ok(printed.rows > 0, "the segments table is printed");
      assert.equal(printed.adjust, "exact");
      const pdf = await wide.pdf(join(OUT, "static.pdf"));
      assert.equal(new TextDecoder().decode(pdf.slice(0, 5)), "%PDF-");
    } finally {
      locker.release();
      await catalog.close();
    }
  },
});
