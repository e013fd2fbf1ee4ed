/**
 * The embedded catalog shared by the bronze processes of one state dir: the first one owns it
 * (runs PGlite, serves it on 127.0.0.1), every other one connects to the owner's server instead of
 * waiting for its lock. Real processes throughout: the owner is `_embedded_holder.ts` or a real
 * `bronze copy` paused at a failpoint, and "did not wait for the lock" is shown by the owner still
 * holding it (alive, paused) when the other process has its answer.
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { freshStateDir, poolOf, withCatalog } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { openCatalog } from "../../lib/metadata/catalog.ts";
import { dbOf } from "../../lib/metadata/_db.ts";
import { startEmbeddedCatalog } from "../../lib/metadata/embedded.ts";
import { readLockRecord } from "../../lib/metadata/_embedded_lock.ts";
import { openReadyCatalog } from "../../lib/metadata/migrate.ts";
import { CatalogWriter, type DatasetInfo } from "../../lib/metadata/writer.ts";
import { until, WAIT_MS, within } from "../support/wait.ts";
import { LOAD_TABLE, transactionLoad } from "./_embedded_holder.ts";

const HOLDER = new URL("./_embedded_holder.ts", import.meta.url).pathname;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

const DATASET: DatasetInfo = {
  domain: "bronze",
  dataset: "ledgers_lcm_raw",
  version: "v1",
  eraId: "pre_p23",
  network: "testnet",
  schemaHash: "a".repeat(64),
};

/** A fresh (initialised, unmigrated) state dir, removed afterwards. */
async function stateDir(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await freshStateDir();
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) };
}

/** Lines of a child's stream, one at a time. */
class Lines {
  #pending = "";
  #lines: string[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  text = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    (async () => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        this.text += chunk;
        this.#pending += chunk;
        for (let nl = this.#pending.indexOf("\n"); nl >= 0; nl = this.#pending.indexOf("\n")) {
          this.#lines.push(this.#pending.slice(0, nl));
          this.#pending = this.#pending.slice(nl + 1);
        }
        this.#wake?.();
      }
      this.#ended = true;
      this.#wake?.();
    })();
  }

  /** The next line; fails when none comes within `ms`, or the stream ends first. */
  async next(ms = WAIT_MS): Promise<string> {
    const deadline = Date.now() + ms;
    while (this.#lines.length === 0) {
      if (this.#ended) throw new Error(`stream ended; it said: ${this.text}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line within ${ms / 1000} s; it said: ${this.text}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#wake = r;
        timer = setTimeout(r, left);
      });
      clearTimeout(timer);
    }
    return this.#lines.shift()!;
  }

  /** Waits for a line containing `needle` (skipping others), up to `ms` in all. */
  async find(needle: string, ms = WAIT_MS): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const line = await this.next(Math.max(0, deadline - Date.now())).catch((err) => {
        throw new Error(`no line containing ${JSON.stringify(needle)}: ${err.message}`);
      });
      if (line.includes(needle)) return line;
    }
  }
}

/** A bronze process holding the embedded catalog (tests/metadata/_embedded_holder.ts). */
class Holder {
  readonly out: Lines;
  readonly err: Lines;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  ready = "";

  readonly state: { exited: boolean };

  private constructor(readonly child: Deno.ChildProcess) {
    this.state = watch(child);
    this.out = new Lines(child.stdout);
    this.err = new Lines(child.stderr);
    this.#stdin = child.stdin.getWriter();
  }

  static async start(stateDir: string, ...flags: "--long"[]): Promise<Holder> {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", HOLDER, stateDir, ...flags],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const h = new Holder(child);
    h.ready = await h.out.next();
    return h;
  }

  get pid(): number {
    return this.child.pid;
  }

  async ask(line: string): Promise<string> {
    assert.ok(!line.includes("\n"), "one command per line");
    await this.#stdin.write(new TextEncoder().encode(`${line}\n`));
    return await this.out.next();
  }

