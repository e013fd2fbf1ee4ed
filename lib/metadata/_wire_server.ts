/**
 * PostgreSQL's wire protocol over one PGlite, on 127.0.0.1: how the embedded catalog's owner
 * serves its backend to every connection of every bronze process (embedded.ts says why one
 * backend is handed to one connection at a time).
 */
import type { PGlite } from "@electric-sql/pglite";
import { sleep } from "../runtime/time.ts";

/** Any wait longer than this is announced: what it waits for (the election's waits too). */
export const ANNOUNCE_AFTER_MS = 1_000;
/** How long stop() lets another process's open transaction finish before cutting it off. */
const STOP_GRACE_MS = 5_000;

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
export class WireServer {
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
