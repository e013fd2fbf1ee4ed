/**
 * The status document's shape: what `/status.json`, `bronze status --json`, the page and the
 * terminal summary all show. snake_case, like every `--json` of bronze. Apart from its making
 * (doc.ts) because it is a contract of its own, read by people's scripts and dashboards and by
 * the renderers (render.ts, text.ts), none of which need to know how it is made.
 */

/** Bumped when a field changes meaning or goes away. */
export const STATUS_VERSION = 1;

export type StripState = "committed" | "partials" | "claimed" | "gap";
export const STRIP_STATES: readonly StripState[] = ["committed", "partials", "claimed", "gap"];

export interface BandDoc {
  first_cell: number;
  last_cell: number;
  start: number;
  end: number;
  cells: number;
  committed: number;
  partials: number;
  claimed: number;
  gap: number;
  /** Ledgers held in its incomplete (claimed or gap) cells. */
  held_incomplete: number;
  superseded: number;
  claimers: { copier_id: string; cells: number }[];
}

export interface CopierDoc {
  copier_id: string;
  host: string | null;
  pid: number | null;
  role: "fleet" | "follower" | "range";
  /** Its live claims now (adjacent ones joined): cells for a fleet copier, its range otherwise. */
  held: { start: number; end: number }[];
  cells_held: number;
  since: string | null;
  /**
   * Its session holds its claims (null: cannot be seen, on a standby; false: it holds none now,
   * but committed within the pace window).
   */
  live: boolean | null;
  ledgers_per_second: number | null;
  bytes_per_second: number | null;
  last_commit_at: string | null;
}

export interface FleetDoc {
  start: number;
  end: number;
  partition_size: number;
  cells: number;
  ledgers_left: number;
  ledgers_per_second: number | null;
  bytes_per_second: number | null;
  eta_seconds: number | null;
}

export interface FollowerDoc {
  copier_id: string;
  host: string | null;
  pid: number | null;
  from: number;
  live: boolean | null;
  last_committed_ledger: number;
  /** Close time of that ledger, and how long before the catalog's now that was. */
  last_close_time: string | null;
  lag_seconds: number | null;
  last_flush_at: string | null;
  /** Only on the follower's own page: the source's head, the lag in ledgers, its health. */
  source_head: number | null;
  lag_ledgers: number | null;
  health: HealthDoc | null;
}

export interface DeadDoc {
  copier_id: string;
  host: string | null;
  pid: number | null;
  held: { start: number; end: number }[];
  claimed_at: string;
  /** When the last of its claims was swept (null: some not swept yet). */
  swept_at: string | null;
  swept_by: string[];
  taken_over_by: string[];
  /** Ledgers of its claims the catalog holds now, of `ledgers` (null: a follower's, open-ended). */
  ledgers_held: number;
  ledgers: number | null;
}

export interface DatasetDoc {
  id: number;
  label: string;
  domain: string;
  dataset: string;
  network: string;
  era_id: string;
  version: string;
  retired: { at: string; reason: string | null } | null;
  /** The strip's grid and extent (null: nothing recorded or claimed yet). */
  grid: { partition_size: number; start: number; end: number; cells: number } | null;
  totals: {
    committed: number;
    partials: number;
    claimed: number;
    gap: number;
    superseded: number;
    partitions: number;
    ledgers_held: number;
    bytes: number;
    last_commit_at: string | null;
  };
  bands: BandDoc[];
  copiers: CopierDoc[];
  fleets: FleetDoc[];
  followers: FollowerDoc[];
  dead: DeadDoc[];
}

export interface HealthDoc {
  ok: boolean;
  /** ok, degraded (retrying), or unhealthy. */
  state: "ok" | "degraded" | "unhealthy";
  message: string;
}

/** The copier serving the page, as it knows itself. */
export interface SelfDoc {
  copier_id: string;
  role: "fleet" | "follower" | "range";
  dataset: { network: string; era_id: string; version: string };
  health: HealthDoc;
  source_head: number | null;
  last_committed_ledger: number | null;
  lag_ledgers: number | null;
  last_commit_at: string | null;
  /** Errors (bronze_errors_total) and retries (bronze_retries_total) of each area. */
  areas: { area: string; errors: number; retries: number }[];
  recent: { at: string; area: string; message: string }[];
}

export interface StatusDoc {
  bronze_status: number;
  /** The catalog's clock when it answered (or this process's, when it could not). */
  generated_at: string;
  /** How often the page refreshes (null: a page written once, by `bronze status --html`). */
  refresh_seconds: number | null;
  catalog: {
    label: string;
    /** A hot standby: which claims are live cannot be seen there. */
    standby: boolean;
    /** Why the catalog could not be read (the page still shows the copier's own state). */
    problem: string | null;
  };
  pace_window_seconds: number;
  copier: SelfDoc | null;
  datasets: DatasetDoc[];
}
