/**
 * Where a dataset's partitions are stored and on which grid: properties of the dataset, recorded
 * in the catalog when it is registered (issue 21). A command that acts on stored partitions takes
 * them from there when its --storage / --partition-size are not given, and refuses, naming both
 * values, a flag that disagrees: one dataset is never split over two roots or two grids.
 */
import { storageRootOf, type StoreUrl, toStoreUrl } from "../blob/mod.ts";
import { PlacementError, placementProblem } from "../metadata/writer.ts";

export { PlacementError };

/** A new dataset's storage root and grid, when no flag says otherwise. */
export const DEFAULT_STORAGE = "./data";
export const DEFAULT_PARTITION_SIZE = 10_000;

export interface Placement {
  /** The storage to open: the flag as given, else the dataset's recorded root. */
  storage: StoreUrl;
  partitionSize: number;
}

/** What the catalog records of a dataset's placement (null: a dataset not registered yet). */
export interface RecordedPlacement {
  label: string;
  storageRoot: string | null;
  partitionSize: number | null;
}

/** The dataset's storage and grid given these flags; throws PlacementError when one disagrees. */
export function placementOf(
  recorded: RecordedPlacement | null,
  given: { storage?: StoreUrl; partitionSize?: number },
): Placement {
  // Both disagreements in one message, before either is resolved.
  check(recorded, given);
  return {
    storage: storageOf(recorded, given),
    partitionSize: gridOf(recorded, given),
  };
}

/** The dataset's storage given --storage (see placementOf). */
export function storageOf(
  recorded: RecordedPlacement | null,
  given: { storage?: StoreUrl },
): StoreUrl {
  check(recorded, { storage: given.storage });
  if (given.storage !== undefined) return given.storage;
  if (recorded && recorded.storageRoot === null) {
    throw new PlacementError(
      `${recorded.label}: its storage root is not recorded (its lineage lies under several ` +
        `roots, or it has none): give --storage, which is then recorded with it`,
    );
  }
  return toStoreUrl(recorded?.storageRoot ?? DEFAULT_STORAGE);
}

/** The dataset's grid given --partition-size (see placementOf). */
export function gridOf(
  recorded: RecordedPlacement | null,
  given: { partitionSize?: number },
): number {
  check(recorded, { partitionSize: given.partitionSize });
  if (given.partitionSize !== undefined) return given.partitionSize;
  if (recorded && recorded.partitionSize === null) {
    throw new PlacementError(
      `${recorded.label}: its partition size is not recorded (its lineage shows no one grid): ` +
        `give --partition-size, which is then recorded with it`,
    );
  }
  return recorded?.partitionSize ?? DEFAULT_PARTITION_SIZE;
}

function check(
  recorded: RecordedPlacement | null,
  given: { storage?: StoreUrl; partitionSize?: number },
): void {
  const problem = recorded &&
    placementProblem(
      recorded.label,
      { root: recorded.storageRoot, size: recorded.partitionSize },
      {
        storageRoot: given.storage && storageRootOf(given.storage),
        partitionSize: given.partitionSize,
      },
    );
  if (problem) throw new PlacementError(problem);
}
