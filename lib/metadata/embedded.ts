import { PGlite } from "@electric-sql/pglite";
import { btree_gist } from "@electric-sql/pglite/contrib/btree_gist";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { join } from "node:path";
import { BronzeError } from "../errors.ts";

/**
 * The embedded catalog: PGlite stored under the state directory, served on 127.0.0.1 (ephemeral
 * port) through pglite-socket, so the very same `pg` code path serves it and a real PostgreSQL.
 *
 * PGlite is one single-user backend: two processes on one data directory would corrupt it, so the
 * directory is guarded by an exclusive lock file held for the life of the server.
 */
export interface EmbeddedCatalog {
  /** Connection string of the local socket server (no password; loopback only). */
  readonly url: string;
  readonly dataDir: string;
  stop(): Promise<void>;
}

const LOCK_WAIT_MS = 15_000;

export async function startEmbeddedCatalog(
  stateDir: string,
  log: (line: string) => void = () => {},
): Promise<EmbeddedCatalog> {
  const dataDir = join(stateDir, "catalog");
  try {
    await Deno.mkdir(stateDir, { recursive: true });
  } catch (err) {
    throw new BronzeError(`cannot create state directory ${stateDir}: ${(err as Error).message}`);
  }
  const lock = await acquireLock(join(stateDir, "catalog.lock"));
  let db: PGlite | undefined;
  let server: PGLiteSocketServer | undefined;
  try {
    const fresh = !(await exists(join(dataDir, "PG_VERSION")));
    if (fresh) {
      log(`creating embedded catalog at ${dataDir} (first use takes a few seconds)`);
    }
    db = await PGlite.create({ dataDir, extensions: { btree_gist } });
    // More than one connection: node-pg-migrate and the copier each hold one while the pool
    // serves the rest. pglite-socket keeps a transaction on the connection that opened it.
    server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 16 });
    await server.start();
  } catch (err) {
    await server?.stop().catch(() => {});
    await db?.close().catch(() => {});
    lock.close();
    if (err instanceof BronzeError) throw err;
    throw new BronzeError(`cannot open embedded catalog at ${dataDir}: ${(err as Error).message}`);
  }
  const url = `postgres://postgres@${server.getServerConn()}/postgres`;
  let stopped = false;
  return {
    url,
    dataDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await server!.stop();
        await db!.close();
      } finally {
        lock.close();
      }
    },
  };
}

async function acquireLock(path: string): Promise<Deno.FsFile> {
  const file = await Deno.open(path, { read: true, write: true, create: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  while (!(await file.tryLock(true))) {
    if (Date.now() > deadline) {
      const holder = (await Deno.readTextFile(path).catch(() => "")).trim();
      file.close();
      throw new BronzeError(
        `embedded catalog is in use by another bronze process${
          holder ? ` (pid ${holder})` : ""
        }: ` +
          `lock ${path}; wait for it, or use a PostgreSQL catalog (--catalog) for concurrent runs`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  return file;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