  async rows(sql: string): Promise<Record<string, unknown>[]> {
    const answer = await this.ask(`sql ${sql}`);
    assert.match(answer, /^ok /);
    return JSON.parse(answer.slice(3));
  }

  async close(): Promise<number> {
    assert.equal(await this.ask("close"), "closed");
    await this.#stdin.close().catch(() => {});
    return (await within(this.child.status, `holder ${this.pid} exiting once closed`)).code;
  }

  async kill(): Promise<void> {
    this.child.kill("SIGKILL");
    await within(this.child.status, `holder ${this.pid} exiting on SIGKILL`);
    await this.#stdin.close().catch(() => {});
  }
}

/** This test plays an owner: it holds the state dir's catalog lock, its record the line given. */
async function holdLock(dir: string, record: string): Promise<Deno.FsFile> {
  const lock = await Deno.open(join(dir, "catalog.lock"), {
    read: true,
    write: true,
    create: true,
  });
  assert.equal(await lock.tryLock(true), true);
  await lock.write(new TextEncoder().encode(`${record}\n`));
  return lock;
}

/** Whether this process could take the state dir's catalog lock (it lets go at once). */
async function lockFree(dir: string): Promise<boolean> {
  const f = await Deno.open(join(dir, "catalog.lock"), { read: true, write: true, create: true });
  try {
    return await f.tryLock(true);
  } finally {
    f.close();
  }
}

/** Whether a child has exited, readable at any moment without waiting for it. */
function watch(child: Deno.ChildProcess): { exited: boolean } {
  const state = { exited: false };
  child.status.then(() => (state.exited = true));
  return state;
}

function partition(datasetId: number, start: number, end: number) {
  return {
    datasetId,
    ledgerStart: start,
    ledgerEnd: end,
    rowCount: end - start + 1,
    byteSize: 1234,
    checksum: `sha256:${start.toString(16).padStart(64, "0")}`,
    storagePath: `testnet/pre_p23/v1/ledgers_lcm_raw/range=${start}-${end}/part.parquet`,
    storageUri: `file:///data/range=${start}-${end}/part.parquet`,
    firstPreviousLedgerHash: "0".repeat(64),
    lastLedgerHash: "f".repeat(64),
    producerVersion: "bronze@0.1.0",
    producerGitSha: "deadbeef",
    sourceType: "archive",
    sourceLocation: "/lake",
    quality: { tx_count: 7 },
  };
}

Deno.test("a second process connects to the owner's embedded catalog instead of waiting for its lock", async () => {
  await using dir = await stateDir();
  const owner = await Holder.start(dir.path);
  assert.equal(owner.ready, `ready owner ${owner.pid}`);
  // Once migrated, the owner says where it serves, in its lock file.
  const record = await readLockRecord(join(dir.path, "catalog.lock"));
  assert.equal(record?.pid, owner.pid);
  assert.match(record?.address ?? "", /^127\.0\.0\.1:\d+$/);

  const notes: string[] = [];
  const catalog = await openReadyCatalog({ stateDir: dir.path, log: (l) => notes.push(l) });
  assert.equal(catalog.embeddedRole, "client");
  assert.equal(catalog.embeddedOwnerPid, owner.pid);
  assert.equal(
    catalog.label,
    `embedded catalog at ${join(dir.path, "catalog")} (served by bronze process ${owner.pid})`,
  );
  // It got its catalog while the owner, alive, holds the lock: it did not wait for that lock.
  assert.equal(await lockFree(dir.path), false);
  assert.equal(owner.state.exited, false);
  assert.deepEqual(notes, [], "no wait, and no migration by a client");

  // A client reads and writes the one catalog.
  const writer = new CatalogWriter(catalog);
  const id = await writer.ensureDataset(DATASET);
  await writer.recordPartition(partition(id, 1, 100));
  assert.deepEqual(
    await owner.rows("SELECT ledger_start, ledger_end FROM _meta_lineage"),
    [{ ledger_start: 1, ledger_end: 100 }],
  );
  assert.equal((await writer.findPartition(id, 1, 100))?.ledgerEnd, 100);

  // A client's close leaves the owner serving, and anyone else connecting.
  await catalog.close();
  assert.deepEqual(await owner.rows("SELECT 1 AS one"), [{ one: 1 }]);
  const again = await openCatalog({ stateDir: dir.path });
  assert.equal(again.embeddedRole, "client");
  await again.close();

  assert.equal(await owner.close(), 0);
  // Gone: the lock is free and the record no longer offers an address.
  assert.equal(await lockFree(dir.path), true);
  assert.deepEqual(await readLockRecord(join(dir.path, "catalog.lock")), {
    pid: owner.pid,
    address: undefined,
  });
});

