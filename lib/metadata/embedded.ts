import { PGlite } from "@electric-sql/pglite";
import { btree_gist } from "@electric-sql/pglite/contrib/btree_gist";
import { basename, dirname, join } from "node:path";
import { BronzeError } from "../runtime/errors.ts";
import { processAlive } from "../runtime/process.ts";
import { sleep } from "../runtime/time.ts";

/**
 * The embedded catalog: PGlite stored under the state directory, served on 127.0.0.1 (ephemeral
 * port) by this module's PostgreSQL wire-protocol server, so the very same `pg` code path serves it
 * and a real PostgreSQL.
 *
 * PGlite is ONE single-user backend: two PGlite instances on one data directory would corrupt it.
 * So the first bronze process on a state dir takes an exclusive lock on `<state-dir>/catalog.lock`
 * (flock: the kernel drops it when the process dies, however it dies) and becomes the OWNER: it
 * runs PGlite, serves it, and once its schema is current records `{"pid","address"}` in the lock
 * file. Every other bronze process on that state dir is a CLIENT: it reads the address and connects
 * to the owner's server like to any PostgreSQL. A lock whose holder died is simply taken by the
 * next process (PGlite recovers the data directory from its WAL).
 *
 * One backend means one session, shared by every connection of every process:
 *
 * - The server hands the backend to one connection at a time, for a whole unit of work: from its
 *   first message up to the ReadyForQuery that ends it, and for as long as that connection has a
 *   transaction open (ReadyForQuery status T or E). So the extended protocol's unnamed statements
 *   and portals never mix, and a transaction sees no other connection's statements inside it: two
 *   connections' transactions run one after the other, never interleaved (which is also why a
 *   connection idle inside a transaction holds up all the others).
 * - Session state is shared: SET, prepared statements, temporary tables and advisory locks. A
 *   session advisory lock is the backend's, not the connection's: any connection's
 *   pg_advisory_lock of a key "held" by another connection is granted at once (re-entrant), and it
 *   is NOT released when the connection that took it closes or its process dies; only an unlock
 *   (from any connection) or the owner's exit releases it. Liveness of a claim on the embedded
 *   catalog must therefore come from its holder's pid (same host by construction), not from locks.
 * - When the owner exits, its clients lose the catalog: a query in flight fails with the owner's
 *   FATAL message, the next one with "connection refused"; catalog.ts words both as one line.
 */
export interface EmbeddedCatalog {
  /** Connection string of the serving process's socket server (no password; loopback only). */
  readonly url: string;
  readonly dataDir: string;
  /** "owner": this process runs PGlite and serves it; "client": another bronze process does. */
  readonly role: "owner" | "client";
  /** The bronze process that runs PGlite (this one when the role is "owner"). */
  readonly ownerPid: number;
  /**
   * Owner: records the server's address in the lock file, so that other bronze processes connect
   * to it instead of waiting; call it once the schema is current. Client: does nothing.
   */
  publish(): Promise<void>;
  /** Owner: stops serving (clients lose the catalog) and closes PGlite. Client: does nothing. */
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** How long a client waits for an owner that holds the lock but does not serve yet (ms). */
  waitMs?: number;
  /**
   * This process keeps the catalog for long (a copy). It is only ever the client of an owner that
   * does too: a shorter-lived owner (checkpoint show, coverage, verify, migrate) would take the
   * catalog away when it exits, so it waits for that one to close the catalog and owns it instead.
   */
  holdsLong?: boolean;
}

/** An owner is still starting (initdb on first use, migrations): give it this long. */
const OWNER_START_WAIT_MS = 60_000;
/** Any wait longer than this is announced: what it waits for, and for how long at most. */
const ANNOUNCE_AFTER_MS = 1_000;
/** An unbounded wait repeats its announcement this often, with the time waited so far. */
const REANNOUNCE_MS = 30_000;
/** How long stop() lets another process's open transaction finish before cutting it off. */
const STOP_GRACE_MS = 5_000;

/**
 * PGlite's default start parameters (PGlite.defaultStartParams) with a catalog-sized memory
 * budget. initdb writes shared_buffers = 128MB, and PGlite's shared memory lives in its wasm heap,
 * which is touched at start and never shrinks: 128 MB of resident memory for a catalog of a few
 * MB. 8 MB (1024 pages) holds the whole catalog of a 60-million-ledger backfill many times over.
 * `-F` (fsync off) is kept: PGlite's file system layer does not pass fsync to the OS anyway.
 */
