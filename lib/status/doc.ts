/**
 * The status document (its shape: schema.ts), made purely from the catalog's status
 * (metadata/status.ts) and, on a copier's own page, that copier's live state (metrics' `live()`).
 * Who works on each dataset (its copiers, followers and the dead) is _doc_copiers.ts's.
 */
import type { CatalogStatus, DatasetStatus } from "../metadata/status.ts";
import type { LiveState } from "../metrics/metrics.ts";
import { copiersOf, deadOf, followersOf, healthDoc, iso, rate } from "./_doc_copiers.ts";
import {
  type BandDoc,
  type DatasetDoc,
  type FleetDoc,
  type SelfDoc,
  STATUS_VERSION,
  type StatusDoc,
} from "./schema.ts";

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

function _self(s: Self): SelfDoc {
  const l = s.live;
  return {
    copier_id: s.copierId,
    role: s.role,
    dataset: { network: s.dataset.network, era_id: s.dataset.era, version: s.dataset.version },
    health: healthDoc(l.health),
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

function _dataset(d: DatasetStatus, now: Date, self?: Self | null): DatasetDoc {
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
  // The serving copier, where it copies this dataset: its own follower row shows its live state.
  const mine = self &&
      self.dataset.network === d.network && self.dataset.era === d.eraId &&
      self.dataset.version === d.version
    ? self
    : null;
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
    copiers: copiersOf(d),
    fleets,
    followers: followersOf(d, now, mine),
    dead: deadOf(d),
  };
}