Deno.test("during a copy on the embedded catalog, checkpoint show, coverage and verify answer from the copier's catalog, and an overlapping copy is refused naming it", async () => {
  const source = await syntheticLake({
    network: "testnet",
    start: 1,
    count: 300,
    lcmVersion: 2,
    ledgerBytes: 1024,
  });
  await using dir = await stateDir();
  await using out = await tempDir();
  const env = {
    SOURCE_URL: source,
    STORAGE_URL: out.path,
    NETWORK: "testnet",
    LEDGER_START: "1",
    LEDGER_END: "300",
    PARTITION_SIZE: "100",
    CONCURRENCY: "1",
    PROGRESS_INTERVAL: "0",
    STATE_DIR: dir.path,
  };
  // Paused after its second catalog commit, before that partition's checkpoint is saved.
  const copier = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "copy"],
    env: { ...env, BRONZE_FAILPOINT: "after-catalog:2:pause" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const copierErr = new Lines(copier.stderr);
  const copierState = watch(copier);
  try {
    await copierErr.find("[failpoint] paused at after-catalog:2");

    const show = await runCli(["checkpoint", "show"], { env });
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^last committed ledger {2}100$/m);
    assert.match(
      show.stdout,
      /^catalog {16}holds 1-200 contiguously: 100 ledgers beyond the checkpoint/m,
    );
    assert.equal(show.stderr, "");

    const coverage = await runCli(["coverage", "--json"], { env });
    assert.equal(coverage.code, 0, coverage.stderr);
    const report = JSON.parse(coverage.stdout);
    assert.match(report.catalog, new RegExp(`served by bronze process ${copier.pid}\\)$`));
    const [held] = report.datasets;
    assert.deepEqual([held.first_ledger, held.last_ledger, held.partitions], [1, 200, 2]);

    const verify = await runCli(["verify"], { env });
    assert.equal(verify.code, 0, verify.stderr + verify.stdout);

    const second = await runCli(["copy"], { env: { ...env, COPIER_ID: "second-copier" } });
    assert.equal(second.code, 1, second.stderr);
    assert.match(
      second.stderr,
      new RegExp(`being copied by copier bronze-copier \\(host \\S+, pid ${copier.pid},`),
    );

    // All of it answered by the copier's catalog while the copier, paused, held the lock.
    assert.equal(copierState.exited, false);
    assert.equal(await lockFree(dir.path), false);
  } finally {
    copier.kill("SIGKILL");
    await copier.status;
  }
});

Deno.test("an owner that exits while a client is connected: the client's next query fails with one clear line; the next process owns the catalog", async () => {
  await using dir = await stateDir();
  const owner = await Holder.start(dir.path);
  const catalog = await openReadyCatalog({ stateDir: dir.path });
  const writer = new CatalogWriter(catalog);
  const id = await writer.ensureDataset(DATASET);
  await writer.recordPartition(partition(id, 1, 100));

  assert.equal(await owner.close(), 0);
  assert.match(
    owner.err.text,
    new RegExp(
      `\\[catalog\\] closing the embedded catalog while other bronze processes still use it ` +
        `\\(bronze-${Deno.pid}\\): their next catalog query fails\n`,
    ),
  );
  const lost = `lost the embedded catalog at ${
    join(dir.path, "catalog")
  }: bronze process ${owner.pid}, which served it, has exited; run this command again`;
  await assert.rejects(() => writer.findPartition(id, 1, 100), { message: lost });
  await assert.rejects(() => writer.recordPartition(partition(id, 101, 200)), { message: lost });
  await catalog.close();

  // The lock is free: the next process owns the catalog, with what the client committed.
  const next = await openReadyCatalog({ stateDir: dir.path });
  try {
    assert.equal(next.embeddedRole, "owner");
    assert.equal((await new CatalogWriter(next).findPartition(id, 1, 100))?.ledgerEnd, 100);
  } finally {
    await next.close();
  }
});

