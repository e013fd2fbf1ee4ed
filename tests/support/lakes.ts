import { rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeLake, type MakeLakeOptions } from "../../scripts/make-lake.ts";
import { testTempDir } from "./leftovers.ts";

/** The real sample lakes, read from ../shared (never copied into the project). */
export const SAMPLES = new URL("../../../shared/stellar-samples/", import.meta.url).pathname;
export const SAMPLES_ABSENT: string | false = await stat(join(SAMPLES, "testnet/.config.json"))
  .then(() => false as const)
  .catch(() => `real sample lakes not found at ${SAMPLES}`);
if (SAMPLES_ABSENT) console.log(`SKIPPED real-ledger tests: ${SAMPLES_ABSENT}`);

export type LakeSpec = Omit<MakeLakeOptions, "store" | "url">;

/**
 * A synthetic lake on local disk, made once per machine for a given spec and reused (lakes are
 * deterministic for a seed, and making one is the slow part of many tests). Built aside and
 * renamed into place, so parallel test files cannot see half a lake.
 */
export async function syntheticLake(spec: LakeSpec): Promise<string> {
  const id = [
    spec.network,
    spec.start,
    spec.count,
    `v${spec.lcmVersion}`,
    spec.ledgerBytes ?? 2048,
    spec.ledgersPerBatch ?? 1,
    spec.batchesPerPartition ?? 64000,
    spec.ext ?? "zst",
    spec.seed ?? 1,
  ].join("-");
  const dir = join(tmpdir(), "bronze-test-lakes-v1", id);
  try {
    await stat(join(dir, ".config.json"));
    return dir;
  } catch { /* build it */ }
  await Deno.mkdir(join(tmpdir(), "bronze-test-lakes-v1"), { recursive: true });
  const building = await testTempDir("lake");
  await makeLake({ ...spec, url: building });
  await rename(building, dir).catch(() => rm(building, { recursive: true, force: true }));
  return dir;
}

/** A temp folder of this test process (tests/support/leftovers.ts), removed on dispose. */
export async function tempDir(
  what = "tmp",
): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await testTempDir(what);
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) };
}
