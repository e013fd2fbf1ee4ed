/**
 * Retirement of datasets (migration 006): `bronze retire` marks a dataset version retired, once;
 * `copy` refuses to write into it; `gc --apply` deletes its files once it has been retired longer
 * than gc's grace period. Its row and its lineage stay forever: the audit trail outlives the files.
 */
import { BronzeError, EXIT } from "../runtime/errors.ts";
import { dbOf, type Row } from "./_db.ts";
import type { Catalog } from "./catalog.ts";
import { type DatasetFilter, type DatasetRef, findDatasets } from "./coverage.ts";
import { LIVE } from "./claims.ts";
import { dropTable } from "./ducklake.ts";

export interface Retirement {
  at: Date;
  reason: string;
}

/** `copy` into a retired dataset: exit 2, since the same command can never succeed. */
export class DatasetRetiredError extends BronzeError {
  constructor(readonly label: string, readonly retirement: Retirement) {
    super(
      `${label} was retired at ${retirement.at.toISOString()} (${retirement.reason}); ` +
        `copy does not write into a retired dataset: give another --version-label`,
      EXIT.usage,
    );
  }
}

/** The dataset's retirement, or null while it is not retired. */
export async function retirementOf(
  catalog: Catalog,
  datasetId: number,
): Promise<Retirement | null> {
  const rows = await dbOf(catalog).query<{ at: Date | null; reason: string | null }>(
    `SELECT retired_at AS at, retired_reason AS reason FROM _meta_datasets WHERE id = $1`,
    [datasetId],
  );
  const r = rows[0];
  return r?.at ? { at: r.at, reason: r.reason ?? "" } : null;
}

export interface Retired {
  dataset: DatasetRef;
  retirement: Retirement;
  /** Retired before this call: nothing was changed. */
  already: boolean;
  /** Copiers writing into it right now (they go on until they stop; new copies are refused). */
  copiers: { copierId: string; host: string | null; pid: number | null }[];
}

/**
 * Retires every dataset matching `filter` that is not retired yet, in one transaction: its
 * retired_at and retired_reason, a _meta_changes row (change_type 'retire') and a DuckLake
 * snapshot dropping its table. One already
 * retired keeps its first retirement (its time is what gc measures from). Refuses when no dataset
 * matches. Returns each matching dataset with its retirement.
 */
export async function retireDatasets(
  catalog: Catalog,
  filter: DatasetFilter,
  reason: string,
): Promise<Retired[]> {
  const matching = await findDatasets(catalog, filter);
  if (!matching.length) {
    throw new BronzeError(`no dataset matches ${describeFilter(filter)}: nothing to retire`);
  }
  const db = dbOf(catalog);
  const marked = await db.transaction(async (tx) => {
    const rows = await tx.query<{ id: number; at: Date; reason: string; already: boolean }>(
      `WITH target AS (
         SELECT id, retired_at IS NOT NULL AS already FROM _meta_datasets
         WHERE id = ANY($1::int[]) FOR UPDATE
       ), marked AS (
         UPDATE _meta_datasets d SET retired_at = now(), retired_reason = $2, updated_at = now()
         FROM target t WHERE d.id = t.id AND NOT t.already
         RETURNING d.id
       ), logged AS (
         INSERT INTO _meta_changes (dataset_id, change_type, description)
         SELECT id, 'retire', $3 FROM marked
       )
       SELECT d.id, coalesce(d.retired_at, now()) AS at, coalesce(d.retired_reason, $2) AS reason,
              t.already
       FROM target t JOIN _meta_datasets d ON d.id = t.id`,
      [matching.map((d) => d.id), reason, `retired: ${reason}`],
    );
    // Its DuckLake table is dropped in the same transaction: readers no longer see its files.
    for (const r of rows) {
      if (!r.already) await dropTable(tx, r.id, "bronze retire", `retired: ${reason}`);
    }
    return new Map(rows.map((r) => [r.id, r]));
  });
  const copiers = await db.query<Row>(
    `SELECT c.dataset_id, c.copier_id, c.host, c.pid FROM _meta_copier_claims c
     WHERE c.dataset_id = ANY($1::int[]) AND ${LIVE} ORDER BY c.dataset_id, c.ledger_start`,
    [matching.map((d) => d.id)],
  );
  return matching.map((dataset) => {
    const m = marked.get(dataset.id)!;
    return {
      dataset,
      retirement: { at: m.at, reason: m.reason },
      already: m.already,
      copiers: copiers.filter((c) => c.dataset_id === dataset.id).map((c) => ({
        copierId: c.copier_id as string,
        host: c.host as string | null,
        pid: c.pid as number | null,
      })),
    };
  });
}

function describeFilter(f: DatasetFilter): string {
  const parts = [
    f.network && `--network ${f.network}`,
    f.eraId && `--era ${f.eraId}`,
    f.version && `--version-label ${f.version}`,
    f.dataset && `--dataset ${f.dataset}`,
  ].filter(Boolean);
  return parts.join(" ");
}