export const PGLITE_START_PARAMS: readonly string[] = [
  "--single",
  "-F",
  "-O",
  "-j",
  "-c",
  "search_path=public",
  "-c",
  "exit_on_error=false",
  "-c",
  "log_checkpoints=false",
  "-c",
  "max_worker_processes=0",
  "-c",
  "max_parallel_workers=0",
  "-c",
  "max_parallel_workers_per_gather=0",
  "-c",
  "io_method=sync",
  "-c",
  "max_parallel_maintenance_workers=0",
  // the catalog's budget:
  "-c",
  "shared_buffers=8MB",
  "-c",
  "temp_buffers=1MB",
  "-c",
  "max_connections=20",
];

export async function startEmbeddedCatalog(
  stateDir: string,
  log: (line: string) => void = () => {},
  opts: EmbeddedOptions = {},
): Promise<EmbeddedCatalog> {
  const dataDir = join(stateDir, "catalog");
  try {
    await Deno.mkdir(stateDir, { recursive: true });
  } catch (err) {
    throw new BronzeError(`cannot create state directory ${stateDir}: ${(err as Error).message}`);
  }
  const lockPath = join(stateDir, "catalog.lock");
  const waitMs = opts.waitMs ?? OWNER_START_WAIT_MS;
  const holdsLong = opts.holdsLong ?? false;
  // The two waits: for an owner still starting (bounded), for a shorter-lived one to exit.
  let starting: { since: number; said: boolean } | undefined;
  let yielding: { since: number; said: number } | undefined;
  for (;;) {
    const file = await Deno.open(lockPath, { read: true, write: true, create: true });
    let owned = false;
    try {
      owned = await file.tryLock(true);
    } catch (err) {
      file.close();
      throw new BronzeError(`cannot lock ${lockPath}: ${(err as Error).message}`);
    }
    if (owned) return await startOwner(file, dataDir, log, holdsLong);
    file.close();
    // Another process holds the lock: connect to its server once it serves.
    const holder = await readLockRecord(lockPath);
    const alive = holder !== undefined && processAlive(holder.pid);
    if (alive && holder.address && await reachable(holder.address)) {
      if (!holdsLong || holder.long) return client(holder.pid, holder.address, dataDir);
      starting = undefined;
      yielding ??= { since: Date.now(), said: 0 };
      const waited = Date.now() - yielding.since;
      if (waited >= ANNOUNCE_AFTER_MS && Date.now() - yielding.said >= REANNOUNCE_MS) {
        yielding.said = Date.now();
        log(
          `waiting for bronze process ${holder.pid} to close the embedded catalog at ${dataDir}, ` +
            `to run it here rather than depend on that shorter-lived process (so far ` +
            `${Math.round(waited / 1000)} s)`,
        );
      }
      await sleep(200);
      continue;
    }
    yielding = undefined;
    starting ??= { since: Date.now(), said: false };
    const waited = Date.now() - starting.since;
    const who = alive ? `bronze process ${holder.pid}` : "another bronze process";
    if (waited >= waitMs) {
      throw new BronzeError(
        `embedded catalog at ${dataDir} is locked by ${who} (${lockPath}), which did not start ` +
          `serving it within ${Math.round(waitMs / 1000)} s; wait for it to exit, or use a ` +
          `PostgreSQL catalog (--catalog)`,
      );
    }
    if (!starting.said && waited >= ANNOUNCE_AFTER_MS) {
      starting.said = true;
      log(
        `waiting for ${who}, which is opening the embedded catalog at ${dataDir}, to serve it ` +
          `(up to ${Math.round(waitMs / 1000)} s)`,
      );
    }
    await sleep(100);
  }
}

function client(pid: number, address: string, dataDir: string): EmbeddedCatalog {
  return {
    url: `postgres://postgres@${address}/postgres?application_name=bronze-${Deno.pid}`,
    dataDir,
    role: "client",
    ownerPid: pid,
    publish: () => Promise.resolve(),
    stop: () => Promise.resolve(),
  };
}

