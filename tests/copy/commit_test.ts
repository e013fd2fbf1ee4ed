/**
 * The Committer on its own (steps 2-5 of the commit protocol), without a run: a real partition
 * built from a synthetic lake, a real catalog, storage and checkpoint. A crash at each failpoint
 * between its steps is injected as a throw at that point (the kill-anywhere tests in
 * crash_test.ts SIGKILL a whole copier at the same points); after each, the invariants of
 * design.md hold, and the next commit of the same partition completes it without a second row.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { hashObject, openStore } from "../../lib/blob/mod.ts";
import { checkpointManager, ErrNoCheckpoint } from "../../lib/checkpoint/checkpoint.ts";
import { buildPartitionFile, type Built } from "../../lib/copy/build.ts";
import { type CommitStep, Committer, type Dataset } from "../../lib/copy/commit.ts";
import { memoryLogger } from "../../lib/runtime/log.ts";
import { contiguousCoverage } from "../../lib/metadata/coverage.ts";
import { CatalogWriter, DuplicatePartitionError } from "../../lib/metadata/writer.ts";
import { openSource } from "../../lib/source/mod.ts";
import { manifestKey, partitionKey } from "../../lib/table/layout.ts";
import { CATALOG_KINDS, withCatalog } from "../support/catalogs.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";

const STEPS: CommitStep[] = [
  "after-publish",
  "after-manifest",
  "after-catalog",
  "after-checkpoint",
];

class Crash extends Error {}

async function build(dir: string): Promise<Built> {
  const lake = await syntheticLake({ network: "testnet", start: 1, count: 100, lcmVersion: 2 });
  const source = await openSource(lake, "testnet");
  const built = await buildPartitionFile(
    source,
    { start: 1, end: 100 },
    join(dir, `part-${crypto.randomUUID()}.parquet`),
    { bronzeVersion: "v1", eraId: "pre_p23", network: "testnet" },
    { stopped: () => false, progress() {} },
  );
  assert.ok(built);
  return built;
}

for (const kind of CATALOG_KINDS) {
  for (const step of STEPS) {
    Deno.test(`Committer [${kind}]: a crash ${step}, then the next commit of the same partition completes it; no second lineage row`, async () => {
      await withCatalog(kind, async (catalog) => {
        await using work = await tempDir();
        const writer = new CatalogWriter(catalog);
        const info = {
          domain: "bronze",
          dataset: "ledgers_lcm_raw",
          version: "v1",
          eraId: "pre_p23",
          network: "testnet",
        };
        const id = await writer.ensureDataset({ ...info, schemaHash: "x".repeat(64) });
        const dataset: Dataset = {
          network: "testnet",
          eraId: "pre_p23",
          version: "v1",
          id,
          label: "ds",
        };
        const storage = openStore(join(work.path, "data"));
        const checkpoint = checkpointManager(join(work.path, "checkpoint.json"));
        const log = memoryLogger();
        const deps = {
          storage,
          writer,
          checkpoint,
          dataset,
          copierId: "c1",
          source: { type: "archive" as const, url: "lake" },
          log,
        };
        const crashing = new Committer({
          ...deps,
          between: (at) => at === step ? Promise.reject(new Crash(at)) : Promise.resolve(),
        });
        const request = { built: await build(work.path), checkpointLedger: 100 };
        await assert.rejects(crashing.commit(request), Crash);

        // Invariants at the instant of the crash.
        const key = partitionKey(dataset, { start: 1, end: 100 });
        const rows = await writer.listLineage(id);
        const committed = step === "after-catalog" || step === "after-checkpoint";
        assert.equal(rows.length, committed ? 1 : 0);
        for (const r of rows) {
          assert.equal(`sha256:${(await hashObject(storage, r.storagePath)).sha256}`, r.checksum);
        }
        assert.equal((await hashObject(storage, key)).sha256, request.built.sha256);
        assert.equal(
          await storage.head(manifestKey(dataset, { start: 1, end: 100 })) !== null,
          step !== "after-publish",
        );
        const coverage = await contiguousCoverage(catalog, id, 1);
        const saved = await checkpoint.load().catch((e) => {
          if (e instanceof ErrNoCheckpoint) return null;
          throw e;
        });
        assert.equal(saved?.last_committed_ledger ?? 0, step === "after-checkpoint" ? 100 : 0);
        assert.ok((saved?.last_committed_ledger ?? 0) <= coverage);

        // The next commit (from another copy of the lake): adopts what storage holds, or finds the
        // catalog already has it.
        const next = new Committer({
          ...deps,
          source: { type: "archive", url: "lake-copy" },
          between: () => Promise.resolve(),
        });
        if (committed) {
          await assert.rejects(next.commit(request), DuplicatePartitionError);
        } else {
          const done = await next.commit(request);
          assert.equal(done.adopted, true);
          assert.equal(done.checksum, `sha256:${request.built.sha256}`);
          assert.ok(
            log.lines.some((l) => l.startsWith("[storage] adopted ")),
            log.lines.join("\n"),
          );
        }
        const after = await writer.listLineage(id);
        assert.deepEqual(after.map((r) => [r.ledgerStart, r.ledgerEnd, r.checksum]), [
          [1, 100, `sha256:${request.built.sha256}`],
        ]);
        assert.equal(await contiguousCoverage(catalog, id, 1), 100);
        // The row says what the manifest in storage says: a manifest the crashed commit wrote is
        // kept as it is, and names the first run's source and time.
        const manifest = JSON.parse(
          new TextDecoder().decode(
            await storage.get(manifestKey(dataset, { start: 1, end: 100 })),
          ),
        );
        assert.deepEqual(manifest.source, {
          type: "archive",
          location: step === "after-publish" ? "lake-copy" : "lake",
        });
        assert.equal(after[0].sourceLocation, manifest.source.location);
        assert.equal(after[0].createdAt.toISOString(), manifest.created_at);
        assert.equal(
          after[0].firstPreviousLedgerHash,
          manifest.partition.first_previous_ledger_hash,
        );
        assert.equal(after[0].lastLedgerHash, manifest.partition.last_ledger_hash);
      });
    });
  }
}
