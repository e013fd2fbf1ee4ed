import assert from "node:assert/strict";
import pg from "pg";
import { createTestDatabase } from "../support/catalogs.ts";
import { netnsMissing, type RemoteHost, remoteHost } from "../support/netns.ts";
import { CLAIM_LOCK_CLASS, CLAIM_SESSION_SETTINGS } from "../../lib/metadata/claims.ts";

/**
 * A claim lives as long as the claimer's session (lib/metadata/claims.ts). When the claimer's
 * machine vanishes (power lost, cable pulled), PostgreSQL learns of it only from its own TCP
 * timers, which claims.ts tunes on the claiming session. These tests pull the cable on claimers
 * running in a network namespace (tests/support/netns.ts), so that the server's socket really
 * loses its peer, and watch the server let go of their locks.
 *
 * Keepalive only runs on a connection with nothing unacknowledged. If the server was sending when
 * the peer vanished (a result whose ACK never came, a NOTIFY), its socket retransmits instead, for
 * tcp_retries2 (15: about 15 minutes) unless the session's tcp_user_timeout bounds it. Both
 * situations are measured, with claims.ts's settings and with tcp_user_timeout added. So is the
 * claimer's side: an idle pg.Client notices nothing until it next sends; node-postgres' keepAlive
 * (in Deno: TCP_KEEPIDLE only, the kernel's 75 s x 9 probes after it) takes over 11 minutes; a
 * heartbeat query with a deadline notices within heartbeat + deadline.
 *
 * Measured here (PostgreSQL 15, Linux 6.18): idle, cut to release 61-62.5 s (30 + 3 x 10 s plus
 * the kernel's timer slack); server sending, 944 s with claims.ts's settings, 60.7 s with
 * tcp_user_timeout = 60 s; a 5 s heartbeat with a 5 s deadline noticed after 9.9 s; keepAlive
 * 10 s noticed after 692 s; a client with a query in flight noticed after 938 s.
 *
 * This file is also the claimer: `deno run -A claims_keepalive_test.ts holder JSON` (run inside
 * the namespace) takes a lock and reports on stdout in JSON lines.
 */

// The keepalives alone, without tcp_user_timeout: what claims.ts set before these measurements.
const KEEPALIVES_ONLY =
  "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3";
const LOCK_CLASS = CLAIM_LOCK_CLASS;

/** Liveness bound, not a timing assertion: only a server that never drops the session fails it. */
const RELEASE_BOUND_MS = 180_000;

interface HolderSpec {
  key: number;
  label: string;
  /** The keepalives alone instead of claims.ts's session settings. */
  keepalivesOnly?: boolean;
  /** The session's tcp_user_timeout (ms), on top of claims.ts's keepalives. */
  userTimeoutMs?: number;
  /** node-postgres keepAlive: on, with this initial delay (ms). */
  keepAliveMs?: number;
  /** LISTEN, so that a NOTIFY sent after the cut leaves the server with unacknowledged data. */
  listen?: boolean;
  /** Send a query right after the cut, so that the client has unacknowledged data. */
  queryAtCut?: boolean;
  /**
   * What a copier can do for itself: SELECT 1 every so many ms, and give the claim up as lost
   * (a "lost" event) when one is not answered within as many ms again.
   */
  heartbeatMs?: number;
}

interface Event {
  event: string;
  at: number;
  [k: string]: unknown;
}

/** A claimer inside the namespace: one pg.Client holding one advisory lock. */
class Holder {
  readonly events: Event[] = [];
  #waiters: (() => void)[] = [];
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #reading: Promise<void>;