async function startOwner(
  lock: Deno.FsFile,
  dataDir: string,
  log: (line: string) => void,
  holdsLong: boolean,
): Promise<EmbeddedCatalog> {
  let db: PGlite | undefined;
  let server: WireServer | undefined;
  try {
    // Who is starting, for the processes that will wait on us meanwhile.
    await writeLockRecord(lock, { pid: Deno.pid });
    if (!(await exists(join(dataDir, "PG_VERSION")))) {
      log(`creating embedded catalog at ${dataDir} (first use takes a few seconds)`);
      await createDataDir(dataDir);
    }
    db = await PGlite.create({
      dataDir,
      extensions: { btree_gist },
      startParams: [...PGLITE_START_PARAMS],
    });
    server = await WireServer.start(db, log);
  } catch (err) {
    await server?.stop().catch(() => {});
    await db?.close().catch(() => {});
    lock.close();
    if (err instanceof BronzeError) throw err;
    throw new BronzeError(`cannot open embedded catalog at ${dataDir}: ${(err as Error).message}`);
  }
  const address = `127.0.0.1:${server.port}`;
  let stopped = false;
  return {
    url: `postgres://postgres@${address}/postgres?application_name=bronze-${Deno.pid}`,
    dataDir,
    role: "owner",
    ownerPid: Deno.pid,
    async publish() {
      if (!stopped) {
        await writeLockRecord(lock, {
          pid: Deno.pid,
          address,
          ...(holdsLong ? { long: true } : {}),
        });
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        // No new client may find us from here on.
        await writeLockRecord(lock, { pid: Deno.pid }).catch(() => {});
        await server!.stop();
        await db!.close();
      } finally {
        lock.close();
      }
    },
  };
}

// ---- creating a catalog ------------------------------------------------------------------------

const INITDB_WORKER = "bronze-catalog-initdb";

/**
 * Runs PGlite's initdb in a worker of its own, into a temporary folder renamed into place when
 * complete (a process killed during initdb leaves no half-made catalog behind; we hold the lock).
 * initdb runs a second PGlite instance and the initdb program, some 350 MB that a terminated
 * worker hands back to the OS at once, instead of garbage this process would carry all run long.
 */
async function createDataDir(dataDir: string): Promise<void> {
  const parent = dirname(dataDir);
  const prefix = `${basename(dataDir)}.initdb-`;
  for await (const e of Deno.readDir(parent)) {
    if (e.isDirectory && e.name.startsWith(prefix)) {
      await Deno.remove(join(parent, e.name), { recursive: true });
    }
  }
  const building = join(parent, `${prefix}${Deno.pid}`);
  const inWorker = await initdbInWorker(building);
  if (inWorker !== undefined) {
    // A worker that could not run at all (a runtime without this module as a worker entry):
    // initdb here instead, at the cost of the memory it leaves behind.
    await Deno.remove(building, { recursive: true }).catch(() => {});
    try {
      await initdb(building);
    } catch (err) {
      throw new Error(`initdb failed: ${(err as Error).message} (in a worker: ${inWorker})`);
    }
  }
  await Deno.rename(building, dataDir);
}

/** initdb in a worker: undefined when done, else why not. */
async function initdbInWorker(dataDir: string): Promise<string | undefined> {
  let worker: Worker;
  try {
    worker = new Worker(import.meta.url, { type: "module", name: INITDB_WORKER });
  } catch (err) {
    return (err as Error).message;
  }
  try {
    const outcome = await new Promise<{ error?: string }>((resolve) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        resolve({ error: e.message });
      };
      worker.postMessage(dataDir);
    });
    return outcome.error;
  } finally {
    worker.terminate();
  }
}

async function initdb(dataDir: string): Promise<void> {
  const db = await PGlite.create({ dataDir, startParams: [...PGLITE_START_PARAMS] });
  await db.close();
}

// This module in the initdb worker: initialise the folder it is given, then say so.
if ((globalThis as { name?: unknown }).name === INITDB_WORKER) {
  const scope = globalThis as unknown as {
    onmessage: (e: MessageEvent<string>) => void;
    postMessage: (m: unknown) => void;
  };
  scope.onmessage = async (e) => {
    try {
      await initdb(e.data);
      scope.postMessage({});
    } catch (err) {
      scope.postMessage({ error: (err as Error).message ?? String(err) });
    }
  };
}

// ---- the lock file ----------------------------------------------------------------------------

export interface LockRecord {
  pid: number;
  /** host:port of the owner's server; absent while it starts or migrates, and once it stops. */
  address?: string;
  /** The owner keeps the catalog for long (EmbeddedOptions.holdsLong). */
  long?: boolean;
}

