/**
 * The status page's one statement (status.ts runs it and shapes its answer): every dataset with
 * its grid, its coverage strip already cut into at most `$1` bands (counts per state), its claims
 * (live or not), each copier's recent pace, its fleets, its followers, and the copiers that died
 * and what became of their cells. Read-only, and cheap: three passes over lineage (one aggregate,
 * the cells holding partitions, the commits within the pace window) and index probes for the rest.
 *
 * The strip's states of a grid cell (clipped to the dataset's extent):
 * - committed: every ledger held, by one current partition;
 * - partials: every ledger held, by several partial partitions (awaiting compaction);
 * - claimed: not complete, and a claim of a live copier covers it (being built now);
 * - gap: not complete, and nobody claims it (some of its ledgers may be held).
 * Superseded partitions whose files are still gc's (replaced by a compaction; gc deletes their
 * files after its grace period and notes each with a `gc_deleted` quality row) are counted per
 * band beside the states.
 *
 * The extent of a dataset runs from its lowest to its highest ledger that a current partition, a
 * claim (a follower's open-ended one counts by its start), a fleet's range or a claim that died
 * recently names, and for a live follower the cell it works on; its grid is the dataset's own
 * (recorded with it, migration 008), else a fleet's partition size, else its longest partition,
 * else the default 10000.
 */
import { LIVE } from "./claims.ts";

/**
 * $1 max bands, $2 pace window (s), $3 history window (s), $4 LAST_LEDGER (a claim reaching it is
 * open-ended). One row per dataset (in the order of findDatasets), or one row of NULLs when the
 * catalog has none.
 */
