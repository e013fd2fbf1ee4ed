/**
 * A CopierMetrics served by serveMetrics on 127.0.0.1 and scraped over real HTTP, as Prometheus
 * and a Kubernetes probe would.
 */
import assert from "node:assert/strict";
import { RETRY_AREAS, type RetryArea } from "../../lib/runtime/retry.ts";
import { TRANSIENT_REASONS } from "../../lib/runtime/transient.ts";
import { CopierMetrics, serveMetrics } from "../../lib/metrics/mod.ts";

const DATASET = { network: "testnet", era: "p23", version: "v1" };
const L = 'network="testnet",era="p23",version="v1"';

function clock() {
  let ms = 0;
  return { now: () => ms, advance: (seconds: number) => void (ms += seconds * 1000) };
}

async function get(url: string): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
}

/** The histogram's bucket lines for the given cumulative counts (15 bounds and +Inf). */
function buckets(counts: number[]): string[] {
  const les = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "120", "300"]
    .concat(["600", "1200", "1800", "+Inf"]);
  assert.equal(counts.length, les.length);
  return les.map((le, i) => `bronze_partition_commit_seconds_bucket{${L},le="${le}"} ${counts[i]}`);
}

/** bronze_retries_total: every area and reason from the start, `counts` by "area reason". */
function retries(counts: Record<string, number>): string[] {
  const lines = [
    "# HELP bronze_retries_total Attempts retried after a transient failure, by area and reason " +
    "(throttled, server, timeout, connection, truncated, bad_response, io).",
    "# TYPE bronze_retries_total counter",
  ];
  for (const area of RETRY_AREAS) {
    for (const reason of TRANSIENT_REASONS) {
      lines.push(
        `bronze_retries_total{${L},area="${area}",reason="${reason}"} ${
          counts[`${area} ${reason}`] ?? 0
        }`,
      );
    }
  }
  return lines;
}

/** bronze_catalog_reconnects_total at `n`. */
function reconnects(n: number): string[] {
  return [
    "# HELP bronze_catalog_reconnects_total Times the catalog was reached again after it went away " +
    "(a restart, a failover, a dropped connection): one per burst of catalog retries that " +
    "recovered, claims re-taken and a commit whose answer was lost resolved.",
    "# TYPE bronze_catalog_reconnects_total counter",
    `bronze_catalog_reconnects_total{${L}} ${n}`,
  ];
}

const HEALTHY_HELP =
  "# HELP bronze_healthy 1 while /healthz answers 200, 0 while it answers 503 (no progress, a stalled source head, or a failure: /healthz says which).";

Deno.test("metrics: a follower's lag counts from when its oldest uncommitted ledger was first seen, beside its flush interval; bronze_healthy follows /healthz; a fleet copier's cells by state", () => {
  let now = 0;
  const m = new CopierMetrics(DATASET, { now: () => now, stallAfterSeconds: 60 });
  const value = (name: string, extra = "") =>
    new RegExp(`^${name}\\{${L}${extra}\\} (\\S+)$`, "m").exec(m.render())?.[1];
  assert.equal(value("bronze_lag_seconds"), undefined, "not a follower: no lag");
  assert.equal(value("bronze_flush_interval_seconds"), undefined);
  m.flushInterval(600);
  m.uncommittedSince(null);
  assert.equal(value("bronze_lag_seconds"), "0");
  m.uncommittedSince(1000);
  now = 31_500;
  assert.equal(value("bronze_lag_seconds"), "30.5", "read as it is scraped");
  assert.equal(value("bronze_flush_interval_seconds"), "600");
  assert.equal(value("bronze_healthy"), "1");
  now = 62_000; // no progress for over 60 s
  assert.equal(value("bronze_healthy"), "0");
  m.fleetCells({ committed: 3, claimed: 2, left: 5 });
  assert.deepEqual(
    ["committed", "claimed", "left"].map((s) => value("bronze_fleet_cells", `,state="${s}"`)),
    ["3", "2", "5"],
  );
});