/**
 * The record is one JSON line. It cannot be replaced by rename (the flock is on the file's inode,
 * which a rename would swap), so it is written in place: truncate, then one write of the whole
 * line. A reader sees the old line, nothing, or a prefix of the new one, and only accepts a
 * complete newline-terminated record: a prefix of a JSON object never parses.
 */
async function writeLockRecord(file: Deno.FsFile, record: LockRecord): Promise<void> {
  const bytes = new TextEncoder().encode(`${JSON.stringify(record)}\n`);
  await file.truncate(0);
  await file.seek(0, Deno.SeekMode.Start);
  for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
}

/** The lock file's record, or undefined when there is none (yet) or it is incomplete. */
export async function readLockRecord(path: string): Promise<LockRecord | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
  const end = text.indexOf("\n");
  if (end < 0) return undefined;
  const line = text.slice(0, end).trim();
  // A bronze from before shared catalogs wrote its bare pid.
  if (/^\d+$/.test(line)) return { pid: Number(line) };
  try {
    const r = JSON.parse(line);
    if (!Number.isSafeInteger(r?.pid) || r.pid <= 0) return undefined;
    if (r.address !== undefined && !/^127\.0\.0\.1:\d{1,5}$/.test(r.address)) return undefined;
    return { pid: r.pid, address: r.address, ...(r.long === true ? { long: true } : {}) };
  } catch {
    return undefined;
  }
}

async function reachable(address: string): Promise<boolean> {
  const [hostname, port] = address.split(":");
  try {
    (await Deno.connect({ hostname, port: Number(port) })).close();
    return true;
  } catch {
    return false;
  }
}

// ---- the wire-protocol server -----------------------------------------------------------------

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const PROTOCOL_3 = 196608;
const MAX_MESSAGE = 1 << 30;
const MAX_CONNECTIONS = 100;
const SYNC = new Uint8Array([0x53, 0, 0, 0, 4]);

/** One client connection: its unread bytes and what it told us at startup. */
class Connection {
  buf = new Uint8Array(0);
  started = false;
  /** The client's application_name (bronze-<pid>), for the owner's log. */
  application = "";
  /** Messages sent to the backend since its last ReadyForQuery (a unit not yet synced). */
  midUnit = false;
  /** It said Terminate. */
  terminated = false;
  constructor(readonly conn: Deno.TcpConn) {}

  append(chunk: Uint8Array): void {
    if (this.buf.length === 0) {
      this.buf = chunk.slice();
      return;
    }
    const next = new Uint8Array(this.buf.length + chunk.length);
    next.set(this.buf);
    next.set(chunk, this.buf.length);
    this.buf = next;
  }

  take(n: number): Uint8Array {
    const head = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return head;
  }