export const STATUS_SQL = `/* bronze status */
WITH ctx AS MATERIALIZED (
  SELECT pg_is_in_recovery() AS standby, now() AS now,
         now() - make_interval(secs => $2) AS pace_from
), claims AS MATERIALIZED (
  SELECT c.id, c.dataset_id, c.copier_id, c.host, c.pid, c.ledger_start, c.ledger_end,
         c.claimed_at, c.fleet_start, c.fleet_end, c.partition_size,
         CASE WHEN (SELECT standby FROM ctx) THEN NULL ELSE ${LIVE} END AS live
  FROM _meta_copier_claims c
), ended AS MATERIALIZED (
  SELECT e.* FROM _meta_claims_ended e
  WHERE e.ended_at > (SELECT now FROM ctx) - make_interval(secs => $3)
), lin AS MATERIALIZED (
  -- One pass over lineage: each dataset's extent and totals of current rows, its superseded
  -- rows, its last commit.
  SELECT l.dataset_id,
         min(l.ledger_start) FILTER (WHERE l.superseded_by IS NULL) AS lo,
         max(l.ledger_end) FILTER (WHERE l.superseded_by IS NULL) AS hi,
         count(*) FILTER (WHERE l.superseded_by IS NULL) AS partitions,
         coalesce(sum(l.row_count) FILTER (WHERE l.superseded_by IS NULL), 0) AS ledgers,
         coalesce(sum(l.byte_size) FILTER (WHERE l.superseded_by IS NULL), 0) AS bytes,
         max(l.row_count) FILTER (WHERE l.superseded_by IS NULL) AS longest,
         count(*) FILTER (WHERE l.superseded_by IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM _meta_quality q
           WHERE q.lineage_id = l.id AND q.metric_name = 'gc_deleted')) AS superseded,
         max(l.created_at) AS last_commit_at
  FROM _meta_lineage l GROUP BY l.dataset_id
), g0 AS MATERIALIZED (
  SELECT d.id AS dataset_id,
         coalesce(
           d.partition_size,
           (SELECT c.partition_size FROM claims c WHERE c.dataset_id = d.id
              AND c.partition_size IS NOT NULL ORDER BY c.claimed_at DESC LIMIT 1),
           (SELECT e.partition_size FROM ended e WHERE e.dataset_id = d.id
              AND e.partition_size IS NOT NULL ORDER BY e.ended_at DESC LIMIT 1),
           lin.longest, 10000)::bigint AS size,
         least(lin.lo,
           (SELECT min(least(c.ledger_start, c.fleet_start)) FROM claims c
            WHERE c.dataset_id = d.id AND c.live IS NOT FALSE),
           (SELECT min(coalesce(e.fleet_start, e.ledger_start)) FROM ended e
            WHERE e.dataset_id = d.id AND (e.fleet_start IS NOT NULL OR e.how = 'died')))
           AS lo,
         greatest(lin.hi,
           (SELECT max(greatest(CASE WHEN c.ledger_end < $4 THEN c.ledger_end ELSE c.ledger_start END,
                                CASE WHEN c.fleet_end < $4 THEN c.fleet_end END))
            FROM claims c WHERE c.dataset_id = d.id AND c.live IS NOT FALSE),
           (SELECT max(CASE WHEN coalesce(e.fleet_end, e.ledger_end) < $4
                            THEN coalesce(e.fleet_end, e.ledger_end) ELSE e.ledger_start END)
            FROM ended e
            WHERE e.dataset_id = d.id AND (e.fleet_start IS NOT NULL OR e.how = 'died')))
           AS hi,
         -- A live follower works on the ledger after the highest held (or its start).
         (SELECT max(greatest(c.ledger_start, coalesce(lin.hi + 1, c.ledger_start))) FROM claims c
          WHERE c.dataset_id = d.id AND c.live IS NOT FALSE AND c.ledger_end >= $4) AS next
  FROM _meta_datasets d LEFT JOIN lin ON lin.dataset_id = d.id
), g1 AS (
  -- ...through the end of that ledger's cell.
  SELECT g0.dataset_id, g0.size, g0.lo,
         greatest(g0.hi, ((g0.next - 1) / g0.size + 1) * g0.size) AS hi
  FROM g0 WHERE g0.lo IS NOT NULL
), g AS MATERIALIZED (
  -- The strip's grid: cells k0 .. k0 + n - 1, cut into nb bands; band b holds the cells whose
  -- offset r from k0 has floor(r * nb / n) = b.
  SELECT g1.*, (g1.lo - 1) / g1.size AS k0,
         (g1.hi - 1) / g1.size - (g1.lo - 1) / g1.size + 1 AS n,
         least((g1.hi - 1) / g1.size - (g1.lo - 1) / g1.size + 1, $1::bigint) AS nb
  FROM g1
), cells AS MATERIALIZED (
  -- The second pass: cells holding partitions, with their current rows, the ledgers those hold
  -- (clipped to the extent) and their superseded rows.
  SELECT g.dataset_id, k,
         ((k - g.k0) * g.nb) / g.n AS b,
         count(*) FILTER (WHERE l.superseded_by IS NULL) AS rows_,
         coalesce(sum(least(l.ledger_end, (k + 1) * g.size, g.hi)
                      - greatest(l.ledger_start, k * g.size + 1, g.lo) + 1)
                    FILTER (WHERE l.superseded_by IS NULL), 0) AS held,
         least((k + 1) * g.size, g.hi) - greatest(k * g.size + 1, g.lo) + 1 AS len,
         count(*) FILTER (WHERE l.superseded_by IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM _meta_quality q
           WHERE q.lineage_id = l.id AND q.metric_name = 'gc_deleted')) AS sup
  FROM g JOIN _meta_lineage l ON l.dataset_id = g.dataset_id
  CROSS JOIN LATERAL generate_series(
    greatest((l.ledger_start - 1) / g.size, g.k0),
    CASE WHEN l.superseded_by IS NULL THEN least((l.ledger_end - 1) / g.size, g.k0 + g.n - 1)
         ELSE greatest((l.ledger_start - 1) / g.size, g.k0) END) AS k
  GROUP BY g.dataset_id, k, g.k0, g.nb, g.n, g.size, g.hi, g.lo
), bandagg AS (
  SELECT c.dataset_id, c.b,
         count(*) FILTER (WHERE c.held = c.len AND c.rows_ = 1) AS committed,
         count(*) FILTER (WHERE c.held = c.len AND c.rows_ > 1) AS partials,
         coalesce(sum(c.held) FILTER (WHERE c.held < c.len), 0) AS held_incomplete,
         sum(c.sup) AS superseded
  FROM cells c GROUP BY c.dataset_id, c.b
), standing AS MATERIALIZED (
  -- Claims that count as claimed now (live ones; every recorded one on a standby), as cells.
  SELECT c.id, c.dataset_id, c.copier_id,
         (greatest(c.ledger_start, g.lo) - 1) / g.size AS kc0,
         (least(c.ledger_end, g.hi) - 1) / g.size AS kc1
  FROM claims c JOIN g ON g.dataset_id = c.dataset_id
  WHERE c.live IS NOT FALSE AND c.ledger_start <= g.hi AND c.ledger_end >= g.lo
), banded AS MATERIALIZED (
  SELECT g.dataset_id, b,
         g.k0 + (b * g.n + g.nb - 1) / g.nb AS kb0,
         g.k0 + ((b + 1) * g.n + g.nb - 1) / g.nb - 1 AS kb1,
         g.size, g.lo, g.hi
  FROM g CROSS JOIN LATERAL generate_series(0, g.nb - 1) AS b
), overlap AS (
  -- Per band and claim: the claim's cells in the band...
  SELECT s.id, x.dataset_id, x.b, s.copier_id,
         least(s.kc1, x.kb1) - greatest(s.kc0, x.kb0) + 1 AS cells
  FROM standing s JOIN banded x ON x.dataset_id = s.dataset_id
    AND x.kb0 <= s.kc1 AND x.kb1 >= s.kc0
), done_in_claims AS (
  -- ...and those of them complete already (a claim about to be released, a follower's past),
  -- found by the cell (a hash join), not by scanning every cell for every claim.
  SELECT s.id, c.b, count(*) AS cells
  FROM standing s CROSS JOIN LATERAL generate_series(s.kc0, s.kc1) AS sk
  JOIN cells c ON c.dataset_id = s.dataset_id AND c.k = sk AND c.held = c.len
  GROUP BY s.id, c.b
), claimagg AS (
  SELECT o.dataset_id, o.b,
         json_agg(json_build_object('copier_id', o.copier_id, 'cells', o.cells)
                  ORDER BY o.copier_id) AS claimers
  FROM (
    SELECT o.dataset_id, o.b, o.copier_id, sum(o.cells - coalesce(dn.cells, 0)) AS cells
    FROM overlap o LEFT JOIN done_in_claims dn ON dn.id = o.id AND dn.b = o.b
    GROUP BY o.dataset_id, o.b, o.copier_id
  ) o
  WHERE o.cells > 0
  GROUP BY o.dataset_id, o.b
), bands AS (
  SELECT x.dataset_id, x.b, x.kb0, x.kb1,
         greatest(x.kb0 * x.size + 1, x.lo) AS s, least((x.kb1 + 1) * x.size, x.hi) AS e,
         coalesce(a.committed, 0) AS committed, coalesce(a.partials, 0) AS partials,
         coalesce(a.held_incomplete, 0) AS held_incomplete,
         coalesce(a.superseded, 0) AS superseded, ca.claimers
  FROM banded x
  LEFT JOIN bandagg a ON a.dataset_id = x.dataset_id AND a.b = x.b
  LEFT JOIN claimagg ca ON ca.dataset_id = x.dataset_id AND ca.b = x.b
), recent AS MATERIALIZED (
  -- The third pass: current partitions committed within the pace window.
  SELECT l.dataset_id, l.ledger_start, l.ledger_end, l.row_count, l.byte_size, l.created_at
  FROM _meta_lineage l
  WHERE l.superseded_by IS NULL AND l.created_at > (SELECT pace_from FROM ctx)
), pace AS (
  -- What each copier committed in its claims (live, or ended within the window) lately.
  SELECT p.dataset_id, p.copier_id, p.host, p.pid,
         bool_or(p.fleet_start IS NOT NULL) AS fleet, bool_or(p.ledger_end >= $4) AS follower,
         coalesce(sum(r.row_count), 0) AS ledgers, coalesce(sum(r.byte_size), 0) AS bytes,
         extract(epoch FROM (SELECT now FROM ctx)
           - greatest(min(p.claimed_at), (SELECT pace_from FROM ctx))) AS seconds,
         max(r.created_at) AS last_commit_at
  FROM (
    SELECT c.dataset_id, c.copier_id, c.host, c.pid, c.ledger_start, c.ledger_end, c.claimed_at,
           (SELECT now FROM ctx) AS until, c.fleet_start
    FROM claims c WHERE c.live IS NOT FALSE
    UNION ALL
    SELECT e.dataset_id, e.copier_id, e.host, e.pid, e.ledger_start, e.ledger_end, e.claimed_at,
           e.ended_at, e.fleet_start
    FROM ended e WHERE e.ended_at > (SELECT pace_from FROM ctx)
  ) p
  LEFT JOIN recent r ON r.dataset_id = p.dataset_id
    AND r.ledger_start >= p.ledger_start AND r.ledger_end <= p.ledger_end
    AND r.created_at >= p.claimed_at AND r.created_at <= p.until
  GROUP BY p.dataset_id, p.copier_id, p.host, p.pid
), fleets AS (
  -- Each fleet's range (claimed now, or lately), what the catalog holds of it, and its pace: the
  -- ledgers committed in it since its first claim within the window.
  SELECT f.dataset_id, f.fleet_start, f.fleet_end, f.partition_size,
         (f.fleet_end - 1) / f.partition_size - (f.fleet_start - 1) / f.partition_size + 1 AS cells,
         -- Current rows never overlap: their overlaps with the range add up (index-only scan).
         (SELECT coalesce(sum(least(l.ledger_end, f.fleet_end)
                              - greatest(l.ledger_start, f.fleet_start) + 1), 0)
          FROM _meta_lineage l
          WHERE l.dataset_id = f.dataset_id AND l.superseded_by IS NULL
            AND l.ledger_start <= f.fleet_end AND l.ledger_end >= f.fleet_start) AS held,
         (SELECT coalesce(sum(r.row_count), 0) FROM recent r
          WHERE r.dataset_id = f.dataset_id AND r.ledger_start >= f.fleet_start
            AND r.ledger_end <= f.fleet_end AND r.created_at >= f.since) AS ledgers,
         (SELECT coalesce(sum(r.byte_size), 0) FROM recent r
          WHERE r.dataset_id = f.dataset_id AND r.ledger_start >= f.fleet_start
            AND r.ledger_end <= f.fleet_end AND r.created_at >= f.since) AS bytes,
         extract(epoch FROM (SELECT now FROM ctx) - f.since) AS seconds
  FROM (
    SELECT x.dataset_id, x.fleet_start, x.fleet_end, x.partition_size,
           greatest(min(x.claimed_at), (SELECT pace_from FROM ctx)) AS since
    FROM (
      SELECT dataset_id, fleet_start, fleet_end, partition_size, claimed_at FROM claims
      WHERE fleet_start IS NOT NULL AND live IS NOT FALSE
      UNION ALL
      SELECT dataset_id, fleet_start, fleet_end, partition_size, claimed_at FROM ended
      WHERE fleet_start IS NOT NULL AND ended_at > (SELECT pace_from FROM ctx)
    ) x
    GROUP BY x.dataset_id, x.fleet_start, x.fleet_end, x.partition_size
  ) f
), followers AS (
  SELECT c.dataset_id, c.copier_id, c.host, c.pid, c.ledger_start, c.live,
         coalesce((SELECT i.ledger_end FROM _meta_islands(c.dataset_id, c.ledger_start, NULL) i
                   WHERE i.ledger_start <= c.ledger_start ORDER BY i.ledger_start LIMIT 1),
                  c.ledger_start - 1) AS last_committed
  FROM claims c WHERE c.ledger_end >= $4
), followers2 AS (
  SELECT f.*,
         (SELECT q.metric_value FROM _meta_lineage l JOIN _meta_quality q ON q.lineage_id = l.id
          WHERE l.dataset_id = f.dataset_id AND l.superseded_by IS NULL
            AND l.ledger_end = f.last_committed AND q.metric_name = 'last_close_time_ms'
          ORDER BY q.id DESC LIMIT 1) AS last_close_ms,
         (SELECT max(l.created_at) FROM _meta_lineage l
          WHERE l.dataset_id = f.dataset_id AND l.ledger_start >= f.ledger_start) AS last_flush_at
  FROM followers f
), dead AS (
  -- Claims of copiers that died: still standing (live = false: not swept yet), or swept lately.
  SELECT c.dataset_id, c.copier_id, c.host, c.pid, c.ledger_start, c.ledger_end, c.claimed_at,
         NULL::timestamptz AS swept_at, NULL::text AS swept_by
  FROM claims c WHERE c.live IS FALSE
  UNION ALL
  SELECT e.dataset_id, e.copier_id, e.host, e.pid, e.ledger_start, e.ledger_end, e.claimed_at,
         e.ended_at, e.ended_by
  FROM ended e WHERE e.how = 'died'
), dead2 AS (
  SELECT dd.*,
         (SELECT t.copier_id FROM (
            SELECT c.copier_id, c.claimed_at FROM claims c
            WHERE c.dataset_id = dd.dataset_id AND c.ledger_start <= dd.ledger_end
              AND c.ledger_end >= dd.ledger_start AND c.claimed_at >= dd.swept_at
            UNION ALL
            SELECT e.copier_id, e.claimed_at FROM ended e
            WHERE e.dataset_id = dd.dataset_id AND e.ledger_start <= dd.ledger_end
              AND e.ledger_end >= dd.ledger_start AND e.claimed_at >= dd.swept_at
          ) t ORDER BY t.claimed_at LIMIT 1) AS taken_over_by,
         (SELECT coalesce(sum(least(i.ledger_end, dd.ledger_end)
                              - greatest(i.ledger_start, dd.ledger_start) + 1), 0)
          FROM _meta_islands(dd.dataset_id, dd.ledger_start, dd.ledger_end) i) AS held
  FROM dead dd
)
SELECT ctx.standby, ctx.now, d.id, d.domain, d.dataset, d.version, d.era_id, d.network,
       d.retired_at, d.retired_reason, d.storage_root, d.partition_size,
       g0.size, g.lo, g.hi, g.n AS cells,
       coalesce(lin.partitions, 0) AS partitions, coalesce(lin.ledgers, 0) AS ledgers,
       coalesce(lin.bytes, 0) AS bytes, coalesce(lin.superseded, 0) AS superseded,
       lin.last_commit_at,
       (SELECT json_agg(json_build_object(
                 'b0', bd.kb0, 'b1', bd.kb1, 's', bd.s, 'e', bd.e, 'committed', bd.committed,
                 'partials', bd.partials, 'held', bd.held_incomplete, 'superseded', bd.superseded,
                 'claimers', bd.claimers) ORDER BY bd.b)
        FROM bands bd WHERE bd.dataset_id = d.id) AS bands,
       (SELECT json_agg(json_build_object(
                 'copier_id', c.copier_id, 'host', c.host, 'pid', c.pid, 's', c.ledger_start,
                 'e', c.ledger_end, 'claimed_at', c.claimed_at, 'fs', c.fleet_start,
                 'fe', c.fleet_end, 'size', c.partition_size, 'live', c.live)
                 ORDER BY c.copier_id, c.ledger_start)
        FROM claims c WHERE c.dataset_id = d.id) AS claims,
       (SELECT json_agg(json_build_object(
                 'copier_id', p.copier_id, 'host', p.host, 'pid', p.pid, 'fleet', p.fleet,
                 'follower', p.follower, 'ledgers', p.ledgers,
                 'bytes', p.bytes, 'seconds', p.seconds, 'last_commit_at', p.last_commit_at)
                 ORDER BY p.copier_id, p.host, p.pid)
        FROM pace p WHERE p.dataset_id = d.id) AS pace,
       (SELECT json_agg(json_build_object(
                 's', f.fleet_start, 'e', f.fleet_end, 'size', f.partition_size,
                 'cells', f.cells, 'held', f.held, 'ledgers', f.ledgers, 'bytes', f.bytes,
                 'seconds', f.seconds) ORDER BY f.fleet_start, f.fleet_end)
        FROM fleets f WHERE f.dataset_id = d.id) AS fleets,
       (SELECT json_agg(json_build_object(
                 'copier_id', f.copier_id, 'host', f.host, 'pid', f.pid, 'from', f.ledger_start,
                 'live', f.live, 'last_committed', f.last_committed,
                 'last_close_ms', f.last_close_ms, 'last_flush_at', f.last_flush_at)
                 ORDER BY f.copier_id)
        FROM followers2 f WHERE f.dataset_id = d.id) AS followers,
       (SELECT json_agg(json_build_object(
                 'copier_id', x.copier_id, 'host', x.host, 'pid', x.pid, 's', x.ledger_start,
                 'e', x.ledger_end, 'claimed_at', x.claimed_at, 'swept_at', x.swept_at,
                 'swept_by', x.swept_by, 'taken_over_by', x.taken_over_by, 'held', x.held)
                 ORDER BY x.swept_at DESC NULLS FIRST, x.ledger_start)
        FROM dead2 x WHERE x.dataset_id = d.id) AS dead
FROM ctx
LEFT JOIN _meta_datasets d ON true
LEFT JOIN lin ON lin.dataset_id = d.id
LEFT JOIN g0 ON g0.dataset_id = d.id
LEFT JOIN g ON g.dataset_id = d.id
ORDER BY d.network, d.era_id, d.version, d.dataset, d.domain, d.id`;
