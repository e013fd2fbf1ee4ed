/**
 * Creating the embedded catalog's data directory, and the parameters PGlite starts with. Only the
 * owner (embedded.ts), under the lock, creates it.
 */
import { PGlite } from "@electric-sql/pglite";
import { basename, dirname, join } from "node:path";
import { environmentError } from "../runtime/errors.ts";
import { readTemplate } from "./_catalog_template.ts";

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

/**
 * Creates the data directory unless it holds a catalog already (first use): from the template
 * shipped with bronze (_catalog_template.ts), else by initdb. Returns the migrations a template
 * brought (already applied), undefined when nothing was created or initdb made it.
 */
export async function ensureDataDir(
  dataDir: string,
  log: (line: string) => void,
): Promise<string[] | undefined> {
  if (await exists(join(dataDir, "PG_VERSION"))) return undefined;
  const template = await readTemplate();
  if (template) {
    log(`creating embedded catalog at ${dataDir}`);
    await build(dataDir, (building) => template.unpack(building));
    return template.migrations;
  }
  log(`creating embedded catalog at ${dataDir} (first use takes a few seconds)`);
  await build(dataDir, createDataDir);
  return undefined;
}

/** A data directory made by PGlite's initdb alone (no template): the template's own maker. */
export async function initdbDataDir(dataDir: string): Promise<void> {
  await build(dataDir, createDataDir);
}

/**
 * Makes the data directory in a temporary folder renamed into place when complete: a process
 * killed meanwhile leaves no half-made catalog behind (we hold the lock), and the next one
 * removes what it left.
 */
async function build(dataDir: string, make: (building: string) => Promise<void>): Promise<void> {
  const parent = dirname(dataDir);
  const prefix = `${basename(dataDir)}.initdb-`;
  for await (const e of Deno.readDir(parent)) {
    if (e.isDirectory && e.name.startsWith(prefix)) {
      await Deno.remove(join(parent, e.name), { recursive: true });
    }
  }
  const building = join(parent, `${prefix}${Deno.pid}`);
  try {
    await make(building);
  } catch (err) {
    await Deno.remove(building, { recursive: true }).catch(() => {}); // what a full disk left
    throw err;
  }
  await Deno.rename(building, dataDir);
}

const INITDB_WORKER = "bronze-catalog-initdb";

/**
 * Runs PGlite's initdb in a worker of its own into `building` (a build without the template, or
 * making one). initdb runs a second PGlite instance and the initdb program, some 350 MB that a
 * terminated worker hands back to the OS at once, instead of garbage this process would carry.
 */
async function createDataDir(building: string): Promise<void> {
  const inWorker = await initdbInWorker(building);
  if (inWorker !== undefined) {
    // A worker that could not run at all (a runtime without this module as a worker entry):
    // initdb here instead, at the cost of the memory it leaves behind.
    await Deno.remove(building, { recursive: true }).catch(() => {});
    try {
      await initdb(building);
    } catch (err) {
      if (environmentError(err, { path: building }) !== null) throw err;
      throw new Error(`initdb failed: ${(err as Error).message} (in a worker: ${inWorker})`);
    }
  }
}

/**
 * initdb in a worker: undefined when done, else why not. The machine's refusals (a full disk)
 * are thrown as they came, to be said as such.
 */
async function initdbInWorker(dataDir: string): Promise<string | undefined> {
  let worker: Worker;
  try {
    worker = new Worker(import.meta.url, { type: "module", name: INITDB_WORKER });
  } catch (err) {
    return (err as Error).message;
  }
  try {
    const outcome = await new Promise<{ error?: string; errno?: unknown }>((resolve) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        resolve({ error: e.message });
      };
      worker.postMessage(dataDir);
    });
    // PGlite's ErrnoError does not survive the message; its number does.
    const refused = { name: "ErrnoError", errno: outcome.errno };
    if (environmentError(refused, { path: dataDir }) !== null) throw refused;
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
      const { errno } = err as { errno?: unknown };
      scope.postMessage({ error: (err as Error).message ?? String(err), errno });
    }
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