Deno.test("a SIGKILLed owner: its clients fail with one clear line, and its stale lock is taken over with everything committed", async () => {
  await using dir = await stateDir();
  const owner = await Holder.start(dir.path);
  const catalog = await openReadyCatalog({ stateDir: dir.path });
  const writer = new CatalogWriter(catalog);
  const id = await writer.ensureDataset(DATASET);
  await writer.recordPartition(partition(id, 1, 100));

  await owner.kill();
  // The record still names the dead owner and its address: a stale lock.
  const stale = await readLockRecord(join(dir.path, "catalog.lock"));
  assert.equal(stale?.pid, owner.pid);
  assert.ok(stale?.address);
  await assert.rejects(() => writer.findPartition(id, 1, 100), {
    message: `lost the embedded catalog at ${
      join(dir.path, "catalog")
    }: bronze process ${owner.pid}, which served it, has exited; run this command again`,
  });
  await catalog.close();

  const notes: string[] = [];
  const next = await openReadyCatalog({ stateDir: dir.path, log: (l) => notes.push(l) });
  try {
    assert.equal(next.embeddedRole, "owner");
    assert.deepEqual(notes, []);
    assert.equal((await new CatalogWriter(next).findPartition(id, 1, 100))?.ledgerEnd, 100);
    assert.equal((await readLockRecord(join(dir.path, "catalog.lock")))?.pid, Deno.pid);
  } finally {
    await next.close();
  }
});

Deno.test("waiting for an owner that is still starting is announced, and a lock let go meanwhile is taken", async () => {
  await using dir = await stateDir();
  // This test plays an owner that took the lock and is still starting: no address yet.
  const lock = await holdLock(dir.path, `{"pid":${Deno.pid}}`);

  const notes: string[] = [];
  const opening = startEmbeddedCatalog(dir.path, (l) => notes.push(l));
  await until(
    () => notes.length > 0,
    "the opening process announcing its wait for the starting owner",
  );
  assert.deepEqual(notes, [
    `waiting for bronze process ${Deno.pid}, which is opening the embedded catalog at ${
      join(dir.path, "catalog")
    }, to serve it (up to 60 s)`,
  ]);
  lock.close(); // the would-be owner gives up
  const embedded = await opening;
  try {
    assert.equal(embedded.role, "owner");
    assert.equal(embedded.ownerPid, Deno.pid);
  } finally {
    await embedded.stop();
  }
});

Deno.test("an owner that never serves: the wait ends with an error naming it", async () => {
  await using dir = await stateDir();
  // What a bronze from before shared catalogs writes.
  const lock = await holdLock(dir.path, `${Deno.pid}`);
  try {
    const notes: string[] = [];
    await assert.rejects(
      () => startEmbeddedCatalog(dir.path, (l) => notes.push(l), { waitMs: 2000 }),
      {
        message: `embedded catalog at ${
          join(dir.path, "catalog")
        } is locked by bronze process ${Deno.pid} (${
          join(dir.path, "catalog.lock")
        }), which did not start serving it within 2 s; wait for it to exit, or use a PostgreSQL catalog (--catalog)`,
      },
    );
    assert.equal(notes.length, 1);
    assert.match(notes[0], /^waiting for bronze process \d+, .* \(up to 2 s\)$/);
  } finally {
    lock.close();
  }
});

