/**
 * A private PostgreSQL cluster for a test that needs a server configured otherwise than the shared
 * one on 127.0.0.1:5432 (which must never be reconfigured): `initdb` as the `postgres` user into a
 * temp folder, its own port, started with `pg_ctl -w`, stopped and removed on dispose (or, if its
 * test process was killed, by the next run's sweep: leftovers.ts).
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { testTempDir } from "./leftovers.ts";

export interface PgCluster {
  readonly port: number;
  readonly dir: string;
  /** postgres://<user>@<host>:<port>/postgres */
  url(opts?: { user?: string; host?: string; params?: string }): string;
  /** `pg_ctl restart -m fast`: every session is ended, the server is back when it resolves. */
  restart(): Promise<void>;
  /** `pg_ctl stop -m fast`: down until start(). */
  stop(): Promise<void>;
  start(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface ClusterOptions {
  /** postgresql.conf lines added after initdb. */
  conf?: string[];
  /** pg_hba.conf, whole (the default trusts every local connection). */
  hba?: string[];
  /** Files copied into the data folder (certificates), readable by the server only. */
  files?: Record<string, string>;
  /** Roles created once it runs. */
  roles?: string[];
}

/** Whether a private cluster can be made here: root (to act as `postgres`) and the binaries. */
export async function clusterMissing(): Promise<string | undefined> {
  if (Deno.uid() !== 0) {
    return "a private PostgreSQL cluster needs root (to run initdb as postgres)";
  }
  for (const bin of ["initdb", "pg_ctl", "runuser"]) {
    const ok = await new Deno.Command("sh", { args: ["-c", `command -v ${bin}`], stdout: "null" })
      .output().then((o) => o.success, () => false);
    if (!ok) return `a private PostgreSQL cluster needs \`${bin}\``;
  }
  return undefined;
}

async function asPostgres(cmd: string[], what: string): Promise<string> {
  const out = await new Deno.Command("runuser", {
    args: ["-u", "postgres", "--", ...cmd],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${what} failed (exit ${out.code}): ${text.trim()}`);
  return text;
}

/** A free TCP port on 127.0.0.1 (bound and let go: the cluster binds it next). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export async function pgCluster(opts: ClusterOptions = {}): Promise<PgCluster> {
  const root = await testTempDir("pg");
  await Deno.chmod(root, 0o755);
  const dir = join(root, "data");
  const port = freePort();
  const chown = (path: string) =>
    new Deno.Command("chown", { args: ["-R", "postgres:postgres", path] }).output();
  let started = false;
  const start = () =>
    asPostgres(
      ["pg_ctl", "-D", dir, "-l", join(root, "log"), "-w", "-t", "60", "start"],
      "pg_ctl start",
    );
  const dispose = async () => {
    if (started) {
      await asPostgres(["pg_ctl", "-D", dir, "-m", "immediate", "stop"], "pg_ctl stop").catch(
        () => {},
      );
    }
    await rm(root, { recursive: true, force: true });
  };
  try {
    await chown(root);
    await asPostgres(
      ["initdb", "-D", dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
      "initdb",
    );
    for (const [name, text] of Object.entries(opts.files ?? {})) {
      await Deno.writeTextFile(join(dir, name), text, { mode: 0o600 });
    }
    const conf = [
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${root}'`,
      "fsync = off",
      ...(opts.conf ?? []),
    ];
    await Deno.writeTextFile(join(dir, "postgresql.conf"), conf.join("\n") + "\n", {
      append: true,
    });
    if (opts.hba) await Deno.writeTextFile(join(dir, "pg_hba.conf"), opts.hba.join("\n") + "\n");
    await chown(dir);
    await start();
    started = true;
    for (const role of opts.roles ?? []) {
      await asPostgres(
        [
          "psql",
          "-h",
          root,
          "-p",
          String(port),
          "-U",
          "postgres",
          "-c",
          `CREATE ROLE ${role} LOGIN`,
        ],
        `CREATE ROLE ${role}`,
      );
    }
  } catch (err) {
    await dispose();
    throw err;
  }
  return {
    port,
    dir,
    url: ({ user = "postgres", host = "127.0.0.1", params = "" } = {}) =>
      `postgres://${user}@${host}:${port}/postgres${params}`,
    restart: async () =>
      void await asPostgres(
        ["pg_ctl", "-D", dir, "-l", join(root, "log"), "-w", "-t", "60", "-m", "fast", "restart"],
        "pg_ctl restart",
      ),
    stop: async () =>
      void await asPostgres(
        ["pg_ctl", "-D", dir, "-w", "-t", "60", "-m", "fast", "stop"],
        "pg_ctl stop",
      ),
    start: async () => void await start(),
    [Symbol.asyncDispose]: dispose,
  };
}
