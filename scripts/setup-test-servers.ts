/**
 * Installs the Node-based test servers (s3rver and firebase-tools, whose storage emulator the gs://
 * tests drive) into `.test-servers/`, which is git-ignored. They are test-only tools, so they stay
 * out of deno.json and the lock file. Pinned versions; quick no-op when already installed.
 *
 *   deno run -A scripts/setup-test-servers.ts
 */
import { fileURLToPath } from "node:url";

export const TEST_SERVERS_DIR = fileURLToPath(new URL("../.test-servers/", import.meta.url));
const PACKAGES = ["s3rver@3.7.1", "firebase-tools@15.34.2"];

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Installs the servers unless both are already present. Safe to call from every test. */
export async function setupTestServers(): Promise<void> {
  const present = await Promise.all(
    ["s3rver", "firebase-tools"].map((p) =>
      exists(`${TEST_SERVERS_DIR}node_modules/${p}/package.json`)
    ),
  );
  if (present.every(Boolean)) return;
  // Minutes on a first run, and npm says nothing until it is done: say what is happening.
  console.error(
    `installing the test servers (${PACKAGES.join(", ")}) with npm into ${TEST_SERVERS_DIR}: ` +
      "once per clone, a few minutes…",
  );
  await Deno.mkdir(TEST_SERVERS_DIR, { recursive: true });
  const started = performance.now();
  const { code } = await new Deno.Command("npm", {
    args: ["install", "--prefix", TEST_SERVERS_DIR, "--no-audit", "--no-fund", ...PACKAGES],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) {
    throw new Error(
      `npm install of ${PACKAGES.join(" ")} into ${TEST_SERVERS_DIR} failed (exit ${code}): ` +
        "npm's output above says why",
    );
  }
  console.error(
    `test servers installed in ${((performance.now() - started) / 1000).toFixed(0)}s`,
  );
}

if (import.meta.main) {
  await setupTestServers();
  console.error(`test servers ready in ${TEST_SERVERS_DIR}`);
}