Deno.test("an owner whose server hangs up on connecting clients: opening starts over, then fails with one clear line", async () => {
  await using dir = await stateDir();
  // A live "owner" (this process) whose advertised server drops every connection it reads from.
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const lock = await holdLock(
    dir.path,
    `{"pid":${Deno.pid},"address":"127.0.0.1:${server.addr.port}"}`,
  );
  let startups = 0;
  const serving = (async () => {
    for await (const conn of server) {
      const buf = new Uint8Array(1024);
      conn.read(buf).then((n) => {
        if (n) startups++;
        conn.close();
      }).catch(() => {});
    }
  })();
  try {
    await assert.rejects(() => openCatalog({ stateDir: dir.path, log: () => {} }), {
      message: `lost the embedded catalog at ${
        join(dir.path, "catalog")
      }: bronze process ${Deno.pid}, which served it, has exited; run this command again`,
    });
    assert.equal(startups, 3, "three attempts");
  } finally {
    server.close();
    await serving.catch(() => {});
    lock.close();
  }
});

Deno.test("a long-running process (a copy) does not become the client of a shorter-lived owner: it waits, says so, and then runs the catalog itself", async () => {
  await using dir = await stateDir();
  const owner = await Holder.start(dir.path); // a short command, e.g. checkpoint show
  const notes: string[] = [];
  let settled = false;
  const opening = openReadyCatalog({
    stateDir: dir.path,
    holdsLong: true,
    log: (l) => notes.push(l),
  }).finally(() => (settled = true));
  await until(
    () => notes.length > 0,
    "the long-running process announcing its wait for the shorter-lived owner",
  );
  assert.deepEqual(notes, [
    `waiting for bronze process ${owner.pid} to close the embedded catalog at ${
      join(dir.path, "catalog")
    }, to run it here rather than depend on that shorter-lived process (so far 1 s)`,
  ]);
  assert.equal(settled, false);
  assert.equal(owner.state.exited, false);
  assert.equal(await owner.close(), 0);
  const catalog = await opening;
  try {
    assert.equal(catalog.embeddedRole, "owner");
    const record = await readLockRecord(join(dir.path, "catalog.lock"));
    assert.equal(record?.pid, Deno.pid);
    assert.equal(record?.long, true);
    assert.match(record?.address ?? "", /^127\.0\.0\.1:\d+$/);
    // Short commands are its clients, and so is another long-running process.
    const short = await Holder.start(dir.path);
    assert.equal(short.ready, `ready client ${Deno.pid}`);
    assert.equal(await short.close(), 0);
    const long = await Holder.start(dir.path, "--long");
    assert.equal(long.ready, `ready client ${Deno.pid}`);
    assert.equal(await long.close(), 0);
  } finally {
    await catalog.close();
  }
});

Deno.test("two processes writing at once: their transactions on the one backend never interleave", async () => {
  await using dir = await stateDir();
  const owner = await Holder.start(dir.path);
  const catalog = await openReadyCatalog({ stateDir: dir.path });
  try {
    assert.equal(catalog.embeddedRole, "client");
    await poolOf(catalog).query(
      `CREATE TABLE ${LOAD_TABLE} (who text, i int, step int, txid bigint)`,
    );
    const n = 150;
    const [answer] = await Promise.all([
      owner.ask(`load owner ${n}`),
      transactionLoad(catalog, "client", n),
    ]);
    assert.equal(answer, "loaded");
    const { rows } = await poolOf(catalog).query(
      `SELECT who, i, array_agg(step ORDER BY step) AS steps, count(DISTINCT txid)::int AS ids
       FROM ${LOAD_TABLE} GROUP BY who, i ORDER BY who, i`,
    );
    const expected = [];
    for (const who of ["client", "owner"]) {
      for (let i = 0; i < n; i++) if (i % 3 !== 2) expected.push({ who, i, steps: [1, 2], ids: 1 });
    }
    assert.deepEqual(rows, expected);
  } finally {
    await catalog.close();
    await owner.close();
  }
});

