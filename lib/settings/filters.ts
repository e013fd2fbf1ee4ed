/** The settings that pick datasets: their specs, and the catalog's filter they make. */
import type { DatasetFilter } from "../metadata/coverage.ts";
import { NETWORKS } from "../source/network.ts";
import { label, oneOf } from "./parsers.ts";
import type { Specs } from "./settings.ts";

/** In help order: every command over existing datasets takes them. */
export const DATASET_FILTERS = [
  "networkFilter",
  "eraFilter",
  "versionFilter",
  "datasetFilter",
] as const;

/**
 * The same flags and environment as the copier's --network, --era and --version-label, but
 * without defaults: unset, a filter picks every dataset.
 */
export const FILTER_SPECS: Specs<typeof DATASET_FILTERS[number]> = {
  networkFilter: {
    flag: "--network",
    env: "NETWORK",
    help: "only datasets of this network: pubnet, testnet or futurenet",
    parse: oneOf(NETWORKS),
    shown: "all",
  },
  eraFilter: {
    flag: "--era",
    env: "ERA_ID",
    help: "only datasets of this era label",
    parse: label,
    shown: "all",
  },
  versionFilter: {
    flag: "--version-label",
    env: "VERSION_LABEL",
    help: "only datasets of this version label",
    parse: label,
    shown: "all",
  },
  datasetFilter: {
    flag: "--dataset",
    env: "DATASET",
    help: "only this dataset name, e.g. ledgers_lcm_raw",
    parse: label,
    shown: "all",
  },
};

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
