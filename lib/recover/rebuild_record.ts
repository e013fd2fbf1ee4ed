/**
 * The recording step of `catalog rebuild`: one dataset's sound partitions classified against what
 * its catalog holds (rebuild_classify.ts) and the missing ones recorded in one transaction
 * (metadata/rebuild.ts). When a copier records rows meanwhile, the catalog is read again and the
 * plan made again; partitions gc deleted meanwhile are dropped from it.
 */
import { BronzeError } from "../runtime/errors.ts";
import { failpoint } from "../runtime/failpoint.ts";
import type { Logger } from "../runtime/log.ts";
import { pool } from "../runtime/pool.ts";
import { type ObjectStore, storageRootOf, toStoreUrl } from "../blob/mod.ts";
import { storageOf } from "../copy/placement.ts";
import type { Catalog } from "../metadata/catalog.ts";
import { heldDataset, LineageChangedError, recordRebuild } from "../metadata/rebuild.ts";
import { type DatasetIdentity, datasetLabel } from "../table/dataset.ts";
import { TABLE_DESCRIPTION } from "../table/schema.ts";
import { type Classified, classify } from "./rebuild_classify.ts";
import { type PartitionFailure, partitionNote, type Sound } from "./rebuild_check.ts";

/** Object-store HEADs in flight at once while checking that partitions are still stored. */
const HEAD_CONCURRENCY = 16;

/** How many times a dataset is read again after another writer changed it meanwhile. */
const ATTEMPTS = 3;

export interface Recorded extends Classified {
  /** Catalog id (null: not registered, and nothing was recorded). */
  datasetId: number | null;
  /** Lineage rows recorded, and their ledgers. */
  recorded: number;
  recordedLedgers: number;
  /** The registered dataset's schema hash differs from its newest manifest's (left as it is). */
  schemaConflict: string | null;
  /** Partitions deleted after they were checked (by gc): not recorded. */
  gone: PartitionFailure[];
}

/**
 * Records what `sound` adds to the dataset's lineage. `failed` counts the dataset's partitions
 * that failed their check, for the change row's description.
 */
export async function recordDataset(
  catalog: Catalog,
  store: ObjectStore,
  ds: DatasetIdentity,
  sound: readonly Sound[],
  failed: number,
  log: Logger,
): Promise<Recorded> {
  const label = datasetLabel(ds);
  const gone: PartitionFailure[] = [];
  for (let attempt = 1;; attempt++) {
    const held = await heldDataset(catalog, ds);
    // Rows go only into a dataset stored where they were found.
    storageOf(held && { label, ...held }, { storage: toStoreUrl(store.url) });
    const plan = classify(sound, held?.lineage ?? []);
    // The dataset's schema hash is the newest partition's (a copy registers its own).
    const newest = [...sound].sort((a, b) =>
      (a.row.createdAt?.getTime() ?? 0) - (b.row.createdAt?.getTime() ?? 0) ||
      a.row.ledgerStart - b.row.ledgerStart
    ).at(-1);
    const outcome: Recorded = {
      ...plan,
      datasetId: held?.id ?? null,
      recorded: 0,
      recordedLedgers: 0,
      schemaConflict: held && newest && held.schemaHash !== newest.schemaHash
        ? `${label} is registered with schema hash ${held.schemaHash}, its newest partition's ` +
          `manifest says ${newest.schemaHash}; left as it is`
        : null,
      gone,
    };
    const { add } = plan;
    // Something to add means there is a newest partition: add is a part of sound.
    if (add.length === 0 || !newest) return outcome;
    const ledgers = add.reduce((n, s) => n + s.row.rowCount, 0);
    const description = `catalog rebuild from ${store.url}: ${add.length} lineage row(s) ` +
      `(${ledgers} ledgers between ${add[0].row.ledgerStart} and ${
        add[add.length - 1].row.ledgerEnd
      }) recorded from their _manifest.json; ${plan.present} already present, ` +
      `${plan.conflicts.length} in conflict, ${failed + gone.length} failed their check`;
    await failpoint("rebuild-record");
    try {
      outcome.datasetId = await recordRebuild(
        catalog,
        {
          ...ds,
          schemaHash: newest.schemaHash,
          description: TABLE_DESCRIPTION,
          storageRoot: storageRootOf(store.url),
        },
        add.map((s) => s.row),
        description,
        () => stillStored(store, add),
      );
      outcome.recorded = add.length;
      outcome.recordedLedgers = ledgers;
      return outcome;
    } catch (err) {
      if (err instanceof GoneError) {
        // Deleted since they were checked (gc judged them unrecorded): not recorded.
        for (const s of err.gone) {
          const failure: PartitionFailure = {
            ...partitionNote(
              ds,
              { start: s.row.ledgerStart, end: s.row.ledgerEnd },
              s.uri,
              `its file or manifest was deleted while the rebuild ran (by bronze gc?)`,
            ),
            check: "missing",
          };
          gone.push(failure);
          log.warn("rebuild", `${failure.message}; not recorded`);
        }
        sound = sound.filter((s) => !err.gone.includes(s));
        continue;
      }
      if (!(err instanceof LineageChangedError) || attempt >= ATTEMPTS) throw err;
      log.info("rebuild", `${err.message}; reading it again`);
    }
  }
}

/** Partitions whose file or manifest is no longer stored. */
class GoneError extends BronzeError {
  constructor(readonly gone: Sound[]) {
    super(`${gone.length} partition(s) deleted meanwhile`);
  }
}

/**
 * Under the dataset's sweep lock (recordRebuild): each partition to record still has its file and
 * manifest. gc may have deleted some since they were checked, when they were unrecorded.
 */
async function stillStored(store: ObjectStore, add: Sound[]): Promise<void> {
  const there = await pool(
    add,
    HEAD_CONCURRENCY,
    async (s) =>
      (await store.head(s.row.storagePath)) !== null && (await store.head(s.manifestKey)) !== null,
  );
  const gone = add.filter((_, i) => !there[i]);
  if (gone.length) throw new GoneError(gone);
}