  constructor(host: RemoteHost, url: string, readonly spec: HolderSpec) {
    this.#child = host.spawn(Deno.execPath(), [
      "run",
      "-A",
      "--cached-only",
      new URL(import.meta.url).pathname,
      "holder",
      JSON.stringify({ url, ...spec }),
    ], {
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      cwd: new URL("../..", import.meta.url).pathname,
    });
    this.#stdin = this.#child.stdin.getWriter();
    this.#reading = this.#read();
  }

  async #read() {
    let buf = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          this.events.push(JSON.parse(line));
        } catch {
          console.log(`holder ${this.spec.key}: ${line}`);
        }
        for (const w of this.#waiters.splice(0)) w();
      }
    }
    for (const w of this.#waiters.splice(0)) w();
  }

  /** The first event so named from index `from` on, waiting up to ms for it. */
  async next(name: string, ms: number, from = 0): Promise<Event> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.events.slice(from).find((e) => e.event === name);
      if (found) return found;
      if (Date.now() > deadline) {
        throw new Error(
          `holder ${this.spec.key}: no ${name} event within ${ms} ms; ` +
            `saw ${JSON.stringify(this.events)}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, Math.min(1000, Math.max(0, deadline - Date.now())));
      });
      clearTimeout(timer);
    }
  }

  /** Runs SELECT 1 in the holder; returns its outcome event. */
  async query(ms: number): Promise<Event> {
    const from = this.events.length;
    await this.send();
    return await this.next("query", ms, from);
  }

  /** Starts a SELECT 1 in the holder; its outcome comes as a "query" event. */
  async send() {
    await this.#stdin.write(new TextEncoder().encode("query\n"));
  }

  /** How the holder first noticed: its pg.Client's 'error' event, or its heartbeat's "lost". */
  get noticed(): Event | undefined {
    return this.events.find((e) => e.event === "error" || e.event === "lost");
  }

  async stop() {
    await this.#stdin.close().catch(() => {});
    const exited = await Promise.race([
      this.#child.status.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), 5000)),
    ]);
    if (!exited) this.#child.kill("SIGKILL");
    await this.#child.status;
    await this.#reading;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** `ss` lines of established TCP sockets matching filter, here or inside a namespace. */
async function sockets(filter: string, namespace?: string): Promise<string[]> {
  const ss = ["ss", "-tnopH", "state", "established", filter];
  const out = await new Deno.Command(namespace ? "ip" : ss[0], {
    args: namespace ? ["netns", "exec", namespace, ...ss] : ss.slice(1),
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean);
}

const timerOf = (line: string | undefined) =>
  line === undefined ? "gone" : /timer:\(([^)]*)\)/.exec(line)?.[1] ?? "no timer";

/** The server-side socket line of each backend. */
async function serverSockets(backends: number[]): Promise<Map<number, string | undefined>> {
  const lines = await sockets("( sport = :5432 )");
  return new Map(backends.map((pid) => [pid, lines.find((l) => l.includes(`pid=${pid},`))]));
}

/**
 * Starts holders, waits until each holds its lock and the server's sockets are quiet (nothing
 * unacknowledged), cuts the link, sends a NOTIFY to the listening ones, then watches from this
 * side until `done` says so; logs each socket's timer as it changes (the evidence of what does
 * the work). Returns per holder the cut-to-release and cut-to-backend-exit times seen so far.
 */
async function cutAndWatch(
  host: RemoteHost,
  admin: pg.Client,
  holders: Holder[],
  done: (released: Map<number, number>, sinceCut: number) => boolean,
) {
  const locked = await Promise.all(holders.map((h) => h.next("locked", 60_000)));
  const backends = locked.map((e) => e.backendPid as number);
  const held = await admin.query(
    `SELECT l.pid, host(a.client_addr) AS addr
     FROM pg_locks l JOIN pg_stat_activity a USING (pid)
     WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
     ORDER BY l.objid`,
    [LOCK_CLASS],
  );
  assert.deepEqual(held.rows.map((r: { pid: number }) => r.pid), backends, "each holds its lock");
  // The server sees the namespace's connections at 127.0.0.1 (the harness's source NAT).
  assert.ok(held.rows.every((r: { addr: string }) => r.addr === "127.0.0.1"));
  // The last reply's delayed ACK must be in, or every socket would start out retransmitting.
  for (let i = 0;; i++) {
    const socks = await serverSockets(backends);
    if ([...socks.values()].every((l) => l && /timer:\(keepalive/.test(l))) break;
    assert.ok(i < 100, `server sockets never went quiet: ${[...socks.values()].join(" | ")}`);
    await sleep(100);
  }
  console.log(`${host.name}: backends ${backends.join(", ")} hold their locks; cutting`);

  const cutAt = Date.now();
  await host.cut();
  for (const h of holders) {
    if (h.spec.listen) await admin.query(`NOTIFY bronze_keepalive_${h.spec.key}`);
    if (h.spec.queryAtCut) await h.send();
  }
  const released = new Map<number, number>(); // key → ms after cut
  const exited = new Map<number, number>();
  const timers = new Map<string, string>();
  let sampled = 0;
  while (!done(released, Date.now() - cutAt)) {
    const { rows } = await admin.query(
      `SELECT b.pid, a.pid IS NOT NULL AS connected, l.pid IS NOT NULL AS locked
       FROM unnest($1::int[]) AS b(pid)
       LEFT JOIN pg_stat_activity a ON a.pid = b.pid
       LEFT JOIN pg_locks l ON l.pid = b.pid AND l.locktype = 'advisory' AND l.granted
         AND l.classid::bigint = $2`,
      [backends, LOCK_CLASS],
    );
    const now = Date.now();
    for (const r of rows as { pid: number; connected: boolean; locked: boolean }[]) {
      const key = holders[backends.indexOf(r.pid)].spec.key;
      if (!r.locked && !released.has(key)) released.set(key, now - cutAt);
      if (!r.connected && !exited.has(key)) exited.set(key, now - cutAt);
    }
    if (now - sampled >= 1000) {
      sampled = now;
      const log = (what: string, timer: string) => {
        // Compare without the countdown: log when the kind of timer or its probe count changes.
        const shape = timer.replace(/,[^,]*,/, ",");
        if (timers.get(what) !== shape) console.log(`+${secs(now - cutAt)} ${what}: ${timer}`);
        timers.set(what, shape);
      };
      const server = await serverSockets(backends);
      for (const [i, h] of holders.entries()) {
        log(`holder ${h.spec.key} server side`, timerOf(server.get(backends[i])));
      }
      for (const line of await sockets("( dport = :5432 )", host.name)) {
        log(`client ${/(\S+:\d+)\s+\S+:5432/.exec(line)?.[1]}`, timerOf(line));
      }
    }
    await sleep(200);
  }
  return { cutAt, backends, released, exited };
}

Deno.test({
  name: "claims: a claimer whose cable is pulled loses its lock within the keepalive bound, and " +
    "finds its connection dead when the cable returns",
  ignore: Deno.build.os !== "linux",
}, async () => {
  const missing = await netnsMissing();
  if (missing) throw new Error(missing);
  const specs: HolderSpec[] = [
    { key: 1, label: "idle, claims.ts settings" },
    {
      key: 2,
      label: "server sending, keepalives only (no tcp_user_timeout)",
      listen: true,
      keepalivesOnly: true,
    },
    {
      key: 3,
      label: "idle, + tcp_user_timeout 60 s, + client keepAlive 10 s",
      userTimeoutMs: 60_000,
      keepAliveMs: 10_000,
    },
    {
      key: 4,
      label: "server sending, + tcp_user_timeout 60 s, + client keepAlive 10 s",
      userTimeoutMs: 60_000,
      keepAliveMs: 10_000,
      listen: true,
    },
    {
      key: 5,
      label: "+ tcp_user_timeout 60 s, + a heartbeat every 5 s",
      userTimeoutMs: 60_000,
      heartbeatMs: 5_000,
    },
    { key: 6, label: "server sending, claims.ts settings", listen: true },
  ];
  // Bounded: all but a sending server without tcp_user_timeout (2), which retransmits ~15 minutes.
  const bounded = [1, 3, 4, 5, 6];
  const db = await createTestDatabase();
  const admin = new pg.Client({ connectionString: db.dsn }); // over 127.0.0.1, never cut
  await admin.connect();
  try {
    await using host = await remoteHost();
    const holders = specs.map((s) => new Holder(host, host.pgUrl(db.name), s));
    try {
      const { cutAt, released, exited } = await cutAndWatch(
        host,
        admin,
        holders,
        (released, since) => {
          assert.ok(
            since < RELEASE_BOUND_MS,
            `liveness: the server still holds a vanished claimer's lock ${since} ms after the ` +
              `cut (released: holders ${[...released.keys()]}; expected ${bounded})`,
          );
          return bounded.every((k) => released.has(k));
        },
      );
      const waited = Date.now() - cutAt;
      for (const h of holders) {
        const k = h.spec.key;
        console.log(
          `holder ${k} (${h.spec.label}): ` + (released.has(k)
            ? `lock released ${secs(released.get(k)!)} after the cut, backend gone after ` +
              `${secs(exited.get(k) ?? NaN)}`
            : `lock still held ${secs(waited)} after the cut`) +
            `; client ${
              h.noticed
                ? `noticed after ${secs(h.noticed.at - cutAt)} (${h.noticed.message})`
                : "had noticed nothing"
            }`,
        );
      }
      const free = await admin.query(
        `SELECT k, pg_try_advisory_lock($1, k) AS free FROM unnest($2::int[]) k ORDER BY k`,
        [LOCK_CLASS, bounded],
      );
      assert.ok(free.rows.every((r: { free: boolean }) => r.free), "another session can claim");
      await admin.query("SELECT pg_advisory_unlock_all()");

      await host.restore();
      const restoredAt = Date.now();
      const outcomes = await Promise.all(
        holders.filter((h) => bounded.includes(h.spec.key)).map(async (h) => {
          const outcome = await h.query(60_000);
          console.log(
            `holder ${h.spec.key}: first query after restore ${
              outcome.ok ? "succeeded" : "failed"
            } ${secs(outcome.at - restoredAt)} after restore: ${outcome.message ?? ""}`,
          );
          return outcome;
        }),
      );
      assert.ok(outcomes.every((o) => !o.ok), "their sessions are dead, not silently holding");
      // Holder 2's session survived the cut (its server was still retransmitting): it holds on.
      const two = await admin.query(
        `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND classid::bigint = $1 AND objid = 2`,
        [LOCK_CLASS],
      );
      console.log(`holder 2: ${two.rows[0].n ? "still holds" : "has lost"} its lock after restore`);
    } finally {
      await Promise.all(holders.map((h) => h.stop()));
    }
  } finally {
    await admin.end();
    await db.drop();
  }
});

