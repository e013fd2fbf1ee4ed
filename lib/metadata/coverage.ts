/**
 * Which ledgers each dataset holds, and where the gaps are. Every caller reads the one
 * gaps-and-islands definition in the catalog, `_meta_islands(dataset, from, to)` (migration 004;
 * the `_meta_coverage` view psql users read is built on it too): `bronze coverage`, where a run
 * may resume (contiguous coverage from its start) and `checkpoint show` (the island holding the
 * checkpoint's ledger). Gaps are what lies between islands.
 */
import { gaps, type Range } from "../table/grid.ts";
import { dbOf, type Row } from "./_db.ts";
import type { Catalog } from "./catalog.ts";
import { type DatasetIdentity, datasetLabel } from "../table/dataset.ts";

export interface DatasetFilter {
  network?: string;
  eraId?: string;
  version?: string;
  dataset?: string;
}

export interface CoverageFilter extends DatasetFilter {
  /** With a bound, ledgers missing between it and the nearest partition count as a gap. */
  start?: number;
  end?: number;
}

/** A registered dataset: its catalog id, identity and label, and whether it is retired. */
export interface DatasetRef extends DatasetIdentity {
  id: number;
  label: string;
  /** When `bronze retire` retired the dataset, and why (null: it is not retired). */
  retiredAt: Date | null;
  retiredReason: string | null;
  /** Where its partitions are stored and its grid, as recorded with it (null: not known). */
  storageRoot: string | null;
  partitionSize: number | null;
}

export interface Island extends Range {
  partitions: number;
  rows: number;
  bytes: number;
}

/** A registered dataset and what it holds. */
export interface DatasetCoverage extends DatasetRef {
  /** Lowest and highest ledger of the partitions overlapping the range (null: none). */
  firstLedger: number | null;
  lastLedger: number | null;
  partitions: number;
  rows: number;
  bytes: number;
  /** Missing ranges, in ledger order, inside [start, end] (or the held extent without bounds). */
  gaps: Range[];
  missingLedgers: number;
}

/** The datasets matching the filter, in a stable order. $1..$4: network, era, version, dataset. */
const DATASETS_SQL = `
SELECT d.id, d.domain, d.dataset, d.version, d.era_id, d.network, d.retired_at, d.retired_reason,
       d.storage_root, d.partition_size
FROM _meta_datasets d
WHERE ($1::text IS NULL OR d.network = $1)
  AND ($2::text IS NULL OR d.era_id = $2)
  AND ($3::text IS NULL OR d.version = $3)
  AND ($4::text IS NULL OR d.dataset = $4)
ORDER BY d.network, d.era_id, d.version, d.dataset, d.domain, d.id`;

/** Every island of every dataset matching $1..$4 that overlaps [$5, $6] (NULL: open). */
export const COVERAGE_SQL = `
SELECT d.id, d.domain, d.dataset, d.version, d.era_id, d.network, d.retired_at, d.retired_reason,
       d.storage_root, d.partition_size,
       i.ledger_start, i.ledger_end, i.partitions, i.row_count, i.byte_size
FROM (${DATASETS_SQL}) d
LEFT JOIN LATERAL _meta_islands(d.id, $5::bigint, $6::bigint) i ON true
ORDER BY d.network, d.era_id, d.version, d.dataset, d.domain, d.id, i.ledger_start`;

export function coverageParams(f: CoverageFilter): unknown[] {
  return [
    f.network ?? null,
    f.eraId ?? null,
    f.version ?? null,
    f.dataset ?? null,
    f.start ?? null,
    f.end ?? null,
  ];
}

