/**
 * The status document: what `/status.json`, `bronze status --json`, the page and the terminal
 * summary all show, made (purely) from the catalog's status (metadata/status.ts) and, on a
 * copier's own page, that copier's live state (metrics' `live()`). snake_case, like every
 * `--json` of bronze.
 */
import type { CatalogStatus, DatasetStatus } from "../metadata/status.ts";
import { LAST_LEDGER } from "../table/grid.ts";
import type { LiveState } from "../metrics/metrics.ts";

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

/** Who serves the page: a copier, as it runs. */
export interface Self {
  copierId: string;
  host: string;
  pid: number;
  role: "fleet" | "follower" | "range";
  dataset: { network: string; era: string; version: string };
  live: LiveState;
}

export interface DocInput {
  catalogLabel: string;
  status: CatalogStatus | null;
  /** Why `status` is null. */
  problem?: string;
  self?: Self | null;
  refreshSeconds: number | null;
  /** When `status` is null: now. */
  now?: Date;
}

export function statusDoc(input: DocInput): StatusDoc {
  const { status, self } = input;
  const now = status?.now ?? input.now ?? new Date();
  const selfDoc = self ? _self(self) : null;
  return {
    bronze_status: STATUS_VERSION,
    generated_at: now.toISOString(),
    refresh_seconds: input.refreshSeconds,
    catalog: {
      label: input.catalogLabel,
      standby: status?.standby ?? false,
      problem: status ? null : input.problem ?? "not read yet",
    },
    pace_window_seconds: status?.paceSeconds ?? 0,
    copier: selfDoc,
    datasets: (status?.datasets ?? []).map((d) => _dataset(d, now, self)),
  };
}

function _health(h: { ok: boolean; message: string }): HealthDoc {
  return {
    ok: h.ok,
    state: !h.ok ? "unhealthy" : h.message.startsWith("degraded") ? "degraded" : "ok",
    message: h.message,
  };
}

function _self(s: Self): SelfDoc {
  const l = s.live;
  return {
    copier_id: s.copierId,
    role: s.role,
    dataset: { network: s.dataset.network, era_id: s.dataset.era, version: s.dataset.version },
    health: _health(l.health),
    source_head: l.sourceHead,
    last_committed_ledger: l.lastCommitted,
    lag_ledgers: l.sourceHead !== null && l.lastCommitted !== null
      ? Math.max(0, l.sourceHead - l.lastCommitted)
      : null,
    last_commit_at: l.lastCommitAt?.toISOString() ?? null,
    areas: [...new Set([...Object.keys(l.errors), ...Object.keys(l.retries)])].map((area) => ({
      area,
      errors: l.errors[area as keyof typeof l.errors] ?? 0,
      retries: l.retries[area as keyof typeof l.retries] ?? 0,
    })),
    recent: l.recent.map((p) => ({ at: p.at.toISOString(), area: p.area, message: p.message })),
  };
}

const iso = (d: Date | null) => d?.toISOString() ?? null;
const rate = (n: number, seconds: number) => seconds > 0 ? n / Math.max(seconds, 1) : null;
const key = (c: { copierId: string; host: string | null; pid: number | null }) =>
  `${c.copierId}\u0000${c.host}\u0000${c.pid}`;

