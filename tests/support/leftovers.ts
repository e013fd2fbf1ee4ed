/**
 * What the tests make outside their own memory carries the test process's pid in its name, so a
 * run stopped with Ctrl+C (or killed) is cleaned up by the next one: temp folders
 * `$TMPDIR/bronze-test-<pid>-<what>-XXXXXX` (with the private clusters and mounts made in them)
 * and PostgreSQL databases `bronze_test_<pid>_<hex>`.
 * Several suites run at once on one machine (other worktrees), so a sweep takes only what belongs
 * to a process that is gone; names without a pid (the shared caches `bronze-test-lakes-v1`,
 * `bronze-test-embedded-template-v1`, and anything made by older code) are never touched.
 *
 * Every test process sweeps once, when it first makes a temp folder or a database;
 * `deno run -A tests/support/leftovers.ts --sweep` does the same by hand and says what it took.
 */
import pg from "pg";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processAlive } from "../../lib/runtime/process.ts";

export const PG_ADMIN_URL = Deno.env.get("TEST_PG_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

const DIR = /^bronze-test-(\d+)-/;
const DATABASE = /^bronze_test_(\d+)_[0-9a-f]+$/;

/** A new temp folder of this test process: `bronze-test-<pid>-<what>-XXXXXX`. */
export async function testTempDir(what = "tmp"): Promise<string> {
  await sweepLeftovers();
  return await mkdtemp(join(tmpdir(), `bronze-test-${Deno.pid}-${what}-`));
}

/** A new database name of this test process: `bronze_test_<pid>_<hex>`. */
export function testDatabaseName(): string {
  return `bronze_test_${Deno.pid}_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

let swept: Promise<string[]> | undefined;

/** Once per process: sweepDeadRuns(). */
export function sweepLeftovers(): Promise<string[]> {
  return swept ??= sweepDeadRuns();
}

/** What dead test processes left behind, removed; returns what it took. */
export async function sweepDeadRuns(): Promise<string[]> {
  return [...await sweepDirs(), ...await sweepDatabases()];
}

const dead = (pid: number) => pid !== Deno.pid && !processAlive(pid);

async function sweepDirs(): Promise<string[]> {
  const taken: string[] = [];
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    const pid = Number(DIR.exec(name)?.[1]);
    if (!pid || !dead(pid)) continue;
    const path = join(tmpdir(), name);
    await stopCluster(join(path, "data"));
    await unmountUnder(path);
    await rm(path, { recursive: true, force: true }).catch(() => {});
    taken.push(path);
  }
  return taken;
}

/** A private PostgreSQL cluster (pg_cluster.ts) outlives its test process: stop it first. */
async function stopCluster(data: string): Promise<void> {
  try {
    await stat(join(data, "postmaster.pid"));
  } catch {
    return;
  }
  await new Deno.Command("runuser", {
    args: ["-u", "postgres", "--", "pg_ctl", "-D", data, "-m", "immediate", "stop"],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => {});
}

/** A tmpfs or read-only bind mount (mounts.ts) outlives its test process too: unmount them. */
async function unmountUnder(path: string): Promise<void> {
  let table: string;
  try {
    table = await Deno.readTextFile("/proc/self/mounts");
  } catch {
    return;
  }
  // The mount point is the second field, with spaces and the like written as octal escapes.
  const points = table.split("\n").map((l) => l.split(" ")[1])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === path || p.startsWith(`${path}/`))
    .sort((a, b) => b.length - a.length); // the innermost first
  for (const point of points) {
    await new Deno.Command("umount", { args: [point], stdout: "null", stderr: "null" }).output()
      .catch(() => {});
  }
}

async function sweepDatabases(): Promise<string[]> {
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5000 });
  try {
    await admin.connect();
  } catch {
    return []; // no server: the tests that need one say so
  }
  const taken: string[] = [];
  try {
    const { rows } = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'bronze\\_test\\_%'",
    );
    for (const { datname } of rows) {
      const pid = Number(DATABASE.exec(datname)?.[1]);
      if (!pid || !dead(pid)) continue;
      // Another live suite may be sweeping the same one: whoever drops it, it goes.
      await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).then(
        () => taken.push(datname),
        () => {},
      );
    }
  } finally {
    await admin.end().catch(() => {});
  }
  return taken;
}

if (import.meta.main) {
  if (Deno.args[0] !== "--sweep") {
    console.error("usage: deno run -A tests/support/leftovers.ts --sweep");
    Deno.exit(2);
  }
  const taken = await sweepLeftovers();
  console.log(
    taken.length
      ? `swept what dead test runs left: ${taken.join(", ")}`
      : "nothing left behind by dead test runs",
  );
}
