/**
 * Weeks on real infrastructure, in a minute: the lake, the storage and the checkpoint behind a
 * fault-injecting proxy (tests/support/fault_proxy.ts) in front of s3rver and of the GCS emulator,
 * which answers 5xx, throttles (503 SlowDown, 429, rateLimitExceeded), loses the answers of writes
 * it did, cuts bodies midway, stalls, and answers after the client gave up. copy, a follower on a
 * growing lake, compact, gc, verify and repair each complete on the first run, the retries told
 * one line per burst; the lineage equals a clean run's. And a store that stays down ends the run after --retry-for: one line
 * naming the object and its last error, exit 75.
 *
 * The proxy's seed is printed; FAULT_SEED=<n> replays a failure with the same faults.
 */
import assert from "node:assert/strict";
import { gcsOptionsFromEnv, GcsStore } from "../../lib/blob/gcs.ts";
import { s3OptionsFromEnv, S3Store } from "../../lib/blob/s3.ts";
import type { ObjectStore } from "../../lib/blob/store.ts";
import { type BucketUrl, toStoreUrl } from "../../lib/blob/url.ts";
import { makeLake } from "../../scripts/make-lake.ts";
import { catalogTarget } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv, psqlLines } from "../support/copy.ts";
import { FAULTS, startFaultProxy } from "../support/fault_proxy.ts";
import { Copier } from "../support/growing.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { within } from "../support/wait.ts";
import { s3Env, startGcsEmulator, startS3rver } from "../support/servers.ts";

const SPEC = {
  network: "testnet",
  start: 1,
  lcmVersion: 2,
  ledgerBytes: 4096,
  seed: 11,
} as const;
const LEDGERS = 300;
const SIZE = "25";
/** Current lineage: what a reader of the catalog sees (superseded partials left out). */
const CURRENT = `SELECT ledger_start || '-' || ledger_end || ' ' || checksum FROM _meta_lineage
  WHERE superseded_by IS NULL ORDER BY ledger_start`;

/** The lineage a clean run (local disk, no faults) records for the whole lake. */
async function cleanLineage(): Promise<string[]> {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const lake = await syntheticLake({ ...SPEC, count: LEDGERS });
  const r = await runCli([
    "copy",
    "--start",
    "1",
    "--end",
    String(LEDGERS),
    "--partition-size",
    SIZE,
  ], {
    env: copyEnv(target, lake, out.path),
  });
  assert.equal(r.code, 0, r.stderr);
  return psqlLines(target.dsn!, CURRENT);
}

/** A bucket URL, parsed as the settings parse --storage. */
const bucket = (url: string) => toStoreUrl(url) as BucketUrl;

interface Flavor {
  name: "s3" | "gcs";
  start(): Promise<{ endpoint: string; stop(): Promise<void> }>;
  /** The client environment that sends every request to `endpoint`. */
  env(endpoint: string): Record<string, string>;
  /** A store talking to the server itself, past the proxy (setting up, corrupting). */
  direct(endpoint: string, url: string): ObjectStore;
  scheme: string;
}

const FLAVORS: Flavor[] = [
  {
    name: "s3",
    scheme: "s3",
    start: async () => await startS3rver(["lake", "parts", "state"]),
    env: (endpoint) => s3Env(endpoint),
    direct: (endpoint, url) => new S3Store(bucket(url), s3OptionsFromEnv(s3Env(endpoint))),
  },
  {
    name: "gcs",
    scheme: "gs",
    start: async () => {
      const s = await startGcsEmulator();
      return { endpoint: s.host, stop: s.stop };
    },
    env: (endpoint) => ({ STORAGE_EMULATOR_HOST: endpoint }),
    direct: (endpoint, url) =>
      new GcsStore(bucket(url), gcsOptionsFromEnv({ STORAGE_EMULATOR_HOST: endpoint })),
  },
];

