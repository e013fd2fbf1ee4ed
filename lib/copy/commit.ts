/**
 * Steps 2-5 of the commit protocol (design.md), in this order and no other:
 *   2. publish the file only if absent (adopt an identical one, refuse a different one);
 *   3. write _manifest.json;
 *   4. ONE catalog transaction: lineage row + quality rows + the DuckLake snapshot of the same
 *      file. This is the commit point;
 *   5. save the checkpoint; a failure here is loud but does not fail the partition.
 * A crash between any two steps leaves state the next run completes: a stored file without a
 * lineage row is adopted (its bytes are re-derived and compared), never duplicated or lost.
 */
import type { Logger } from "../runtime/log.ts";
import { failpoint } from "../runtime/failpoint.ts";
import { type ObjectStore, objectUrl } from "../blob/mod.ts";
import type { Manager } from "../checkpoint/checkpoint.ts";
import { type CatalogWriter, ClaimLostError } from "../metadata/writer.ts";
import type { SourceType } from "../source/source.ts";
import type { Range } from "../table/grid.ts";
import { type DatasetKey, manifestKey, partitionKey } from "../table/layout.ts";
import { MANIFEST_VERSION } from "../table/manifest.ts";
import { DOMAIN, SCHEMA_HASH, TABLE } from "../table/schema.ts";
import { gitSha, PRODUCER } from "../runtime/version.ts";
import type { Built } from "./build.ts";
import { publishPartition, writeManifest } from "./publish.ts";
import { stopwatch } from "../runtime/time.ts";

/** A registered dataset: where it is stored and its catalog id. */
export interface Dataset extends DatasetKey {
  id: number;
  label: string;
}

/** The points between steps where the kill-anywhere tests crash a commit. */
export type CommitStep = "after-publish" | "after-manifest" | "after-catalog" | "after-checkpoint";

export interface CommitterDeps {
  storage: ObjectStore;
  writer: CatalogWriter;
  /** Step 5's checkpoint; null for a commit that moves no copier (compaction). */
  checkpoint: Manager | null;
  dataset: Dataset;
  copierId: string;
  source: { type: SourceType; url: string };
  log: Logger;
  /** Runs between steps: the crash failpoints, unless a test injects its own. */
  between?: (step: CommitStep) => Promise<void>;
  /** Told of a checkpoint save that failed (it does not fail the partition). */
  onCheckpointError?: () => void;
}

export interface CommitRequest {
  built: Built;
  /** The checkpoint's last_committed_ledger once this partition is in the catalog. */
  checkpointLedger: number;
  /** Why the checkpoint moves back, when it does (said with the save). */
  checkpointNote?: string;
  /** A _meta_changes row written in the commit transaction (a backfill). */
  change?: { type: string; description: string };
  /**
   * The claim it is built under (a range's or a fleet cell's): committed only while that claim is
   * this copier's. A function is asked before publishing (and again when the commit finds the
   * claim gone): after a reconnect it waits for the claims to be taken again, and gives the new id.
   */
  claimId?: number | (() => Promise<number>);
  /** Compaction: the partial rows this full-cell partition replaces, in the same transaction. */
  supersedes?: number[];
}

export interface Committed {
  range: Range;
  checksum: string;
  lineageId: number;
  /** Storage already held these exact bytes (a run died between publish and catalog commit). */
  adopted: boolean;
  /** Wall time of steps 2-5. */
  seconds: { publish: number; manifest: number; catalog: number; checkpoint: number };
}

export class Committer {
  readonly #between: (step: CommitStep) => Promise<void>;

  constructor(private readonly deps: CommitterDeps) {
    this.#between = deps.between ?? ((step) => failpoint(step));
  }