/** A row of DATASETS_SQL's columns as a DatasetRef (status.ts reads the same columns). */
export function datasetRef(r: Row): DatasetRef {
  const info = {
    domain: r.domain as string,
    dataset: r.dataset as string,
    version: r.version as string,
    eraId: r.era_id as string,
    network: r.network as string,
  };
  return {
    id: r.id as number,
    ...info,
    label: datasetLabel(info),
    retiredAt: (r.retired_at as Date | null) ?? null,
    retiredReason: (r.retired_reason as string | null) ?? null,
    storageRoot: (r.storage_root as string | null) ?? null,
    partitionSize: (r.partition_size as number | null) ?? null,
  };
}

function island(r: Row): Island {
  return {
    start: r.ledger_start as number,
    end: r.ledger_end as number,
    partitions: r.partitions as number,
    rows: r.row_count as number,
    bytes: r.byte_size as number,
  };
}

export async function queryCoverage(
  catalog: Catalog,
  filter: CoverageFilter,
): Promise<DatasetCoverage[]> {
  const rows = await dbOf(catalog).query(COVERAGE_SQL, coverageParams(filter));
  const out: DatasetCoverage[] = [];
  // One row per island, datasets in order; a dataset without any island has one row of NULLs.
  let ds: DatasetRef | undefined;
  let held: Island[] = [];
  for (const r of rows) {
    if (ds?.id !== r.id) {
      if (ds) out.push(summarize(ds, held, filter));
      ds = datasetRef(r);
      held = [];
    }
    if (r.ledger_start !== null) held.push(island(r));
  }
  if (ds) out.push(summarize(ds, held, filter));
  return out;
}

/** A dataset's totals and gaps from its islands (in ledger order) overlapping the filter's range. */
function summarize(ds: DatasetRef, islands: Island[], f: CoverageFilter): DatasetCoverage {
  const first = islands.length ? islands[0].start : null;
  const last = islands.length ? islands[islands.length - 1].end : null;
  const from = f.start ?? first;
  const to = f.end ?? last;
  const holes = from !== null && to !== null && from <= to
    ? gaps({ start: from, end: to }, islands)
    : [];
  return {
    ...ds,
    firstLedger: first,
    lastLedger: last,
    partitions: islands.reduce((n, i) => n + i.partitions, 0),
    rows: islands.reduce((n, i) => n + i.rows, 0),
    bytes: islands.reduce((n, i) => n + i.bytes, 0),
    gaps: holes,
    missingLedgers: holes.reduce((n, g) => n + g.end - g.start + 1, 0),
  };
}

/** The datasets matching the filter (domain, dataset, network, era, version), in a stable order. */
export async function findDatasets(catalog: Catalog, filter: DatasetFilter): Promise<DatasetRef[]> {
  const rows = await dbOf(catalog).query(DATASETS_SQL, coverageParams(filter).slice(0, 4));
  return rows.map(datasetRef);
}

/** The islands of one dataset overlapping [from, to] (undefined: open), in ledger order. */
export async function islands(
  catalog: Catalog,
  datasetId: number,
  from?: number,
  to?: number,
): Promise<Island[]> {
  const rows = await dbOf(catalog).query(
    `SELECT * FROM _meta_islands($1, $2::bigint, $3::bigint)`,
    [datasetId, from ?? null, to ?? null],
  );
  return rows.map(island);
}

/**
 * The last ledger L such that every ledger of [from, L] is recorded, or from - 1 when `from`
 * itself is not. This, not the checkpoint, is the truth about where a run may resume.
 */
export async function contiguousCoverage(
  catalog: Catalog,
  datasetId: number,
  from: number,
): Promise<number> {
  const [first] = await islands(catalog, datasetId, from);
  return first && first.start <= from ? first.end : from - 1;
}

/** The contiguous run of recorded ledgers ("island") that contains `ledger`, or null. */
export async function islandAround(
  catalog: Catalog,
  datasetId: number,
  ledger: number,
): Promise<Range | null> {
  const found = (await islands(catalog, datasetId)).find((i) =>
    i.start <= ledger && i.end >= ledger
  );
  return found ? { start: found.start, end: found.end } : null;
}