Deno.test("the owner's query that waits over a second for another process's open transaction says what it waits for", async () => {
  await using dir = await stateDir();
  const notes: string[] = [];
  const catalog = await openReadyCatalog({ stateDir: dir.path, log: (l) => notes.push(l) });
  notes.length = 0; // the migrations it applied
  const client = await Holder.start(dir.path);
  try {
    assert.equal(client.ready, `ready client ${Deno.pid}`);
    assert.equal(await client.ask("begin"), "began");
    // The one backend is the client's until its transaction ends.
    const query = dbOf(catalog).query("SELECT 1 AS one");
    await until(
      () => notes.length > 0,
      "the owner's query announcing its wait for the client's transaction",
    );
    assert.match(
      notes[0],
      new RegExp(
        `^waiting for bronze-${client.pid} to end its catalog transaction ` +
          `\\(the embedded catalog runs one at a time; waiting since \\S+Z\\)$`,
      ),
    );
    assert.equal(await client.ask("commit"), "committed");
    assert.deepEqual(await query, [{ one: 1 }]);
    assert.equal(notes.length, 1);
  } finally {
    await client.close();
    await catalog.close();
  }
});

/** One protocol message: type byte, length, body. */
function message(type: string, ...parts: (string | number[])[]): Uint8Array {
  const body: number[] = [];
  for (const p of parts) {
    if (typeof p === "string") body.push(...new TextEncoder().encode(p), 0);
    else body.push(...p);
  }
  const msg = new Uint8Array(5 + body.length);
  msg[0] = type.charCodeAt(0);
  new DataView(msg.buffer).setInt32(1, 4 + body.length);
  msg.set(body, 5);
  return msg;
}

/** Reads backend messages up to ReadyForQuery. */
function untilReady(conn: Deno.Conn): Promise<{ type: string; body: Uint8Array }[]> {
  return untilMessage(conn, "Z");
}

/** Reads backend messages up to one of type `last` (bounded: a server that never sends it fails). */
async function untilMessage(
  conn: Deno.Conn,
  last: string,
): Promise<{ type: string; body: Uint8Array }[]> {
  const got: { type: string; body: Uint8Array }[] = [];
  let buf = new Uint8Array(0);
  const chunk = new Uint8Array(65536);
  for (;;) {
    while (buf.length >= 5) {
      const len = new DataView(buf.buffer, buf.byteOffset).getInt32(1);
      if (buf.length < 1 + len) break;
      const type = String.fromCharCode(buf[0]);
      got.push({ type, body: buf.slice(5, 1 + len) });
      buf = buf.slice(1 + len);
      if (type === last) return got;
    }
    const n = await within(conn.read(chunk), `the server's reply up to a message ${last}`);
    if (n === null) throw new Error("connection closed");
    const next = new Uint8Array(buf.length + n);
    next.set(buf);
    next.set(chunk.subarray(0, n), buf.length);
    buf = next;
  }
}

