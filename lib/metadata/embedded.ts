import { PGlite } from "@electric-sql/pglite";
import { btree_gist } from "@electric-sql/pglite/contrib/btree_gist";
import { dirname, join } from "node:path";
import { BronzeError, environmentError } from "../runtime/errors.ts";
import { processAlive } from "../runtime/process.ts";
import { sleep } from "../runtime/time.ts";
import { ensureDataDir, PGLITE_START_PARAMS } from "./_embedded_initdb.ts";
import { reachable, readLockRecord, writeLockRecord } from "./_embedded_lock.ts";
import { ANNOUNCE_AFTER_MS, WireServer } from "./_wire_server.ts";

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
 *   FATAL message, the next one with "connection refused"; catalog.ts words both as one line, or,
 *   for a copy (which reconnects), runs the election again: to the next owner, or this process.
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
   * Owner that created the catalog from the template shipped with bronze: the migrations the
   * template brought (already applied). Undefined otherwise.
   */
  readonly created?: readonly string[];
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
/** An unbounded wait repeats its announcement this often, with the time waited so far. */
const REANNOUNCE_MS = 30_000;
/** How often the lock file is looked at again while waiting for its holder to start or exit. */
const START_POLL_MS = 100;
const EXIT_POLL_MS = 200;

/**
 * The election. Each round looks at the lock (`look`) and finds one of three things: the lock is
 * free (this process takes it and owns the catalog), an owner serves (this process is its client,
 * unless it holds the catalog long and that owner does not), or a holder does not serve yet. The
 * two ways to wait are named states, each with its own clock, restarted whenever the state changes:
 *
 * - awaiting-start: the holder is still starting (initdb, migrations); bounded by `waitMs`,
 *   announced once.
 * - awaiting-exit: a shorter-lived owner serves, and this long-lived process waits to own the
 *   catalog itself; unbounded (that owner exits when its command ends), announced every 30 s.
 */
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
  let state: Waiting | undefined;
  for (;;) {
    const seen = await look(lockPath);
    if (seen.kind === "free") return await startOwner(seen.lock, dataDir, log, holdsLong);
    if (seen.kind === "serving") {
      if (!holdsLong || seen.long) return client(seen.pid, seen.address, dataDir);
      state = awaitExit(state, seen.pid, dataDir, log);
    } else {
      state = awaitStart(state, seen.who, { dataDir, lockPath, waitMs }, log);
    }
    await sleep(state.name === "awaiting-exit" ? EXIT_POLL_MS : START_POLL_MS);
  }
}

/** What one look at the lock finds. */
type Seen =
  /** This process took the lock. */
  | { kind: "free"; lock: Deno.FsFile }
  /** A live owner serves at `address`. */
  | { kind: "serving"; pid: number; address: string; long: boolean }
  /** The lock is held, but nothing serves (yet); `who` names the holder as far as it is known. */
  | { kind: "unserved"; who: string };

async function look(lockPath: string): Promise<Seen> {
  const file = await Deno.open(lockPath, { read: true, write: true, create: true });
  let owned = false;
  try {
    owned = await file.tryLock(true);
  } catch (err) {
    file.close();
    throw new BronzeError(`cannot lock ${lockPath}: ${(err as Error).message}`);
  }
  if (owned) return { kind: "free", lock: file };
  file.close();
  const holder = await readLockRecord(lockPath);
  const alive = holder !== undefined && processAlive(holder.pid);
  if (alive && holder.address && await reachable(holder.address)) {
    return { kind: "serving", pid: holder.pid, address: holder.address, long: !!holder.long };
  }
  return {
    kind: "unserved",
    who: alive ? `bronze process ${holder.pid}` : "another bronze process",
  };
}

/** A wait of the election: which, since when, and when it was last announced (0: never). */
type Waiting = { name: "awaiting-start" | "awaiting-exit"; since: number; said: number };

function enter(state: Waiting | undefined, name: Waiting["name"]): Waiting {
  return state?.name === name ? state : { name, since: Date.now(), said: 0 };
}

/** The holder does not serve yet: wait for it, up to `waitMs`. */
function awaitStart(
  prev: Waiting | undefined,
  who: string,
  at: { dataDir: string; lockPath: string; waitMs: number },
  log: (line: string) => void,
): Waiting {
  const state = enter(prev, "awaiting-start");
  const waited = Date.now() - state.since;
  if (waited >= at.waitMs) {
    throw new BronzeError(
      `embedded catalog at ${at.dataDir} is locked by ${who} (${at.lockPath}), which did not ` +
        `start serving it within ${Math.round(at.waitMs / 1000)} s; wait for it to exit, or use ` +
        `a PostgreSQL catalog (--catalog)`,
    );
  }
  if (state.said === 0 && waited >= ANNOUNCE_AFTER_MS) {
    state.said = Date.now();
    log(
      `waiting for ${who}, which is opening the embedded catalog at ${at.dataDir}, to serve it ` +
        `(up to ${Math.round(at.waitMs / 1000)} s)`,
    );
  }
  return state;
}

/** A shorter-lived owner serves: wait for it to close the catalog, to own it here. */
function awaitExit(
  prev: Waiting | undefined,
  pid: number,
  dataDir: string,
  log: (line: string) => void,
): Waiting {
  const state = enter(prev, "awaiting-exit");
  const waited = Date.now() - state.since;
  if (waited >= ANNOUNCE_AFTER_MS && Date.now() - state.said >= REANNOUNCE_MS) {
    state.said = Date.now();
    log(
      `waiting for bronze process ${pid} to close the embedded catalog at ${dataDir}, ` +
        `to run it here rather than depend on that shorter-lived process (so far ` +
        `${Math.round(waited / 1000)} s)`,
    );
  }
  return state;
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
  let created: string[] | undefined;
  try {
    // Who is starting, for the processes that will wait on us meanwhile.
    await writeLockRecord(lock, { pid: Deno.pid });
    created = await ensureDataDir(dataDir, log);
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
    // A full disk or a state dir not writable: the machine's, one line, exit 74.
    const env = environmentError(err, { path: dataDir, writing: true, dir: dirname(dataDir) });
    if (env) throw env;
    throw new BronzeError(`cannot open embedded catalog at ${dataDir}: ${(err as Error).message}`);
  }
  const address = `127.0.0.1:${server.port}`;
  let stopped = false;
  return {
    url: `postgres://postgres@${address}/postgres?application_name=bronze-${Deno.pid}`,
    dataDir,
    role: "owner",
    ownerPid: Deno.pid,
    created,
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
