/**
 * A dataset's identity: the five fields that name it in the catalog (`_meta_datasets`' unique key)
 * and, but for the domain and the table, in storage (layout.ts). Every type that carries a dataset
 * (the catalog's DatasetInfo and DatasetRef, coverage, a rebuild's result) extends this one.
 */
import type { DatasetKey } from "./layout.ts";

export interface DatasetIdentity extends DatasetKey {
  domain: string;
  dataset: string;
}

/** How a dataset is named in messages: `bronze.ledgers_lcm_raw (pubnet/p23/v1)`. */
export function datasetLabel(ds: DatasetIdentity): string {
  return `${ds.domain}.${ds.dataset} (${ds.network}/${ds.eraId}/${ds.version})`;
}

/** A string equal for two identities exactly when they name the same dataset (a map key). */
export function identityKey(ds: DatasetIdentity): string {
  return [ds.domain, ds.dataset, ds.network, ds.eraId, ds.version].join("\u0000");
}
