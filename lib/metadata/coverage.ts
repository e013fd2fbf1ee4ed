/**
 * Coverage queries: which ledgers each dataset holds, and every gap, computed in SQL.
 *
 * One pass per dataset: an index-only scan of `_meta_lineage_coverage` (migration 003) in
 * ledger_start order feeds `lag(ledger_end)`; a partition whose start is not the previous end + 1
 * has a gap before it. Rows, bytes, partitions and the gap list are aggregated in the same pass,
 * so a million lineage rows need no sort and no heap visit.
 */
import type pg from "pg";
import type { Range } from "../table/layout.ts";
import { datasetLabel } from "./writer.ts";

export interface CoverageFilter {
  network?: string;
  eraId?: string;
  version?: string;
  dataset?: string;
  /** With a bound, ledgers missing between it and the nearest partition count as a gap. */
  start?: number;
  end?: number;
}

export interface DatasetCoverage {
  datasetId: number;
  domain: string;
  dataset: string;
  network: string;
  eraId: string;
  version: string;
  label: string;
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

/** The datasets matching the filter (domain, dataset, network, era, version), in a stable order. */
export const DATASETS_SQL = `
SELECT d.id, d.domain, d.dataset, d.version, d.era_id, d.network
FROM _meta_datasets d
WHERE ($1::text IS NULL OR d.network = $1)
  AND ($2::text IS NULL OR d.era_id = $2)
  AND ($3::text IS NULL OR d.version = $3)
  AND ($4::text IS NULL OR d.dataset = $4)
ORDER BY d.network, d.era_id, d.version, d.dataset, d.domain, d.id`;

/**
 * $1..$4: network, era, version, dataset filters (NULL = any); $5, $6: start, end (NULL = open).
 *
 * The lower bound on ledger_start is the start of the partition holding $5 (found by one index
 * probe), so a range deep inside a long dataset scans only the partitions it overlaps. The first
 * partition's lag defaults to $5 - 1, which turns missing ledgers at the front into a gap; the
 * last ledger held (the last partition's end) short of $6 leaves a trailing gap; a dataset with
 * no partition in [$5, $6] is one gap. (A lead() for the trailing gap would cost a second window
 * function per row for what max(ledger_end) already says.)
 */
export const COVERAGE_SQL = `
SELECT d.id, d.domain, d.dataset, d.version, d.era_id, d.network,
       c.first_ledger, c.last_ledger, c.partitions, c.row_count, c.byte_size,
       coalesce(c.gap_starts, '{}') || CASE
         WHEN c.last_ledger < $6::bigint THEN ARRAY[c.last_ledger + 1]
         WHEN c.partitions = 0 AND $5::bigint <= $6::bigint THEN ARRAY[$5::bigint]
         ELSE '{}' END AS gap_starts,
       coalesce(c.gap_ends, '{}') || CASE
         WHEN c.last_ledger < $6::bigint OR (c.partitions = 0 AND $5::bigint <= $6::bigint)
         THEN ARRAY[$6::bigint]
         ELSE '{}' END AS gap_ends
FROM (${DATASETS_SQL}) d
CROSS JOIN LATERAL (
  SELECT min(s.ledger_start) AS first_ledger,
         max(s.ledger_end) AS last_ledger,
         count(*)::int AS partitions,
         coalesce(sum(s.ledger_end - s.ledger_start + 1), 0)::bigint AS row_count,
         coalesce(sum(s.byte_size), 0)::bigint AS byte_size,
         array_agg(s.prev_end + 1) FILTER (WHERE s.ledger_start > s.prev_end + 1) AS gap_starts,
         array_agg(s.ledger_start - 1) FILTER (WHERE s.ledger_start > s.prev_end + 1) AS gap_ends
  FROM (
    SELECT l.ledger_start, l.ledger_end, l.byte_size,
           lag(l.ledger_end, 1, $5::bigint - 1) OVER (ORDER BY l.ledger_start) AS prev_end
    FROM _meta_lineage l
    WHERE l.dataset_id = d.id
      AND l.ledger_start >= coalesce(
            (SELECT max(m.ledger_start) FROM _meta_lineage m
             WHERE m.dataset_id = d.id AND m.ledger_start <= $5::bigint),
            $5::bigint, 0)
      AND l.ledger_start <= coalesce($6::bigint, 9223372036854775807)
      AND l.ledger_end >= coalesce($5::bigint, 0)
  ) s
) c
ORDER BY d.network, d.era_id, d.version, d.dataset, d.domain, d.id`;

type Queryable = Pick<pg.Pool, "query">;

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

export async function queryCoverage(
  db: Queryable,
  filter: CoverageFilter,
): Promise<DatasetCoverage[]> {
  const { rows } = await db.query(COVERAGE_SQL, coverageParams(filter));
  return rows.map((r: Record<string, unknown>) => {
    const first = r.first_ledger as number | null;
    const last = r.last_ledger as number | null;
    // array_agg follows the window's ledger order; sort anyway, it costs nothing.
    const starts = (r.gap_starts as (number | string)[]).map(Number);
    const ends = (r.gap_ends as (number | string)[]).map(Number);
    const gaps: Range[] = starts.map((s, i) => ({ start: s, end: ends[i] }));
    gaps.sort((a, b) => a.start - b.start);
    const info = {
      domain: r.domain as string,
      dataset: r.dataset as string,
      version: r.version as string,
      eraId: r.era_id as string,
      network: r.network as string,
    };
    return {
      datasetId: r.id as number,
      ...info,
      label: datasetLabel(info),
      firstLedger: first,
      lastLedger: last,
      partitions: r.partitions as number,
      rows: Number(r.row_count),
      bytes: Number(r.byte_size),
      gaps,
      missingLedgers: gaps.reduce((n, g) => n + g.end - g.start + 1, 0),
    };
  });
}

/** The datasets matching the filter (no lineage read). */
export async function findDatasets(
  db: Queryable,
  filter: CoverageFilter,
): Promise<
  {
    id: number;
    domain: string;
    dataset: string;
    version: string;
    eraId: string;
    network: string;
    label: string;
  }[]
> {
  const { rows } = await db.query(DATASETS_SQL, coverageParams(filter).slice(0, 4));
  return rows.map((r: Record<string, unknown>) => {
    const info = {
      domain: r.domain as string,
      dataset: r.dataset as string,
      version: r.version as string,
      eraId: r.era_id as string,
      network: r.network as string,
    };
    return { id: r.id as number, ...info, label: datasetLabel(info) };
  });
}