Deno.test({
  name: "claims: how long the slow ends take to notice a pulled cable (15 minutes; opt-in: " +
    "BRONZE_KEEPALIVE_LONG=1)",
  ignore: Deno.build.os !== "linux" || !Deno.env.get("BRONZE_KEEPALIVE_LONG"),
}, async () => {
  const missing = await netnsMissing();
  if (missing) throw new Error(missing);
  const specs: HolderSpec[] = [
    { key: 1, label: "server sending, claims.ts settings", listen: true },
    { key: 2, label: "idle client with keepAlive 10 s", keepAliveMs: 10_000 },
    { key: 3, label: "client sending, no keepAlive", queryAtCut: true },
    { key: 4, label: "client sending, keepAlive 10 s", queryAtCut: true, keepAliveMs: 10_000 },
  ];
  const db = await createTestDatabase();
  const admin = new pg.Client({ connectionString: db.dsn });
  await admin.connect();
  try {
    await using host = await remoteHost();
    const holders = specs.map((s) => new Holder(host, host.pgUrl(db.name), s));
    try {
      const { cutAt, released } = await cutAndWatch(host, admin, holders, (released, since) => {
        assert.ok(since < 30 * 60_000, "liveness: nothing noticed within 30 minutes");
        return released.has(1) && holders.slice(1).every((h) => h.noticed);
      });
      console.log(
        `holder 1 (${specs[0].label}): lock released ${secs(released.get(1)!)} after cut`,
      );
      for (const h of holders.slice(1)) {
        console.log(
          `holder ${h.spec.key} (${h.spec.label}): client noticed ${
            secs(h.noticed!.at - cutAt)
          } after the cut: ${h.noticed!.message}`,
        );
      }
    } finally {
      await Promise.all(holders.map((h) => h.stop()));
    }
  } finally {
    await admin.end();
    await db.drop();
  }
});