for (const flavor of FLAVORS) {
  Deno.test(`${flavor.name} behind a faulty network: copy, follow, compact, gc, verify and repair complete without a rerun; lineage equals a clean run's`, async () => {
    const clean = await cleanLineage();
    const server = await flavor.start();
    const proxy = await startFaultProxy({
      target: server.endpoint,
      flavor: flavor.name,
      rates: {
        server: 0.02,
        throttle: 0.02,
        lostAnswer: 0.1,
        cutBody: 0.03,
        stall: 0.005,
        late: 0.005,
      },
      atLeastOnce: FAULTS,
      stallMs: 3000,
    });
    const lakeUrl = `${flavor.scheme}://lake/galexie`;
    const storageUrl = `${flavor.scheme}://parts/bronze`;
    const lake = flavor.direct(server.endpoint, lakeUrl);
    try {
      await makeLake({ ...SPEC, count: 250, store: lake });
      await using target = await catalogTarget("postgres");
      const env = {
        ...copyEnv(target, lakeUrl, storageUrl),
        ...flavor.env(proxy.url),
        CHECKPOINT_URL: `${flavor.scheme}://state/bronze/checkpoint.json`,
        PARTITION_SIZE: SIZE,
        // A stalled request, or one whose answer is late, is abandoned after a second (the proxy
        // holds it for three).
        BRONZE_ATTEMPT_TIMEOUT: "1s",
        RETRY_FOR: "2m",
      };
      const logs: string[] = [];
      const run = async (args: string[], code = 0) => {
        const r = await within(runCli(args, { env }), `bronze ${args.join(" ")}`, 180_000);
        logs.push(r.stderr);
        assert.equal(
          r.code,
          code,
          `bronze ${args.join(" ")} (seed ${proxy.seed}):\n${r.stderr}${r.stdout}`,
        );
        return r;
      };

      // A backfill, then two partial partitions of one cell (compacted below).
      await run(["copy", "--start", "1", "--end", "150"]);
      await run(["copy", "--start", "151", "--end", "160"]);
      await run(["copy", "--start", "161", "--end", "175"]);

      // A follower waits at the head of a lake that grows, past the proxy, to the end.
      await using follower = new Copier(env, [
        "--follow",
        "--start",
        "176",
        "--end",
        String(LEDGERS),
        "--poll-interval",
        "300ms",
      ]);
      await within(
        follower.until(/\[follow\] caught up at ledger 250;/),
        "the follower catching up at ledger 250",
        180_000,
      );
      await makeLake({ ...SPEC, count: LEDGERS, store: lake, rate: 400 });
      const status = await within(follower.end(), "the follower reaching its end", 180_000);
      logs.push(follower.text);
      assert.equal(status.code, 0, `follower (seed ${proxy.seed}):\n${follower.text}`);

      await run(["compact", "--storage", storageUrl]);
      const gc = await run(["gc", "--storage", storageUrl, "--older-than", "0s", "--apply"]);
      assert.match(
        gc.stderr,
        /\[gc\] deleted \S+range=151-160\/part-151-160\.parquet \(superseded/,
      );

      // A partition file lost in storage: verify finds it, repair restores it, all through the faults.
      const parts = flavor.direct(server.endpoint, storageUrl);
      await parts.delete("testnet/default/v1/ledgers_lcm_raw/range=76-100/part-76-100.parquet");
      await parts.close?.();
      const broken = await run(["verify"], 4);
      assert.match(broken.stderr, /partition 76-100 .* failed 1 check: missing/);
      const repaired = await run(["repair", "--source", lakeUrl]);
      assert.match(repaired.stdout, /^REPAIRED \[restored\] partition 76-100 /m);
      await run(["verify"]);

      assert.deepEqual(psqlLines(target.dsn!, CURRENT), clean, `seed ${proxy.seed}`);
      // Every kind of fault was met, and the retries were told once per burst, never per attempt.
      for (const f of FAULTS) assert.ok(proxy.stats[f] > 0, `${f}: ${JSON.stringify(proxy.stats)}`);
      const all = logs.join("\n");
      assert.match(
        all,
        /^\[warn\] retry: (source|storage|checkpoint): \d+ retr(y|ies) over \S+, recovered \(last: .+\)$/m,
      );
      assert.doesNotMatch(all, /^bronze: /m);
    } finally {
      await lake.close?.();
      await proxy.stop();
      await server.stop();
    }
  });
}

Deno.test("a store that stays down: after --retry-for, one line naming the object and the last error, exit 75; nothing half-recorded", async () => {
  const s3 = await startS3rver(["parts"]);
  const proxy = await startFaultProxy({
    target: s3.endpoint,
    flavor: "s3",
    rates: { throttle: 1 },
    maxInARow: Infinity,
  });
  try {
    await using target = await catalogTarget("postgres");
    const env = {
      ...copyEnv(target, await syntheticLake({ ...SPEC, count: LEDGERS }), "s3://parts/bronze"),
      ...s3Env(proxy.url),
      PARTITION_SIZE: SIZE,
      RETRY_FOR: "3s",
    };
    const r = await within(
      runCli(["copy", "--start", "1", "--end", "50"], { env }),
      "the run giving up",
      120_000,
    );
    assert.equal(r.code, 75, r.stderr);
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("bronze:"));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(
      errors[0],
      /^bronze: s3 \w+ s3:\/\/parts\/bronze\/\S+ failed: (SlowDown: Please reduce your request rate\.|TooManyRequests: Too many requests\.|HTTP (503|429)) \(still failing after \d+ attempts over \d+s: a temporary failure that outlasted --retry-for; run again\)$/,
    );
    assert.ok(r.stderr.trimEnd().endsWith(errors[0]), "the error line is the last word");
    assert.deepEqual(psqlLines(target.dsn!, CURRENT).filter((l) => l !== ""), []);
    assert.equal(proxy.stats.passed, 0);
  } finally {
    await proxy.stop();
    await s3.stop();
  }
});