Deno.test("metrics: /metrics is the exact exposition; counters grow, gauges follow, the histogram buckets", async () => {
  const m = new CopierMetrics(DATASET);
  const server = serveMetrics("127.0.0.1:0", m, m.health);
  try {
    const fresh = await get(`${server.url}/metrics`);
    assert.equal(fresh.status, 200);
    assert.equal(fresh.type, "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(
      fresh.body,
      [
        "# HELP bronze_ledgers_committed_total Ledgers committed to the catalog.",
        "# TYPE bronze_ledgers_committed_total counter",
        `bronze_ledgers_committed_total{${L}} 0`,
        "# HELP bronze_partitions_committed_total Partitions committed to the catalog.",
        "# TYPE bronze_partitions_committed_total counter",
        `bronze_partitions_committed_total{${L}} 0`,
        "# HELP bronze_bytes_written_total Parquet bytes of the committed partitions.",
        "# TYPE bronze_bytes_written_total counter",
        `bronze_bytes_written_total{${L}} 0`,
        "# HELP bronze_partition_commit_seconds Seconds from a partition's build start to its catalog commit.",
        "# TYPE bronze_partition_commit_seconds histogram",
        ...buckets(Array(16).fill(0)),
        `bronze_partition_commit_seconds_sum{${L}} 0`,
        `bronze_partition_commit_seconds_count{${L}} 0`,
        "# HELP bronze_errors_total Errors met by the copier, by kind (retried ones included).",
        "# TYPE bronze_errors_total counter",
        `bronze_errors_total{${L},kind="source"} 0`,
        `bronze_errors_total{${L},kind="catalog"} 0`,
        `bronze_errors_total{${L},kind="storage"} 0`,
        `bronze_errors_total{${L},kind="checkpoint"} 0`,
        `bronze_errors_total{${L},kind="other"} 0`,
        ...retries({}),
        ...reconnects(0),
        HEALTHY_HELP,
        "# TYPE bronze_healthy gauge",
        `bronze_healthy{${L}} 1`,
        "",
      ].join("\n"),
      "counters start at zero; the gauges are absent until known",
    );

    m.resumed(10000);
    m.sourceHead(25000);
    m.committed({ ledgers: 10000, bytes: 4096, lastLedger: 20000, seconds: 0.5 });
    m.committed({ ledgers: 3, bytes: 100, lastLedger: 20003, seconds: 1800.5 });
    m.error("storage");
    m.error("storage");
    m.error("source");
    m.retried("storage", "throttled");
    m.retried("storage", "throttled");
    m.retried("source", "truncated");
    // A catalog burst that recovered is a reconnect; one that gave up, or another area's, is not.
    for (const [area, recovered] of [["catalog", true], ["catalog", false], ["storage", true]]) {
      m.burst(area as RetryArea, true);
      m.burst(area as RetryArea, false, recovered as boolean);
    }
    m.waiting(25001);
    const after = await get(`${server.url}/metrics`);
    assert.equal(
      after.body,
      [
        "# HELP bronze_last_committed_ledger Last ledger of the contiguous range the catalog holds from the run's start (the start - 1 while it holds none of it), read from the catalog at start.",
        "# TYPE bronze_last_committed_ledger gauge",
        `bronze_last_committed_ledger{${L}} 20003`,
        "# HELP bronze_source_head_ledger Latest ledger the source holds, as last polled.",
        "# TYPE bronze_source_head_ledger gauge",
        `bronze_source_head_ledger{${L}} 25001`,
        "# HELP bronze_ledgers_committed_total Ledgers committed to the catalog.",
        "# TYPE bronze_ledgers_committed_total counter",
        `bronze_ledgers_committed_total{${L}} 10003`,
        "# HELP bronze_partitions_committed_total Partitions committed to the catalog.",
        "# TYPE bronze_partitions_committed_total counter",
        `bronze_partitions_committed_total{${L}} 2`,
        "# HELP bronze_bytes_written_total Parquet bytes of the committed partitions.",
        "# TYPE bronze_bytes_written_total counter",
        `bronze_bytes_written_total{${L}} 4196`,
        "# HELP bronze_partition_commit_seconds Seconds from a partition's build start to its catalog commit.",
        "# TYPE bronze_partition_commit_seconds histogram",
        ...buckets([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]),
        `bronze_partition_commit_seconds_sum{${L}} 1801`,
        `bronze_partition_commit_seconds_count{${L}} 2`,
        "# HELP bronze_errors_total Errors met by the copier, by kind (retried ones included).",
        "# TYPE bronze_errors_total counter",
        `bronze_errors_total{${L},kind="source"} 1`,
        `bronze_errors_total{${L},kind="catalog"} 0`,
        `bronze_errors_total{${L},kind="storage"} 2`,
        `bronze_errors_total{${L},kind="checkpoint"} 0`,
        `bronze_errors_total{${L},kind="other"} 0`,
        ...retries({ "storage throttled": 2, "source truncated": 1 }),
        ...reconnects(1),
        HEALTHY_HELP,
        "# TYPE bronze_healthy gauge",
        `bronze_healthy{${L}} 1`,
        "",
      ].join("\n"),
    );
  } finally {
    await server.close();
  }
});

