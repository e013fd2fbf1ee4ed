/**
 * tests/support/leftovers.ts: what a killed test run made is swept by the next one; what a live
 * one (or the shared caches, or anything named without a pid) holds is never touched.
 */
import assert from "node:assert/strict";
import pg from "pg";
import { mkdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PG_ADMIN_URL, sweepDeadRuns, testTempDir } from "./leftovers.ts";
import { clusterMissing } from "./pg_cluster.ts";
import { MOUNTS_ABSENT } from "./mounts.ts";
import { processAlive } from "../../lib/runtime/process.ts";
import { Output } from "./wait.ts";

const here = (f: string) => new URL(f, import.meta.url).href;

/**
 * A test process that makes a temp folder, a database and (as root) a private cluster and a
 * tmpfs, then is killed.
 */
async function killedRun(cluster: boolean, mount: boolean) {
  const script = `
    import { createTestDatabase } from "${here("./catalogs.ts")}";
    import { testTempDir } from "${here("./leftovers.ts")}";
    import { pgCluster } from "${here("./pg_cluster.ts")}";
    import { tmpfs } from "${here("./mounts.ts")}";
    const dir = await testTempDir("killed");
    const db = await createTestDatabase();
    const c = ${cluster} ? await pgCluster() : undefined;
    const fs = ${mount} ? await tmpfs(64 << 10) : undefined;
    console.log(JSON.stringify({
      dir, db: db.name, cluster: c?.dir ?? null, port: c?.port ?? null, tmpfs: fs?.path ?? null,
    }));
    await new Promise(() => {});
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdout = new Output(child.stdout, "the test process to be killed");
  const [line] = await stdout.until(/^.*\n/);
  child.kill("SIGKILL");
  await child.status;
  return JSON.parse(line) as {
    dir: string;
    db: string;
    cluster: string | null;
    port: number;
    tmpfs: string | null;
  };
}

const exists = (path: string) => stat(path).then(() => true, () => false);

async function databases(): Promise<string[]> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    return (await c.query<{ datname: string }>("SELECT datname FROM pg_database")).rows.map(
      (r: { datname: string }) => r.datname,
    );
  } finally {
    await c.end();
  }
}

Deno.test("leftovers: a killed test run's temp folder, database, private cluster and tmpfs are swept; a live run's, the shared caches and names without a pid are not", async () => {
  // Not to be taken: this live process's folder (made first: this process's own sweep runs
  // then), a live process's (pid 1), the shared lake cache's name, and an old-style name.
  const mine = await testTempDir("mine");
  const cluster = !(await clusterMissing());
  const mount = !MOUNTS_ABSENT;
  const killed = await killedRun(cluster, mount);
  assert.ok(await exists(killed.dir));
  assert.ok((await databases()).includes(killed.db));
  const live = join(tmpdir(), "bronze-test-1-live-x");
  const cache = join(tmpdir(), "bronze-test-lakes-v1");
  const old = join(tmpdir(), `bronze-${crypto.randomUUID().slice(0, 6)}`);
  await mkdir(live, { recursive: true });
  await mkdir(cache, { recursive: true });
  await mkdir(old);
  try {
    const taken = await sweepDeadRuns();
    assert.ok(taken.includes(killed.dir), taken.join("\n"));
    assert.ok(taken.includes(killed.db), taken.join("\n"));
    assert.equal(await exists(killed.dir), false);
    assert.equal((await databases()).includes(killed.db), false);
    if (cluster) {
      // Its server was stopped: the port is free again.
      const l = Deno.listen({ hostname: "127.0.0.1", port: killed.port });
      l.close();
    }
    if (mount) {
      // Its tmpfs was unmounted, and its folder removed.
      assert.ok(!(await Deno.readTextFile("/proc/self/mounts")).includes(` ${killed.tmpfs} `));
      assert.equal(await exists(killed.tmpfs!), false);
    }
    for (const kept of [mine, live, cache, old]) assert.ok(await exists(kept), kept);
    // Whatever else it took belonged to processes that are gone too.
    for (const t of taken) {
      const pid = Number(/bronze[-_]test[-_](\d+)[-_]/.exec(t)?.[1]);
      assert.ok(pid && !processAlive(pid), t);
    }
  } finally {
    await rm(mine, { recursive: true });
    await rm(live, { recursive: true });
    await rm(old, { recursive: true });
  }
});