// --- the holder, run inside the namespace ---------------------------------------------------------

async function holder(spec: HolderSpec & { url: string }) {
  const emit = (event: string, fields: Record<string, unknown> = {}) =>
    console.log(JSON.stringify({ event, at: Date.now(), ...fields }));
  const client = new pg.Client({
    connectionString: spec.url,
    keepAlive: spec.keepAliveMs !== undefined,
    keepAliveInitialDelayMillis: spec.keepAliveMs ?? 0,
  });
  client.on("error", (err: Error & { code?: string }) => {
    emit("error", { message: err.message, code: err.code });
  });
  client.on("notification", (n: { channel: string }) => emit("notification", n));
  client.on("end", () => emit("end"));
  await client.connect();
  await client.query(spec.keepalivesOnly ? KEEPALIVES_ONLY : CLAIM_SESSION_SETTINGS);
  if (spec.userTimeoutMs !== undefined) {
    await client.query(`SET tcp_user_timeout = ${spec.userTimeoutMs}`);
  }
  if (spec.listen) await client.query(`LISTEN bronze_keepalive_${spec.key}`);
  const { rows } = await client.query(
    "SELECT pg_backend_pid() AS pid, pg_advisory_lock($1, $2)",
    [LOCK_CLASS, spec.key],
  );
  emit("locked", { backendPid: rows[0].pid });
  if (spec.heartbeatMs !== undefined) {
    const ms = spec.heartbeatMs;
    let busy = false;
    let lost = false;
    setInterval(async () => {
      if (busy || lost) return;
      busy = true;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`a heartbeat had no answer in ${ms} ms`)), ms);
      });
      try {
        await Promise.race([client.query("SELECT 1"), deadline]);
      } catch (err) {
        lost = true;
        emit("lost", { message: (err as Error).message });
        // Give the claim up: a socket left to retransmit would wait out tcp_retries2.
        client.connection.stream.destroy();
      } finally {
        clearTimeout(timer);
        busy = false;
      }
    }, ms);
  }
  let buf = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const command = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (command !== "query") continue;
      const started = Date.now();
      try {
        await client.query("SELECT 1");
        emit("query", { ok: true, ms: Date.now() - started });
      } catch (err) {
        const e = err as Error & { code?: string };
        emit("query", { ok: false, ms: Date.now() - started, message: e.message, code: e.code });
      }
    }
  }
  // Stdin closed: leave without a goodbye to the server, which a dead link would never deliver.
  Deno.exit(0);
}

if (import.meta.main && Deno.args[0] === "holder") {
  await holder(JSON.parse(Deno.args[1]));
}
