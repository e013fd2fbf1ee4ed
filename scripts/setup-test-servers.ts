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
  await Deno.mkdir(TEST_SERVERS_DIR, { recursive: true });
  const { code, stderr } = await new Deno.Command("npm", {
    args: ["install", "--prefix", TEST_SERVERS_DIR, "--no-audit", "--no-fund", ...PACKAGES],
    stdout: "inherit",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `npm install of ${PACKAGES.join(" ")} into ${TEST_SERVERS_DIR} failed (exit ${code}): ${
        new TextDecoder().decode(stderr).trim()
      }`,
    );
  }
}

if (import.meta.main) {
  await setupTestServers();
  console.log(`test servers ready in ${TEST_SERVERS_DIR}`);
}