  async send(bytes: Uint8Array): Promise<boolean> {
    try {
      for (let off = 0; off < bytes.length;) off += await this.conn.write(bytes.subarray(off));
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * PostgreSQL's wire protocol over one PGlite. It replaces pglite-socket's server, which queues
 * each protocol message on its own: its units of work could interleave between connections (an
 * extended-protocol query split over two reads let another connection's Parse replace its unnamed
 * statement), it stalled for good after a failed message, and it made one PGlite call per
 * message. Here a connection's buffered messages go to PGlite in one call, and the backend stays
 * with that connection until the unit, or its transaction, ends.
 */
class WireServer {
  readonly #db: PGlite;
  readonly #listener: Deno.TcpListener;
  readonly #log: (line: string) => void;
  readonly #conns = new Map<Connection, Promise<void>>();
  #holder: Connection | undefined;
  #waiters: (() => void)[] = [];
  #closing = false;
  #broken: Error | undefined;
  #accepting: Promise<void>;

  private constructor(db: PGlite, listener: Deno.TcpListener, log: (line: string) => void) {
    this.#db = db;
    this.#listener = listener;
    this.#log = log;
    this.#accepting = this.#accept();
  }

  static start(db: PGlite, log: (line: string) => void): Promise<WireServer> {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return Promise.resolve(new WireServer(db, listener, log));
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return; // closed
      }
      if (this.#closing) {
        conn.close();
        continue;
      }
      const c = new Connection(conn);
      if (this.#conns.size >= MAX_CONNECTIONS) {
        await c.send(fatal("53300", "too many connections to the embedded catalog"));
        conn.close();
        continue;
      }
      this.#conns.set(c, this.#serve(c));
    }
  }

  async #serve(c: Connection): Promise<void> {
    try {
      c.conn.setNoDelay(true);
      const chunk = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await c.conn.read(chunk);
        if (n === null) break;
        c.append(chunk.subarray(0, n));
        if (!(await this.#drain(c))) break;
      }
    } catch {
      // the peer vanished: same as a close
    } finally {
      await this.#hangUp(c);
    }
  }

  /** Runs every complete message buffered; false when the connection must close. */
  async #drain(c: Connection): Promise<boolean> {
    for (;;) {
      if (!c.started) {
        if (c.buf.length < 8) return true;
        const view = new DataView(c.buf.buffer, c.buf.byteOffset, c.buf.byteLength);
        const len = view.getInt32(0);
        const code = view.getInt32(4);
        if (len < 8 || len > 10_000) return false;
        if (c.buf.length < len) return true;
        const msg = c.take(len);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          if (!(await c.send(new Uint8Array([0x4e])))) return false; // 'N': no encryption
          continue;
        }
        if (code !== PROTOCOL_3) return false; // a CancelRequest (unsupported), or garbage
        c.application = startupParam(msg, "application_name") ?? "";
        const out = await this.#run(c, msg);
        if (!out || !(await c.send(out))) return false;
        c.started = true;
        continue;
      }
      // Every complete message up to a Terminate, in one PGlite call.
      const view = new DataView(c.buf.buffer, c.buf.byteOffset, c.buf.byteLength);
      let end = 0;
      let terminate = false;
      while (end + 5 <= c.buf.length) {
        const len = view.getInt32(end + 1);
        if (len < 4 || len > MAX_MESSAGE) return false;
        if (end + 1 + len > c.buf.length) break;
        if (c.buf[end] === 0x58) { // 'X': Terminate
          terminate = c.terminated = true;
          break;
        }
        end += 1 + len;
      }
      if (end > 0) {
        const out = await this.#run(c, c.take(end));
        if (!out || !(await c.send(out))) return false;
      }
      return !terminate;
    }
  }

  /**
   * Runs messages of `c` on the backend, which it takes first if it does not hold it yet, and
   * keeps until a ReadyForQuery with status I (idle, no transaction open). Undefined once the
   * server is closing or the backend broke: the caller closes the connection.
   */
  async #run(c: Connection, messages: Uint8Array): Promise<Uint8Array | undefined> {
    if (!(await this.#acquire(c))) {
      await c.send(this.#farewell());
      return undefined;
    }
    let out: Uint8Array;
    try {
      out = await this.#exec(messages);
    } catch (err) {
      this.#broken = err as Error;
      this.#log(`the embedded catalog failed: ${(err as Error).message}`);
      this.#release(c);
      this.#wakeAll();
      await c.send(this.#farewell());
      return undefined;
    }
    const status = readyStatus(out);
    if (status === undefined) c.midUnit = true;
    else {
      c.midUnit = false;
      if (status === 0x49) this.#release(c); // 'I'
    }
    return out;
  }

  /** Takes the backend for `c` (waiting for its holder to let go); false once closing or broken. */
  async #acquire(c: Connection): Promise<boolean> {
    let announce: ReturnType<typeof setTimeout> | undefined;
    try {
      while (this.#holder !== c) {
        if (this.#closing || this.#broken) return false;
        if (this.#holder === undefined) {
          this.#holder = c;
          break;
        }
        // Only this process's own waits are its user's business (a client's wait shows there
        // as a slow query).
        if (announce === undefined && c.application === `bronze-${Deno.pid}`) {
          const since = Date.now();
          announce = setTimeout(() => {
            const holder = this.#holder;
            if (holder === undefined || holder === c) return;
            this.#log(
              `waiting for ${holder.application || "a client"} to end its catalog transaction ` +
                `(the embedded catalog runs one at a time; waiting since ${
                  new Date(since).toISOString()
                })`,
            );
          }, ANNOUNCE_AFTER_MS);
        }
        await new Promise<void>((wake) => this.#waiters.push(wake));
      }
      return !this.#broken;
    } finally {
      clearTimeout(announce);
    }
  }

  #wakeAll(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  async #exec(messages: Uint8Array): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let size = 0;
    await this.#db.runExclusive(() =>
      this.#db.execProtocolRawStream(messages, {
        // The data directory is a real one (NODEFS): nothing to sync from memory.
        syncToFs: false,
        onRawData: (data) => {
          chunks.push(data.slice()); // a view of the wasm heap, reused by the next call
          size += data.length;
        },
      })
    );
    if (chunks.length === 1) return chunks[0];
    const out = new Uint8Array(size);
    let off = 0;
    for (const ch of chunks) {
      out.set(ch, off);
      off += ch.length;
    }
    return out;
  }

  #release(c: Connection): void {
    if (this.#holder !== c) return;
    this.#holder = undefined;
    this.#waiters.shift()?.();
  }

  /** A closed connection: end its unfinished unit and roll back its transaction, then let go. */
  async #hangUp(c: Connection): Promise<void> {
    try {
      c.conn.close();
    } catch { /* already closed */ }
    if (this.#holder === c) {
      try {
        if (!this.#broken) {
          if (c.midUnit) await this.#exec(SYNC);
          if (this.#db.isInTransaction()) await this.#exec(simpleQuery("ROLLBACK"));
        }
      } catch (err) {
        this.#broken = err as Error;
      } finally {
        c.midUnit = false;
        this.#release(c);
      }
    }
    this.#conns.delete(c);
  }

  #farewell(): Uint8Array {
    return this.#broken
      ? fatal("XX000", `the embedded catalog failed: ${this.#broken.message}`)
      : fatal(
        "57P01",
        `the bronze process serving the embedded catalog (pid ${Deno.pid}) is exiting`,
      );
  }

  /**
   * Stops serving: lets another process's open transaction finish (up to STOP_GRACE_MS), then
   * tells every remaining connection why it is closed, and closes it.
   */
  async stop(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#wakeAll(); // whoever waits for the backend is told goodbye
    try {
      this.#listener.close();
    } catch { /* closed */ }
    await this.#accepting;
    // Our own pool has just ended its connections; the others belong to other processes.
    const others = [...this.#conns.keys()].filter((c) =>
      !c.terminated && c.application !== `bronze-${Deno.pid}`
    );
    if (others.length) {
      const who = [...new Set(others.map((c) => c.application || "a client"))].join(", ");
      this.#log(
        `closing the embedded catalog while other bronze processes still use it (${who}): ` +
          `their next catalog query fails`,
      );
    }
    const deadline = Date.now() + STOP_GRACE_MS;
    let announced = false;
    while (this.#holder !== undefined && Date.now() < deadline) {
      if (!announced && Date.now() + STOP_GRACE_MS - deadline >= ANNOUNCE_AFTER_MS) {
        announced = true;
        this.#log(
          `waiting up to ${STOP_GRACE_MS / 1000} s for ${
            this.#holder.application || "a client"
          } to end its catalog transaction`,
        );
      }
      await sleep(20);
    }
    const farewell = this.#farewell();
    for (const c of this.#conns.keys()) {
      // A connection in the middle of a unit gets its reply, or nothing: never a message inside
      // another's reply.
      if (this.#holder !== c) await c.send(farewell);
      try {
        c.conn.close();
      } catch { /* closed */ }
    }
    await Promise.all(this.#conns.values());
  }
}

