/** The settings that pick datasets, and the catalog's filter they make. */
import type { DatasetFilter } from "../metadata/coverage.ts";

/** In help order: every command over existing datasets takes them. */
export const DATASET_FILTERS = [
  "networkFilter",
  "eraFilter",
  "versionFilter",
  "datasetFilter",
] as const;

/** The dataset filter flags (--network, --era, --version-label, --dataset) as the catalog's filter. */
export function datasetFilterOf(s: {
  networkFilter?: string;
  eraFilter?: string;
  versionFilter?: string;
  datasetFilter?: string;
}): DatasetFilter {
  return {
    network: s.networkFilter,
    eraId: s.eraFilter,
    version: s.versionFilter,
    dataset: s.datasetFilter,
  };
}
