/**
 * Kill-anywhere: the copier is SIGKILLed at each step of the commit protocol and at random moments,
 * then resumed. After every kill the design's invariants must hold, and when the run is finally
 * complete its lineage must be exactly a clean run's: same ranges, same checksums, no gap, no
 * overlap, no duplicate, and every stored partition file recorded.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { copy } from "../../lib/copy/run.ts";
import { memoryLogger } from "../../lib/runtime/log.ts";
import { openStore } from "../../lib/blob/mod.ts";
import { checkpointManager, ErrNoCheckpoint } from "../../lib/checkpoint/checkpoint.ts";
import { rangeOfKey } from "../../lib/table/layout.ts";
import { type CatalogTarget, catalogTarget } from "../support/catalogs.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { seededRandom } from "../support/random.ts";
import { finish } from "../support/wait.ts";
import { copyEnv, copyOptions, lineageRows } from "../support/copy.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const START = 1;
const END = 2000;
const SIZE = 100;
const lake = () =>
  syntheticLake({
    network: "testnet",
    start: 1,
    count: END,
    lcmVersion: 2,
    ledgerBytes: 2048,
    seed: 7,
  });

function runEnv(target: CatalogTarget, source: string, storage: string): Record<string, string> {
  return {
    ...copyEnv(target, source, storage),
    LEDGER_START: String(START),
    LEDGER_END: String(END),
    PARTITION_SIZE: String(SIZE),
  };
}

function spawn(env: Record<string, string>): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "copy"],
    env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

type Lineage = { range: string; checksum: string; path: string }[];

async function lineage(target: CatalogTarget): Promise<Lineage> {
  return (await lineageRows(target)).map((r) => ({
    range: `${r.ledger_start}-${r.ledger_end}`,
    checksum: r.checksum,
    path: r.storage_path,
  }));
}

/** design.md's invariants, "at every instant, whatever is killed when". */
async function assertInvariants(
  target: CatalogTarget,
  storage: string,
  when: string,
): Promise<Lineage> {
  const rows = await lineage(target);
  // Every lineage row points at a stored object whose bytes hash to its checksum.
  for (const r of rows) {
    const bytes = await readFile(join(storage, r.path));
    assert.equal(
      `sha256:${createHash("sha256").update(bytes).digest("hex")}`,
      r.checksum,
      `${when}: ${r.path}`,
    );
  }
  // No overlap, and the contiguous coverage from the run's start.
  let covered = START - 1;
  let prevEnd = 0;
  for (const r of rows) {
    const [s, e] = r.range.split("-").map(Number);
    assert.ok(s > prevEnd, `${when}: overlap at ${r.range}`);
    if (s === covered + 1) covered = e;
    prevEnd = e;
  }
  // checkpoint <= the catalog's contiguous coverage from the run's start.
  try {
    const cp = await checkpointManager(join(target.stateDir, "checkpoint.json")).load();
    assert.ok(
      cp.last_committed_ledger <= covered,
      `${when}: checkpoint ${cp.last_committed_ledger} > coverage ${covered}`,
    );
  } catch (err) {
    if (!(err instanceof ErrNoCheckpoint)) throw err;
  }
  return rows;
}

/** Every partition file in storage, by range. */
async function storedRanges(storage: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of openStore(storage).list("")) {
    const r = rangeOfKey(o.key);
    if (r) out.push(`${r.start}-${r.end}`);
  }
  return out.sort((a, b) => Number(a.split("-")[0]) - Number(b.split("-")[0]));
}

let reference: Lineage | undefined;

/** A clean, uninterrupted run's lineage (its storage paths are relative, so they compare too). */
async function cleanLineage(source: string): Promise<Lineage> {
  if (reference) return reference;
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  // The CLI's defaults, as the killed runs have them.
  const opts = copyOptions(target, {
    source,
    storage: out.path,
    start: START,
    end: END,
    partitionSize: SIZE,
    era: "default",
    copierId: "bronze-copier",
  });
  await copy(opts, memoryLogger());
  reference = await lineage(target);
  assert.equal(reference.length, END / SIZE);
  return reference;
}

async function assertLikeCleanRun(
  target: CatalogTarget,
  storage: string,
  source: string,
): Promise<void> {
  const rows = await assertInvariants(target, storage, "after the final run");
  assert.deepEqual(rows, await cleanLineage(source));
  assert.deepEqual(
    await storedRanges(storage),
    rows.map((r) => r.range),
    "every stored partition is recorded",
  );
}

for (const step of ["after-publish", "after-manifest", "after-catalog", "after-checkpoint"]) {
  Deno.test(`SIGKILL ${step} of the third partition, then resume: lineage identical to a clean run`, async () => {
    const source = await lake();
    await using target = await catalogTarget("postgres");
    await using out = await tempDir();
    const env = runEnv(target, source, out.path);
    const killed = await finish(spawn({ ...env, BRONZE_FAILPOINT: `${step}:3` }));
    assert.equal(killed.status.signal, "SIGKILL", killed.stderr);
    await assertInvariants(target, out.path, `killed ${step}`);
    const resumed = await finish(spawn(env));
    assert.equal(resumed.status.code, 0, resumed.stderr);
    if (step === "after-publish" || step === "after-manifest") {
      assert.match(
        resumed.stderr,
        /^\[storage\] adopted .*range=201-300\/part-201-300\.parquet: already stored with the same sha256$/m,
      );
    }
    await assertLikeCleanRun(target, out.path, source);
  });
}

/** 20 in CI (about two minutes); BRONZE_KILLS=500 for a long soak. */
const KILLS = Number(Deno.env.get("BRONZE_KILLS") ?? 20);

Deno.test(`${KILLS} SIGKILLs in a row at random moments: after each the invariants hold; every run ends like a clean run`, async () => {
  const source = await lake();
  await cleanLineage(source);
  // Seeded moments: the seed is printed, and BRONZE_TEST_SEED replays them.
  const random = seededRandom("crash_test SIGKILLs");
  let kills = 0;
  let rounds = 0;
  while (kills < KILLS) {
    rounds++;
    await using target = await catalogTarget("postgres");
    await using out = await tempDir();
    const env = runEnv(target, source, out.path);
    for (;;) {
      const child = spawn(env);
      const delay = 300 + random() * 2500;
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already finished */ }
      }, delay);
      const r = await finish(child);
      clearTimeout(timer);
      if (r.status.signal === "SIGKILL") {
        kills++;
        await assertInvariants(
          target,
          out.path,
          `kill ${kills} (round ${rounds}, at ${delay.toFixed(0)} ms)`,
        );
        if (kills === KILLS) break;
        continue;
      }
      assert.equal(r.status.code, 0, r.stderr);
      break;
    }
    // Finish the round without interference and compare it with the clean run.
    const last = await finish(spawn(env));
    assert.equal(last.status.code, 0, last.stderr);
    await assertLikeCleanRun(target, out.path, source);
  }
  assert.equal(kills, KILLS);
});