/** Status byte of the ReadyForQuery ending `out`, or undefined when it does not end with one. */
function readyStatus(out: Uint8Array): number | undefined {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let off = 0;
  let last = -1;
  while (off + 5 <= out.length) {
    last = off;
    off += 1 + view.getInt32(off + 1);
  }
  if (last < 0 || off !== out.length) return undefined;
  return out[last] === 0x5a && out.length - last === 6 ? out[last + 5] : undefined;
}

function startupParam(msg: Uint8Array, name: string): string | undefined {
  const parts = new TextDecoder().decode(msg.subarray(8)).split("\0");
  for (let i = 0; i + 1 < parts.length; i += 2) if (parts[i] === name) return parts[i + 1];
  return undefined;
}

function simpleQuery(sql: string): Uint8Array {
  const text = new TextEncoder().encode(`${sql}\0`);
  const msg = new Uint8Array(5 + text.length);
  msg[0] = 0x51; // 'Q'
  new DataView(msg.buffer).setInt32(1, 4 + text.length);
  msg.set(text, 5);
  return msg;
}

/** An ErrorResponse of severity FATAL. */
function fatal(code: string, message: string): Uint8Array {
  const fields = new TextEncoder().encode(
    `SFATAL\0VFATAL\0C${code}\0M${message}\0\0`,
  );
  const msg = new Uint8Array(5 + fields.length);
  msg[0] = 0x45; // 'E'
  new DataView(msg.buffer).setInt32(1, 4 + fields.length);
  msg.set(fields, 5);
  return msg;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
