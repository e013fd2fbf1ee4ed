/**
 * Starts the object-store emulators the tests run against, each on 127.0.0.1 with an ephemeral
 * port and its own temp directory. Callers must `await stop()` in a finally block.
 *
 * Both are Node programs installed by scripts/setup-test-servers.ts into .test-servers/ (done here
 * on first use). Neither enforces write preconditions; see precondition_server.ts for those.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setupTestServers, TEST_SERVERS_DIR } from "../../scripts/setup-test-servers.ts";
import { testTempDir } from "./leftovers.ts";

export interface RunningS3 {
  /** S3 endpoint for AWS_ENDPOINT_URL_S3 (path-style; any access key is accepted). */
  endpoint: string;
  stop(): Promise<void>;
}

export interface RunningGcs {
  /** Value for STORAGE_EMULATOR_HOST, e.g. http://127.0.0.1:PORT. Buckets exist implicitly. */
  host: string;
  stop(): Promise<void>;
}

/** The environment that points the S3 client at an s3rver (or s3rver-like) endpoint. */
export const s3Env = (endpoint: string): Record<string, string> => ({
  AWS_ENDPOINT_URL_S3: endpoint,
  S3_FORCE_PATH_STYLE: "true",
  AWS_ACCESS_KEY_ID: "S3RVER",
  AWS_SECRET_ACCESS_KEY: "S3RVER",
  AWS_REGION: "us-east-1",
});

/** Held while a test has set object-store variables in the environment (see withEnv). */
const ENV_LOCK = join(tmpdir(), "bronze-tests-env.lock");

/**
 * Runs fn with the object-store environment pointing at a test server, then restores it.
 *
 * `deno test --parallel` runs test files as workers of one process, and the environment is the
 * process's: without the lock, one file's store would meet another file's endpoint (a bucket
 * missing on the wrong server). The lock is a flock, which other workers' handles wait on; it
 * must not be nested.
 */
export async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const lock = await Deno.open(ENV_LOCK, { create: true, write: true });
  try {
    await lock.lock(true);
    const old = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
    for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
    try {
      return await fn();
    } finally {
      for (const [k, v] of Object.entries(old)) {
        v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
      }
    }
  } finally {
    lock.close(); // closing the last handle releases the flock
  }
}

/** s3rver with `buckets` created at start. */
export async function startS3rver(buckets: string[] = ["bronze-test"]): Promise<RunningS3> {
  await setupTestServers();
  const dir = await testTempDir("s3rver");
  const args = [
    `${TEST_SERVERS_DIR}node_modules/s3rver/bin/s3rver.js`,
    ...["--directory", dir, "--address", "127.0.0.1", "--port", "0", "--silent"],
    ...buckets.flatMap((b) => ["--configure-bucket", b]),
  ];
  // s3rver 3 signs with MD4-era crypto that OpenSSL 3 only offers through the legacy provider.
  const env = { NODE_OPTIONS: "--openssl-legacy-provider" };
  const server = await spawnAndWait(args, env, /listening on [^:]+:(\d+)/, dir);
  return { endpoint: `http://127.0.0.1:${server.port}`, stop: server.stop };
}

/** firebase-tools' Cloud Storage emulator, through tests/support/gcs-emulator.cjs. */
export async function startGcsEmulator(): Promise<RunningGcs> {
  await setupTestServers();
  // The emulator keeps blobs under os.tmpdir() and wipes them on stop: give it its own.
  const dir = await testTempDir("gcs-emulator");
  const launcher = fileURLToPath(new URL("./gcs-emulator.cjs", import.meta.url));
  const server = await spawnAndWait(
    [launcher, TEST_SERVERS_DIR],
    { TMPDIR: dir },
    /"port":(\d+)/,
    dir,
  );
  return { host: `http://127.0.0.1:${server.port}`, stop: server.stop };
}

/**
 * Runs `node args...`, waits until stdout matches `ready` (group 1 = port), and returns a stop()
 * that kills the process, waits for it, and removes `dir`. Output is kept for error messages.
 */
async function spawnAndWait(
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
  dir: string,
): Promise<{ port: number; stop(): Promise<void> }> {
  const child = new Deno.Command("node", {
    args,
    env,
    stdin: "piped", // the GCS launcher also exits when its stdin closes
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const { promise: started, resolve: onReady } = Promise.withResolvers<number>();
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      output += chunk;
      const m = ready.exec(output);
      if (m) onReady(Number(m[1]));
    }
  };
  const drained = Promise.all([collect(child.stdout), collect(child.stderr)]);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGTERM");
    } catch { /* already exited */ }
    await child.stdin.close().catch(() => {});
    await child.status;
    await drained;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const port = await Promise.race([
    started,
    child.status.then(() => null),
    new Promise<null>((r) => timer = setTimeout(() => r(null), 30_000)),
  ]);
  clearTimeout(timer);
  if (port === null) {
    await stop();
    throw new Error(`node ${args[0]} did not start: ${output.trim()}`);
  }
  return { port, stop };
}
