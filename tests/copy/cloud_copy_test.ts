/**
 * bronze copy across object stores: an s3:// lake (s3rver) into gs:// storage (the Cloud Storage
 * emulator of firebase-tools) and the reverse, with the checkpoint in a bucket too. The partitions
 * must be byte-identical to a local run's: storage is a place, not a format.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { copy, type CopyOptions } from "../../lib/copy/run.ts";
import { memoryLogger } from "../../lib/runtime/log.ts";
import { openStore } from "../../lib/blob/mod.ts";
import { hashObject } from "../../lib/blob/mod.ts";
import { checkpointManager } from "../../lib/checkpoint/checkpoint.ts";
import { makeLake } from "../../scripts/make-lake.ts";
import { type CatalogTarget, catalogTarget } from "../support/catalogs.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { copyOptions, lineageRows } from "../support/copy.ts";
import { s3Env, startGcsEmulator, startS3rver, withEnv } from "../support/servers.ts";

const LAKE = {
  network: "testnet",
  start: 1,
  count: 250,
  lcmVersion: 2,
  ledgerBytes: 4096,
  seed: 3,
} as const;

function options(
  target: CatalogTarget,
  source: string,
  storage: string,
  checkpoint: string,
): CopyOptions {
  return copyOptions(target, { source, storage, checkpoint, start: 1, end: 250 });
}

/** Checksums of the same lake copied to local disk: what every backend must reproduce. */
async function localChecksums(): Promise<string[]> {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const source = await syntheticLake(LAKE);
  await copy(options(target, source, out.path, join(out.path, "cp.json")), memoryLogger());
  return (await lineageRows(target)).map((r) => r.checksum);
}

Deno.test("s3:// lake to gs:// storage and gs:// lake to s3:// storage, checkpoints in buckets, byte-identical to a local copy", async () => {
  const expected = await localChecksums();
  const s3 = await startS3rver(["lake", "parts", "state"]);
  const gcs = await startGcsEmulator();
  const env = { ...s3Env(s3.endpoint), STORAGE_EMULATOR_HOST: gcs.host };
  try {
    await withEnv(env, async () => {
      for (
        const [lakeUrl, storageUrl, checkpointUrl] of [
          ["s3://lake/galexie/testnet", "gs://parts/bronze", "s3://state/bronze/checkpoint.json"],
          ["gs://lake/galexie/testnet", "s3://parts/bronze", "gs://state/bronze/checkpoint.json"],
        ]
      ) {
        await makeLake({ ...LAKE, url: lakeUrl });
        await using target = await catalogTarget("postgres");
        const log = memoryLogger();
        await copy(options(target, lakeUrl, storageUrl, checkpointUrl), log);
        assert.deepEqual(log.lines.filter((l) => l.startsWith("[partition]")), [
          "[partition] committed range 1-100",
          "[partition] committed range 101-200",
          "[partition] committed range 201-250",
        ]);
        const rows = await lineageRows(target);
        assert.deepEqual(rows.map((r) => r.checksum), expected, `${lakeUrl} -> ${storageUrl}`);
        const storage = openStore(storageUrl);
        for (const r of rows) {
          assert.equal(r.storage_uri, `${storageUrl}/${r.storage_path}`);
          const stored = await hashObject(storage, r.storage_path);
          assert.equal(`sha256:${stored.sha256}`, r.checksum);
          assert.equal(stored.bytes, r.byte_size);
          const manifest = JSON.parse(
            new TextDecoder().decode(
              await storage.get(r.storage_path.replace(/part-[^/]+$/, "_manifest.json")),
            ),
          );
          assert.equal(manifest.table.checksum, r.checksum);
        }
        await storage.close?.();
        const cp = await checkpointManager(checkpointUrl).load();
        assert.equal(cp.last_committed_ledger, 250);
        // A rerun finds everything in place and records nothing twice.
        const again = memoryLogger();
        await copy(options(target, lakeUrl, storageUrl, checkpointUrl), again);
        assert.equal(
          again.lines.at(-1),
          "[copier] range 1-250 is already complete (bronze.ledgers_lcm_raw (testnet/pre_p23/v1)); nothing to do",
        );
        assert.equal((await lineageRows(target)).length, 3);
      }
    });
  } finally {
    await gcs.stop();
    await s3.stop();
  }
});