Deno.test("an extended-protocol query split over several writes keeps the backend: another connection's query waits, and each gets its own result", async () => {
  await using dir = await stateDir();
  const notes: string[] = [];
  const catalog = await openReadyCatalog({ stateDir: dir.path, log: (l) => notes.push(l) });
  notes.length = 0; // the migrations it applied
  try {
    const address = (await readLockRecord(join(dir.path, "catalog.lock")))!.address!;
    const [hostname, port] = address.split(":");
    const conn = await Deno.connect({ hostname, port: Number(port) });
    try {
      const startup = new TextEncoder().encode("user\0postgres\0database\0postgres\0\0");
      const packet = new Uint8Array(8 + startup.length);
      new DataView(packet.buffer).setInt32(0, packet.length);
      new DataView(packet.buffer).setInt32(4, 196608);
      packet.set(startup, 8);
      await conn.write(packet);
      await untilReady(conn);

      // Parse, then Flush: ParseComplete comes back without a ReadyForQuery, so the unit is open
      // and the unnamed statement belongs to this connection once the reply is here.
      await conn.write(
        new Uint8Array([...message("P", "", "SELECT 'first'::text AS a", [0, 0]), ...message("H")]),
      );
      await untilMessage(conn, "1");
      const other: Promise<{ rows: unknown[] }> = poolOf(catalog).query(
        "SELECT $1::text AS b",
        ["second"],
      );
      let settled = false;
      other.finally(() => (settled = true)).catch(() => {});
      // The server says its own process's query waits for the backend this unit holds.
      await until(
        () =>
          notes.some((n) => n.startsWith("waiting for a client to end its catalog transaction")),
        "the other connection's query announcing that it waits for this connection's unit",
      );
      assert.equal(settled, false, "another connection ran inside this one's unit");
      // Bind, Describe, Execute, Sync: the unit ends.
      await conn.write(
        new Uint8Array([
          ...message("B", "", "", [0, 0, 0, 0, 0, 0]),
          ...message("D", [0x50], ""), // Describe the portal
          ...message("E", "", [0, 0, 0, 0]),
          ...message("S"),
        ]),
      );
      const reply = await untilReady(conn);
      const row = reply.find((m) => m.type === "D")!;
      assert.equal(new TextDecoder().decode(row.body.slice(6)), "first");
      const field = reply.find((m) => m.type === "T")!;
      assert.equal(new TextDecoder().decode(field.body.slice(2, 3)), "a");
      assert.deepEqual((await within(other, "the other connection's result")).rows, [
        { b: "second" },
      ]);
      assert.equal(notes.length, 1, notes.join("\n"));
      await conn.write(message("X"));
    } finally {
      conn.close();
    }
  } finally {
    await catalog.close();
  }
});

Deno.test("session advisory locks belong to the one backend: a dead client's lock stays granted, and anyone's try-lock of it succeeds", async () => {
  await using dir = await stateDir();
  const owner = await Holder.start(dir.path);
  const client = await Holder.start(dir.path);
  try {
    assert.equal(client.ready, `ready client ${owner.pid}`);
    assert.deepEqual(await client.rows("SELECT pg_advisory_lock(4242, 7)::text AS l"), [{ l: "" }]);
    await client.kill();
    const held = "SELECT count(*)::int AS n FROM pg_locks " +
      "WHERE locktype = 'advisory' AND classid = 4242 AND objid = 7 AND granted";
    assert.deepEqual(await owner.rows(held), [{ n: 1 }], "released with its process");
    assert.deepEqual(
      await owner.rows("SELECT pg_try_advisory_lock(4242, 7) AS got"),
      [{ got: true }],
    );
  } finally {
    await owner.close();
  }
});

Deno.test("a client never migrates: it refuses a catalog served with an older schema, naming its owner", async () => {
  await using dir = await stateDir();
  const owner = await Holder.start(dir.path);
  try {
    const [last] = await owner.rows("SELECT name FROM pgmigrations ORDER BY id DESC LIMIT 1");
    await owner.rows(`DELETE FROM pgmigrations WHERE name = '${last.name}'`);
    await assert.rejects(() => openReadyCatalog({ stateDir: dir.path }), {
      message:
        `embedded catalog at ${
          join(dir.path, "catalog")
        } (served by bronze process ${owner.pid}) lacks 1 migration(s) of this bronze (${last.name}): ` +
        `an older bronze serves it; run this command again once bronze process ${owner.pid} has exited`,
    });
  } finally {
    await owner.close();
  }
});

Deno.test("the embedded catalog runs with a catalog-sized memory budget", async () => {
  await withCatalog("embedded", async (catalog) => {
    const { rows } = await poolOf(catalog).query(
      "SELECT current_setting('shared_buffers') AS sb, current_setting('temp_buffers') AS tb",
    );
    assert.deepEqual(rows, [{ sb: "8MB", tb: "1MB" }]);
  });
});
