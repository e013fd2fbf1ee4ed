/**
 * The renderer (render.ts) on documents made by statusDoc from a catalog status and a copier's
 * live state: what it escapes, how bands become segments, and the copier's own section with its
 * errors and retries by area and its latest problems.
 */
import assert from "node:assert/strict";
import type { Band, CatalogStatus, DatasetStatus } from "../../lib/metadata/status.ts";
import { CopierMetrics } from "../../lib/metrics/metrics.ts";
import { statusDoc } from "../../lib/status/doc.ts";
import { RENDERER, renderStatus } from "../../lib/status/render.ts";

const NOW = new Date("2026-06-01T12:00:00Z");

function band(first: number, counts: Partial<Band>): Band {
  const cells = counts.cells ?? 1;
  return {
    firstCell: first,
    lastCell: first + cells - 1,
    start: first * 100 + 1,
    end: (first + cells) * 100,
    cells,
    committed: 0,
    partials: 0,
    claimed: 0,
    gap: 0,
    heldIncomplete: 0,
    superseded: 0,
    claimers: [],
    ...counts,
  };
}

function dataset(bands: Band[], more: Partial<DatasetStatus> = {}): DatasetStatus {
  const cells = bands.reduce((n, b) => n + b.cells, 0);
  return {
    id: 1,
    domain: "bronze",
    dataset: "ledgers_lcm_raw",
    version: "v1",
    eraId: "default",
    network: "testnet",
    label: "bronze.ledgers_lcm_raw (testnet/default/v1)",
    retiredAt: null,
    retiredReason: null,
    storageRoot: null,
    partitionSize: 100,
    size: 100,
    extent: { start: 1, end: cells * 100 },
    cells,
    bands,
    partitions: 0,
    ledgersHeld: 0,
    bytes: 0,
    superseded: 0,
    lastCommitAt: null,
    claims: [],
    pace: [],
    fleets: [],
    followers: [],
    dead: [],
    ...more,
  };
}

const status = (d: DatasetStatus[]): CatalogStatus => ({
  now: NOW,
  standby: false,
  paceSeconds: 300,
  datasets: d,
});

Deno.test("render: bands of one state merge into one segment; a band of several is one mixed segment with its counts", () => {
  const html = renderStatus(statusDoc({
    catalogLabel: "c",
    refreshSeconds: null,
    status: status([dataset([
      band(0, { cells: 25, committed: 25 }),
      band(25, { cells: 25, committed: 25 }),
      band(50, { cells: 25, committed: 23, gap: 1, partials: 1, heldIncomplete: 40 }),
      band(75, { cells: 25, gap: 25 }),
      band(100, { cells: 25, claimed: 25, claimers: [{ copierId: "vm-1", cells: 25 }] }),
      band(125, { cells: 25, claimed: 25, claimers: [{ copierId: "vm-2", cells: 25 }] }),
    ])]),
  }));
  const segs = [
    ...html.matchAll(/<span class="seg s-(\w+)"[^>]* data-cells="(\d+)"[^>]* title="([^"]*)">/g),
  ]
    .map((m) => [m[1], Number(m[2]), m[3]]);
  assert.deepEqual(segs, [
    ["committed", 50, "ledgers 1–5,000, 50 cells: 50 committed"],
    [
      "mixed",
      25,
      "ledgers 5,001–7,500, 25 cells: 23 committed, 1 in partials awaiting compaction, 1 gap (40 ledgers of them held)",
    ],
    ["gap", 25, "ledgers 7,501–10,000, 25 cells: 25 gaps"],
    ["claimed", 25, "ledgers 10,001–12,500, 25 cells: 25 claimed now (by vm-1: 25)"],
    ["claimed", 25, "ledgers 12,501–15,000, 25 cells: 25 claimed now (by vm-2: 25)"],
  ]);
  // The mixed band stacks its states, each at least a third of the height.
  assert.match(
    html,
    /data-state="mixed"[^>]*><i class="s-committed" style="flex:23.00 1 0"><\/i><i class="s-partials" style="flex:8.33 1 0"><\/i><i class="s-gap" style="flex:8.33 1 0"><\/i><\/span>/,
  );
});

