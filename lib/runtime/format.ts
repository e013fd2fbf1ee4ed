/** Human-readable figures for output and log lines: sizes, durations, ages. */

/** 1234567 → "1.2 MB" (decimal units, as disks and object stores count). */
export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** A duration as a person reads it: 0.25 → "250ms", 75 → "1m15s", 7260 → "2h01m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  if (seconds > 0 && seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h
    ? `${h}h${String(m).padStart(2, "0")}m`
    : m
    ? `${m}m${String(s % 60).padStart(2, "0")}s`
    : `${s}s`;
}

/**
 * A span as it would be typed as a flag (an age, a grace period): whole units where they fit.
 * 86400 → "24h", 604800 → "7d", 90 → "1m30s", 93900 → "26h05m", 0 → "0s".
 */
export function formatSpan(seconds: number): string {
  const s = Math.round(seconds);
  if (s >= 2 * 86_400 && s % 86_400 === 0) return `${s / 86_400}d`;
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600}h`;
  if (s >= 60 && s < 3600 && s % 60 === 0) return `${s / 60}m`;
  if (s >= 2 * 86_400) {
    return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, "0")}h`;
  }
  return formatDuration(seconds);
}

/**
 * A message squeezed onto one line (white space, new lines included, folded to one space), so an
 * error quoted from a library, a server or a JSON parser keeps bronze's one line per problem.
 */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}