Deno.test("metrics: /healthz is 200 while the copier works or waits at a moving head, 503 with the reason otherwise", async () => {
  const t = clock();
  const m = new CopierMetrics(DATASET, {
    stallAfterSeconds: 300,
    headStallAfterSeconds: 600,
    now: t.now,
  });
  const server = serveMetrics("127.0.0.1:0", m, m.health);
  const healthz = () => get(`${server.url}/healthz`);
  try {
    m.resumed(123);
    m.sourceHead(5000);
    assert.deepEqual(await healthz(), {
      status: 200,
      type: "text/plain; charset=utf-8",
      body: "ok: last committed ledger 123, head 5000\n",
    });

    t.advance(200);
    m.built();
    t.advance(200);
    assert.equal((await healthz()).status, 200, "a built ledger is progress");
    t.advance(112);
    assert.deepEqual(await healthz(), {
      status: 503,
      type: "text/plain; charset=utf-8",
      body: "no progress for 5m12s; last committed ledger 123\n",
    });

    m.committed({ ledgers: 4877, bytes: 1, lastLedger: 5000, seconds: 1 });
    m.waiting(5000);
    t.advance(500);
    m.waiting(5001);
    t.advance(550);
    assert.deepEqual(await healthz(), {
      status: 200,
      type: "text/plain; charset=utf-8",
      body: "ok: last committed ledger 5000, head 5001\n",
    }, "caught up and polling: no stall, though nothing was built for 17 minutes");
    t.advance(50);
    assert.equal((await healthz()).status, 200);
    t.advance(1);
    assert.deepEqual(await healthz(), {
      status: 503,
      type: "text/plain; charset=utf-8",
      body: "source head 5001 has not advanced for 10m01s\n",
    });

    m.error("catalog"); // counted, but a retried error alone changes no health
    m.waiting(5002);
    assert.equal((await healthz()).status, 200);
    m.failing("catalog write failed: connection refused");
    assert.deepEqual(await healthz(), {
      status: 503,
      type: "text/plain; charset=utf-8",
      body: "catalog write failed: connection refused\n",
    });
  } finally {
    await server.close();
  }
});

Deno.test("metrics: any other path is 404, any other method 405", async () => {
  const m = new CopierMetrics(DATASET);
  const server = serveMetrics("127.0.0.1:0", m, m.health);
  try {
    assert.deepEqual(await get(`${server.url}/`), {
      status: 404,
      type: "text/plain; charset=utf-8",
      body: "not found: / (try /metrics or /healthz)\n",
    });
    assert.equal((await get(`${server.url}/metrics/extra`)).status, 404);
    const post = await fetch(`${server.url}/metrics`, { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    assert.equal(await post.text(), "method POST not allowed\n");
  } finally {
    await server.close();
  }
});