Deno.test("render: what copiers, hosts and messages say is text, never markup", () => {
  const evil = `<script>alert("x")</script>`;
  const metrics = new CopierMetrics(
    { network: "testnet", era: "default", version: "v1" },
    {},
    () => NOW.getTime(),
  );
  metrics.problem("storage", `object <img src=x onerror=alert(1)> "quoted" & more`);
  const html = renderStatus(statusDoc({
    catalogLabel: `postgres://db/${evil}`,
    refreshSeconds: 5,
    self: {
      copierId: "vm-1",
      host: evil,
      pid: 1,
      role: "fleet",
      dataset: { network: "testnet", era: "default", version: "v1" },
      live: metrics.live(),
    },
    status: status([dataset([band(0, { cells: 1, gap: 1 })], {
      dead: [{
        copierId: "vm-9",
        host: evil,
        pid: 9,
        start: 1,
        end: 100,
        claimedAt: NOW,
        sweptAt: null,
        sweptBy: null,
        takenOverBy: null,
        ledgersHeld: 0,
      }],
    })]),
  }));
  assert.doesNotMatch(html, /<script|<img/);
  assert.match(html, /&#60;script&#62;alert\(&#34;x&#34;\)&#60;\/script&#62;/);
  assert.match(
    html,
    /<b>storage<\/b>: object &#60;img src=x onerror=alert\(1\)&#62; &#34;quoted&#34; &#38; more<\/li>/,
  );
});

Deno.test("render: the copier's own section: health, head, lag, errors and retries by area, latest problems", () => {
  let ms = NOW.getTime();
  const metrics = new CopierMetrics(
    { network: "testnet", era: "default", version: "v1" },
    { now: () => 0 },
    () => ms,
  );
  metrics.resumed(1000);
  metrics.sourceHead(1250);
  metrics.committed({ ledgers: 100, bytes: 5000, lastLedger: 1100, seconds: 1 });
  metrics.retried("storage", "throttled");
  metrics.retried("storage", "server");
  metrics.retried("source", "timeout");
  metrics.error("checkpoint", "save to s3://b/cp.json failed");
  ms += 30_000;
  metrics.problem("retry", "storage: 2 retries (throttled) over 1.2s");
  const doc = statusDoc({
    catalogLabel: "c",
    refreshSeconds: 5,
    now: new Date(ms),
    status: null,
    problem: "not open yet",
    self: {
      copierId: "follower-1",
      host: "h",
      pid: 1,
      role: "follower",
      dataset: { network: "testnet", era: "default", version: "v1" },
      live: metrics.live(),
    },
  });
  assert.equal(doc.copier!.lag_ledgers, 150);
  const html = renderStatus(doc);
  const facts = Object.fromEntries(
    [...html.matchAll(/<div><dt>([^<]+)<\/dt><dd>(.*?)<\/dd><\/div>/g)].map((m) => [
      m[1],
      m[2].replace(/<[^>]+>/g, ""),
    ]),
  );
  assert.deepEqual(facts, {
    "Health": "✓ OK ok: last committed ledger 1100, head 1250",
    "Source head": "1,250",
    "Last committed ledger": "1,100",
    "Lag": "150 ledgers",
    "Last commit": "30s ago",
  });
  const rows = [...html.matchAll(/<tr><td>(\w+)<\/td><td>(\d+)<\/td><td>(\d+)<\/td><\/tr>/g)]
    .map((m) => `${m[1]} ${m[2]} ${m[3]}`);
  assert.deepEqual(rows, [
    "source 0 1",
    "catalog 0 0",
    "storage 0 2",
    "checkpoint 1 0",
    "other 0 0",
  ]);
  const problems = [...html.matchAll(/<li><time[^>]*>[^<]*<\/time> <b>(\w+)<\/b>: ([^<]*)<\/li>/g)]
    .map((m) => `${m[1]}: ${m[2]}`);
  assert.deepEqual(problems, [
    "retry: storage: 2 retries (throttled) over 1.2s",
    "checkpoint: save to s3://b/cp.json failed",
  ]);
  assert.match(html, /The catalog cannot be read: not open yet/);
});

Deno.test("render: the functions the live page ships render, from their source alone, what the server does", () => {
  const doc = statusDoc({
    catalogLabel: "c",
    refreshSeconds: 5,
    status: status([dataset([
      band(0, { cells: 2, committed: 2, superseded: 1 }),
      band(2, { cells: 3, committed: 1, partials: 1, gap: 1, heldIncomplete: 7 }),
      band(5, { claimed: 1, claimers: [{ copierId: "vm-1", cells: 1 }] }),
    ])]),
  });
  // As the page's script holds them: no module around them, so a function left out of RENDERER
  // (or one reaching for a module's binding) fails here as it would in the browser.
  const source = RENDERER.map((f) => f.toString()).join("\n");
  const shipped = new Function("doc", `"use strict";\n${source}\nreturn renderStatus(doc);`);
  assert.equal(shipped(doc), renderStatus(doc));
  assert.match(shipped(doc), /class="strip"/);
});