  async commit(req: CommitRequest): Promise<Committed> {
    const { writer, checkpoint, dataset, log } = this.deps;
    const { built, checkpointLedger, checkpointNote, change, supersedes } = req;
    const { range } = built;
    const key = partitionKey(dataset, range);
    const url = objectUrl(this.deps.storage, key);
    const checksum = `sha256:${built.sha256}`;
    const claimOf = typeof req.claimId === "function"
      ? req.claimId
      : () => Promise.resolve(req.claimId as number | undefined);
    const lap = stopwatch();
    const seconds = { publish: 0, manifest: 0, catalog: 0, checkpoint: 0 };
    let lineageId: number;
    let adopted: boolean;
    for (;;) {
      // The claim the file is published under is the one the commit checks: a claim taken again
      // after the catalog came back (a new id) may have lapsed meanwhile, and gc may have taken
      // what was published under the old one. So under a new claim, steps 2-4 run again.
      const claimId = await claimOf();
      const steps = await this.#publish(built, key, url, lap);
      ({ adopted } = steps);
      seconds.publish += steps.publish;
      seconds.manifest += steps.manifest;
      try {
        // The lineage row says what the manifest in storage says (an adopted partition's manifest
        // is the earlier run's, kept as it is), so `catalog rebuild` recreates this very row.
        lineageId = await writer.recordPartition({
          datasetId: dataset.id,
          ledgerStart: range.start,
          ledgerEnd: range.end,
          rowCount: range.end - range.start + 1,
          byteSize: built.bytes,
          checksum,
          storagePath: key,
          storageUri: url,
          firstPreviousLedgerHash: built.firstPreviousLedgerHash,
          lastLedgerHash: built.lastLedgerHash,
          producerVersion: steps.stored.producer?.version ?? PRODUCER,
          producerGitSha: steps.stored.producer ? steps.stored.producer.git_sha ?? null : gitSha(),
          sourceType: steps.stored.source?.type ?? this.deps.source.type,
          sourceLocation: steps.stored.source?.location ?? this.deps.source.url,
          createdAt: manifestTime(steps.stored.created_at),
          quality: built.quality,
          change,
          claimId,
          supersedes,
          // The DuckLake snapshot of this commit: its author and what it says.
          author: this.deps.copierId,
          message: change?.description ??
            `ledgers ${range.start}-${range.end} committed${
              adopted ? " (adopted from storage)" : ""
            }`,
        });
        break;
      } catch (err) {
        if (!(err instanceof ClaimLostError) || (await claimOf()) === claimId) throw err;
        log.info(
          "catalog",
          `range ${range.start}-${range.end}: claimed again after the catalog came back; ` +
            `publishing it again under the new claim`,
        );
      }
    }
    log.info("partition", `committed range ${range.start}-${range.end}`, {
      start: range.start,
      end: range.end,
      checksum,
      bytes: built.bytes,
    });
    await this.#between("after-catalog");
    seconds.catalog = lap();

    if (checkpoint) {
      await saveCheckpoint(
        this.deps,
        checkpoint,
        range,
        checksum,
        checkpointLedger,
        checkpointNote,
      );
    }
    await this.#between("after-checkpoint");
    seconds.checkpoint = lap();
    return { range, checksum, lineageId, adopted, seconds };
  }

  /** Steps 2 and 3: the file published (or adopted) and its manifest written. */
  async #publish(built: Built, key: string, url: string, lap: () => number) {
    const { storage, dataset, log } = this.deps;
    const { range } = built;
    const checksum = `sha256:${built.sha256}`;
    const adopted = await publishPartition(storage, key, built.path, built.sha256) === "adopted";
    if (adopted) log.info("storage", `adopted ${url}: already stored with the same sha256`);
    await this.#between("after-publish");
    const publish = lap();
    const stored = await writeManifest(storage, manifestKey(dataset, range), {
      manifest_version: MANIFEST_VERSION,
      dataset: {
        domain: DOMAIN,
        dataset: TABLE,
        network: dataset.network,
        era_id: dataset.eraId,
        version: dataset.version,
        schema_hash: SCHEMA_HASH,
      },
      partition: {
        start: range.start,
        end: range.end,
        table: TABLE,
        file: key.slice(key.lastIndexOf("/") + 1),
        storage_path: key,
        first_previous_ledger_hash: built.firstPreviousLedgerHash,
        last_ledger_hash: built.lastLedgerHash,
      },
      table: { checksum, rows: range.end - range.start + 1, bytes: built.bytes },
      quality: built.quality,
      source: { type: this.deps.source.type, location: this.deps.source.url },
      producer: { version: PRODUCER, git_sha: gitSha() },
      created_at: new Date().toISOString(),
    });
    await this.#between("after-manifest");
    return { adopted, stored, publish, manifest: lap() };
  }
}

/** Step 5 on its own: loud when it fails, never failing the partition it follows. */
async function saveCheckpoint(
  deps: CommitterDeps,
  checkpoint: Manager,
  range: Range,
  checksum: string,
  ledger: number,
  note: string | undefined,
): Promise<void> {
  const { dataset, copierId, log } = deps;
  try {
    await checkpoint.save({
      copier_id: copierId,
      network: dataset.network,
      era_id: dataset.eraId,
      version_label: dataset.version,
      last_committed_ledger: ledger,
      last_committed_partition: { start: range.start, end: range.end, checksum },
      updated_at: new Date().toISOString(),
    });
    log.info("checkpoint", `saved: last_committed=${ledger}${note ? ` ${note}` : ""}`);
  } catch (err) {
    deps.onCheckpointError?.();
    log.warn(
      "checkpoint",
      `save to ${checkpoint.location} failed (the partition is committed; the catalog is the truth): ${
        (err as Error).message
      }`,
    );
  }
}

/** A manifest's created_at as a time, or undefined (the catalog's clock) when it holds none. */
function manifestTime(createdAt: unknown): Date | undefined {
  const t = typeof createdAt === "string" ? new Date(createdAt) : null;
  return t && !Number.isNaN(t.getTime()) ? t : undefined;
}
