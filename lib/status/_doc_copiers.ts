/**
 * Who works on a dataset, for the status document: its copiers (from their claims and their pace),
 * its followers (with the serving copier's own live state where it is one of them) and the copiers
 * that died, each one entry per copier with its claims joined into ranges. Apart from doc.ts, which
 * assembles the document, because telling copiers apart and merging what each holds is most of
 * the work.
 */
import type { DatasetStatus } from "../metadata/status.ts";
import type { LiveState } from "../metrics/metrics.ts";
import { LAST_LEDGER } from "../table/grid.ts";
import type { CopierDoc, DeadDoc, FollowerDoc, HealthDoc } from "./schema.ts";

export const iso = (d: Date | null) => d?.toISOString() ?? null;
export const rate = (n: number, seconds: number) => seconds > 0 ? n / Math.max(seconds, 1) : null;
const _key = (c: { copierId: string; host: string | null; pid: number | null }) =>
  `${c.copierId}\u0000${c.host}\u0000${c.pid}`;

export function healthDoc(h: { ok: boolean; message: string }): HealthDoc {
  return {
    ok: h.ok,
    state: !h.ok ? "unhealthy" : h.message.startsWith("degraded") ? "degraded" : "ok",
    message: h.message,
  };
}

/**
 * Each copier: its standing claims (live ones; all recorded ones on a standby), and whoever
 * committed lately without one now (between cells, or just finished), with its pace.
 */
export function copiersOf(d: DatasetStatus): CopierDoc[] {
  const pace = new Map(d.pace.map((p) => [_key(p), p]));
  const copiers = new Map<string, CopierDoc>();
  for (const c of d.claims.filter((c) => c.live !== false)) {
    const k = _key(c);
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
    if (copiers.has(_key(p)) || p.ledgers === 0) continue;
    copiers.set(_key(p), {
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
  return [...copiers.values()].sort((a, b) =>
    a.copier_id.localeCompare(b.copier_id) || (a.pid ?? 0) - (b.pid ?? 0)
  );
}

/**
 * The followers with their lag. `mine`, the serving copier where it copies this dataset, gives its
 * own row what only it knows: the source's head, the lag in ledgers, its health.
 */
export function followersOf(
  d: DatasetStatus,
  now: Date,
  mine: { copierId: string; host: string; pid: number; live: LiveState } | null,
): FollowerDoc[] {
  return d.followers.map((f) => {
    const closed = f.lastCloseTimeMs === null ? null : new Date(f.lastCloseTimeMs);
    const own = mine && mine.copierId === f.copierId && mine.pid === f.pid &&
        mine.host === f.host
      ? mine.live
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
      health: own ? healthDoc(own.health) : null,
    };
  });
}

/** The dead copiers' claims, one entry per copier. */
export function deadOf(d: DatasetStatus): DeadDoc[] {
  const out = new Map<string, DeadDoc>();
  for (const x of d.dead) {
    const k = _key(x);
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