function _dataset(d: DatasetStatus, now: Date, self?: Self | null) {
  const bands: BandDoc[] = d.bands.map((b) => ({
    first_cell: b.firstCell,
    last_cell: b.lastCell,
    start: b.start,
    end: b.end,
    cells: b.cells,
    committed: b.committed,
    partials: b.partials,
    claimed: b.claimed,
    gap: b.gap,
    held_incomplete: b.heldIncomplete,
    superseded: b.superseded,
    claimers: b.claimers.map((c) => ({ copier_id: c.copierId, cells: c.cells })),
  }));
  const sum = (k: "committed" | "partials" | "claimed" | "gap") =>
    bands.reduce((n, b) => n + b[k], 0);
  const pace = new Map(d.pace.map((p) => [key(p), p]));
  // Each copier: its standing claims (live ones; all recorded ones on a standby), and whoever
  // committed lately without one now (between cells, or just finished).
  const copiers = new Map<string, CopierDoc>();
  for (const c of d.claims.filter((c) => c.live !== false)) {
    const k = key(c);
    const role = c.fleet ? "fleet" : c.end >= LAST_LEDGER ? "follower" : "range";
    const doc = copiers.get(k) ?? {
      copier_id: c.copierId,
      host: c.host,
      pid: c.pid,
      role,
      held: [],
      cells_held: 0,
      since: iso(c.claimedAt),
      live: c.live,
      ledgers_per_second: null,
      bytes_per_second: null,
      last_commit_at: null,
    };
    doc.held.push({ start: c.start, end: c.end });
    doc.cells_held += c.fleet ? 1 : 0;
    if (doc.since === null || c.claimedAt.toISOString() < doc.since) doc.since = iso(c.claimedAt);
    copiers.set(k, doc);
  }
  for (const p of d.pace) {
    if (copiers.has(key(p)) || p.ledgers === 0) continue;
    copiers.set(key(p), {
      copier_id: p.copierId,
      host: p.host,
      pid: p.pid,
      role: p.role,
      held: [],
      cells_held: 0,
      since: null,
      live: false,
      ledgers_per_second: null,
      bytes_per_second: null,
      last_commit_at: null,
    });
  }
  for (const [k, c] of copiers) {
    const p = pace.get(k);
    if (!p) continue;
    c.ledgers_per_second = rate(p.ledgers, p.seconds);
    c.bytes_per_second = rate(p.bytes, p.seconds);
    c.last_commit_at = iso(p.lastCommitAt);
  }
  for (const c of copiers.values()) c.held = _merged(c.held);
  const copierList = [...copiers.values()].sort((a, b) =>
    a.copier_id.localeCompare(b.copier_id) || (a.pid ?? 0) - (b.pid ?? 0)
  );
  const fleets: FleetDoc[] = d.fleets.map((f) => {
    const lps = f.ledgers ? rate(f.ledgers, f.seconds) : null;
    const left = f.end - f.start + 1 - f.ledgersHeld;
    return {
      start: f.start,
      end: f.end,
      partition_size: f.size,
      cells: f.cells,
      ledgers_left: left,
      ledgers_per_second: lps,
      bytes_per_second: f.ledgers ? rate(f.bytes, f.seconds) : null,
      eta_seconds: lps ? Math.round(left / lps) : null,
    };
  });
  const mineLive = self &&
      self.dataset.network === d.network && self.dataset.era === d.eraId &&
      self.dataset.version === d.version
    ? self
    : null;
  const followers: FollowerDoc[] = d.followers.map((f) => {
    const closed = f.lastCloseTimeMs === null ? null : new Date(f.lastCloseTimeMs);
    const own = mineLive && mineLive.copierId === f.copierId && mineLive.pid === f.pid &&
        mineLive.host === f.host
      ? mineLive.live
      : null;
    return {
      copier_id: f.copierId,
      host: f.host,
      pid: f.pid,
      from: f.from,
      live: f.live,
      last_committed_ledger: f.lastCommitted,
      last_close_time: iso(closed),
      lag_seconds: closed
        ? Math.max(0, Math.round((now.getTime() - closed.getTime()) / 1000))
        : null,
      last_flush_at: iso(f.lastFlushAt),
      source_head: own?.sourceHead ?? null,
      lag_ledgers: own?.sourceHead != null ? Math.max(0, own.sourceHead - f.lastCommitted) : null,
      health: own ? _health(own.health) : null,
    };
  });
  return {
    id: d.id,
    label: d.label,
    domain: d.domain,
    dataset: d.dataset,
    network: d.network,
    era_id: d.eraId,
    version: d.version,
    retired: d.retiredAt ? { at: d.retiredAt.toISOString(), reason: d.retiredReason } : null,
    grid: d.extent
      ? { partition_size: d.size, start: d.extent.start, end: d.extent.end, cells: d.cells }
      : null,
    totals: {
      committed: sum("committed"),
      partials: sum("partials"),
      claimed: sum("claimed"),
      gap: sum("gap"),
      superseded: d.superseded,
      partitions: d.partitions,
      ledgers_held: d.ledgersHeld,
      bytes: d.bytes,
      last_commit_at: iso(d.lastCommitAt),
    },
    bands,
    copiers: copierList,
    fleets,
    followers,
    dead: _dead(d),
  } satisfies DatasetDoc;
}

/** The dead copiers' claims, one entry per copier. */
function _dead(d: DatasetStatus): DeadDoc[] {
  const out = new Map<string, DeadDoc>();
  for (const x of d.dead) {
    const k = key(x);
    const doc = out.get(k) ?? {
      copier_id: x.copierId,
      host: x.host,
      pid: x.pid,
      held: [],
      claimed_at: x.claimedAt.toISOString(),
      swept_at: iso(x.sweptAt),
      swept_by: [],
      taken_over_by: [],
      ledgers_held: 0,
      ledgers: 0,
    };
    doc.held.push({ start: x.start, end: x.end });
    if (x.claimedAt.toISOString() < doc.claimed_at) doc.claimed_at = x.claimedAt.toISOString();
    // Swept when all of its claims are; then, at the latest sweep.
    if (x.sweptAt === null || doc.swept_at === null) doc.swept_at = null;
    else if (x.sweptAt.toISOString() > doc.swept_at) doc.swept_at = x.sweptAt.toISOString();
    if (x.sweptBy && !doc.swept_by.includes(x.sweptBy)) doc.swept_by.push(x.sweptBy);
    if (x.takenOverBy && !doc.taken_over_by.includes(x.takenOverBy)) {
      doc.taken_over_by.push(x.takenOverBy);
    }
    doc.ledgers_held += x.ledgersHeld;
    // A follower's claim runs to the end of time: no count of what it should hold.
    doc.ledgers = doc.ledgers === null || x.end >= LAST_LEDGER
      ? null
      : doc.ledgers + x.end - x.start + 1;
    out.set(k, doc);
  }
  for (const doc of out.values()) doc.held = _merged(doc.held);
  return [...out.values()];
}

/** Ranges in order, adjacent ones joined (a copier's neighbouring cells read as one range). */
function _merged(ranges: { start: number; end: number }[]): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (const r of [...ranges].sort((a, b) => a.start - b.start)) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end + 1) last.end = Math.max(last.end, r.end);
    else out.push({ ...r });
  }
  return out;
}
