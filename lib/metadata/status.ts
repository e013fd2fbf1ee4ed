/**
 * Everything the status page and `bronze status` show from the catalog, read by ONE statement
 * (status_sql.ts), so a refresh costs one round trip whatever the page shows; read-only, so it runs
 * on a hot standby (where which claims are live cannot be seen: `standby` says so, and claims show
 * as recorded). Here: the answer's shape, and the statement run.
 */
import { dbOf } from "./_db.ts";
import type { Catalog } from "./catalog.ts";
import { STATUS_SQL } from "./status_sql.ts";
import { type DatasetRef, datasetRef } from "./coverage.ts";
import { LAST_LEDGER } from "../table/grid.ts";

export interface StatusQuery {
  /** The most bands a dataset's strip is cut into. */
  maxBands: number;
  /** Pace is measured over this many seconds. */
  paceSeconds: number;
  /** Ended claims (deaths, a fleet's range) are remembered this long. */
  historySeconds: number;
}

export const STATUS_DEFAULTS: StatusQuery = {
  maxBands: 240,
  paceSeconds: 300,
  historySeconds: 86_400,
};

/** A run of consecutive grid cells of one dataset's strip, with how many are in each state. */
export interface Band {
  /** Index (k) of its first and last cell on the grid. */
  firstCell: number;
  lastCell: number;
  /** Its first and last ledger (the extent's edges clip the outer cells). */
  start: number;
  end: number;
  cells: number;
  committed: number;
  partials: number;
  claimed: number;
  gap: number;
  /** Ledgers held in its incomplete cells (claimed or gap). */
  heldIncomplete: number;
  /** Superseded partitions in it (compacted away; their files are gc's). */
  superseded: number;
  /** Who claims its claimed cells: copier id and how many cells. */
  claimers: { copierId: string; cells: number }[];
}

export interface Claim {
  copierId: string;
  host: string | null;
  pid: number | null;
  start: number;
  end: number;
  claimedAt: Date;
  /** A fleet's range and grid; null for a copier of its own range (or a follower). */
  fleet: { start: number; end: number; size: number } | null;
  /** Its copier's session holds its lock; null on a standby (cannot be seen there). */
  live: boolean | null;
}

export interface CopierPace {
  copierId: string;
  host: string | null;
  pid: number | null;
  role: "fleet" | "follower" | "range";
  /** Ledgers and Parquet bytes committed in its claims over the pace window, and the seconds. */
  ledgers: number;
  bytes: number;
  seconds: number;
  lastCommitAt: Date | null;
}

export interface FleetProgress {
  start: number;
  end: number;
  size: number;
  cells: number;
  /** Ledgers of the range the catalog holds. */
  ledgersHeld: number;
  /** Ledgers and bytes committed in the range since its first claim within the pace window. */
  ledgers: number;
  bytes: number;
  seconds: number;
}

export interface Follower {
  copierId: string;
  host: string | null;
  pid: number | null;
  /** Its claim starts here (and is open-ended). */
  from: number;
  live: boolean | null;
  /** Last ledger of the contiguous run the catalog holds from `from` (from - 1: none yet). */
  lastCommitted: number;
  /** Close time of that ledger (ms since the epoch), as its partition's quality row says. */
  lastCloseTimeMs: number | null;
  /** When its last partition was committed (a flush or a full cell). */
  lastFlushAt: Date | null;
}

export interface DeadClaim {
  copierId: string;
  host: string | null;
  pid: number | null;
  start: number;
  end: number;
  claimedAt: Date;
  /** When it was swept (null: not yet, its row still stands). */
  sweptAt: Date | null;
  /** Who swept it: a copier id, or "gc" (null: not yet swept). */
  sweptBy: string | null;
  /** The first copier to claim its range after it died (null: none yet). */
  takenOverBy: string | null;
  /** Ledgers of its range the catalog holds now. */
  ledgersHeld: number;
}

export interface DatasetStatus extends DatasetRef {
  /** Partition size of the strip's grid. */
  size: number;
  /** The extent the strip shows (null: nothing recorded or claimed yet). */
  extent: { start: number; end: number } | null;
  cells: number;
  bands: Band[];
  partitions: number;
  ledgersHeld: number;
  bytes: number;
  superseded: number;
  lastCommitAt: Date | null;
  claims: Claim[];
  pace: CopierPace[];
  fleets: FleetProgress[];
  followers: Follower[];
  dead: DeadClaim[];
}

export interface CatalogStatus {
  /** The catalog's clock when it answered. */
  now: Date;
  /** A hot standby: claims' liveness cannot be seen. */
  standby: boolean;
  paceSeconds: number;
  datasets: DatasetStatus[];
}

type J = Record<string, unknown>;
const num = (v: unknown) => Number(v);
const date = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string));
const str = (v: unknown) => (v ?? null) as string | null;

/** The catalog's status, by ONE statement (STATUS_SQL). */
export async function catalogStatus(
  catalog: Catalog,
  q: StatusQuery = STATUS_DEFAULTS,
): Promise<CatalogStatus> {
  const rows = await dbOf(catalog).query(STATUS_SQL, [
    q.maxBands,
    q.paceSeconds,
    q.historySeconds,
    LAST_LEDGER,
  ]);
  const head = rows[0];
  return {
    now: head.now as Date,
    standby: head.standby as boolean,
    paceSeconds: q.paceSeconds,
    datasets: rows.filter((r) => r.id !== null).map(_dataset),
  };
}

function _dataset(r: J): DatasetStatus {
  const size = num(r.size);
  const extent = r.lo === null ? null : { start: num(r.lo), end: num(r.hi) };
  return {
    ...datasetRef(r),
    size,
    extent,
    cells: extent ? num(r.cells) : 0,
    bands: ((r.bands ?? []) as J[]).map((b) => {
      const cells = num(b.b1) - num(b.b0) + 1;
      const claimers = ((b.claimers ?? []) as J[]).map((c) => ({
        copierId: c.copier_id as string,
        cells: num(c.cells),
      }));
      const committed = num(b.committed);
      const partials = num(b.partials);
      // Two claims may share a cell at their (unaligned) edges: never more than the band holds.
      const claimed = Math.min(
        claimers.reduce((n, c) => n + c.cells, 0),
        cells - committed - partials,
      );
      return {
        firstCell: num(b.b0),
        lastCell: num(b.b1),
        start: num(b.s),
        end: num(b.e),
        cells,
        committed,
        partials,
        claimed,
        gap: cells - committed - partials - claimed,
        heldIncomplete: num(b.held),
        superseded: num(b.superseded),
        claimers,
      };
    }),
    partitions: num(r.partitions),
    ledgersHeld: num(r.ledgers),
    bytes: num(r.bytes),
    superseded: num(r.superseded),
    lastCommitAt: (r.last_commit_at as Date | null) ?? null,
    claims: ((r.claims ?? []) as J[]).map((c) => ({
      copierId: c.copier_id as string,
      host: str(c.host),
      pid: c.pid === null ? null : num(c.pid),
      start: num(c.s),
      end: num(c.e),
      claimedAt: date(c.claimed_at)!,
      fleet: c.fs === null ? null : { start: num(c.fs), end: num(c.fe), size: num(c.size) },
      live: (c.live ?? null) as boolean | null,
    })),
    pace: ((r.pace ?? []) as J[]).map((p) => ({
      copierId: p.copier_id as string,
      host: str(p.host),
      pid: p.pid === null ? null : num(p.pid),
      role: p.fleet ? "fleet" : p.follower ? "follower" : "range",
      ledgers: num(p.ledgers),
      bytes: num(p.bytes),
      seconds: num(p.seconds),
      lastCommitAt: date(p.last_commit_at),
    })),
    fleets: ((r.fleets ?? []) as J[]).map((f) => ({
      start: num(f.s),
      end: num(f.e),
      size: num(f.size),
      cells: num(f.cells),
      ledgersHeld: num(f.held),
      ledgers: num(f.ledgers),
      bytes: num(f.bytes),
      seconds: num(f.seconds),
    })),
    followers: ((r.followers ?? []) as J[]).map((f) => ({
      copierId: f.copier_id as string,
      host: str(f.host),
      pid: f.pid === null ? null : num(f.pid),
      from: num(f.from),
      live: (f.live ?? null) as boolean | null,
      lastCommitted: num(f.last_committed),
      lastCloseTimeMs: f.last_close_ms === null ? null : num(f.last_close_ms),
      lastFlushAt: date(f.last_flush_at),
    })),
    dead: ((r.dead ?? []) as J[]).map((x) => ({
      copierId: x.copier_id as string,
      host: str(x.host),
      pid: x.pid === null ? null : num(x.pid),
      start: num(x.s),
      end: num(x.e),
      claimedAt: date(x.claimed_at)!,
      sweptAt: date(x.swept_at),
      sweptBy: str(x.swept_by),
      takenOverBy: str(x.taken_over_by),
      ledgersHeld: num(x.held),
    })),
  };
}
