import { type Fleet, fleetReport } from "../../metadata/fleet.ts";
import { openReadyCatalog } from "../../metadata/migrate.ts";
import { formatDuration } from "../../runtime/format.ts";
import { datasetFilterOf, type SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

export type FleetOptions = SettingsOf<"fleet">;

export const FLEET: CliCommand<"fleet"> = {
  name: "fleet",
  summary: "who is copying what, across machines, and how fast",
  description:
    "who is copying what: each fleet's cells committed, claimed and left, its pace and ETA, and every copier working",
  run: fleetCommand,
};

/**
 * `bronze fleet`: who is copying what, across machines: per dataset, each fleet (its range and
 * grid, its cells committed / claimed / left, its recent pace and an ETA) and each copier working
 * (id, host, pid, since, what it holds). Text for people, one JSON object with --json.
 */
export async function fleetCommand(
  opts: FleetOptions,
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  const catalog = await openReadyCatalog({
    dsn: opts.catalog,
    mustExist: true,
    stateDir: opts.stateDir,
    log: (m) => err(`[catalog] ${m}`),
  });
  try {
    const fleets = await fleetReport(catalog, datasetFilterOf(opts));
    if (opts.json) out(JSON.stringify({ catalog: catalog.label, fleets: fleets.map(toJson) }));
    else for (const line of formatFleets(catalog.label, fleets)) out(line);
    return 0;
  } finally {
    await catalog.close();
  }
}

function eta(f: Fleet): number | null {
  if (!f.cells || !f.ledgersPerSecond) return null;
  return f.cells.ledgersLeft / f.ledgersPerSecond;
}

function toJson(f: Fleet) {
  const seconds = eta(f);
  return {
    dataset: {
      id: f.dataset.id,
      domain: f.dataset.domain,
      dataset: f.dataset.dataset,
      network: f.dataset.network,
      era_id: f.dataset.eraId,
      version: f.dataset.version,
    },
    range: f.range
      ? { start: f.range.start, end: f.range.end, partition_size: f.range.size }
      : null,
    liveness_visible: f.liveness,
    cells: f.cells
      ? {
        total: f.cells.cells,
        committed: f.cells.committed,
        claimed: f.cells.claimed,
        left: f.cells.left,
        ledgers_left: f.cells.ledgersLeft,
      }
      : null,
    ledgers_per_second: f.ledgersPerSecond === null ? null : Number(f.ledgersPerSecond.toFixed(1)),
    eta_seconds: seconds === null ? null : Math.round(seconds),
    copiers: f.copiers.map((c) => ({
      copier_id: c.copierId,
      host: c.host,
      pid: c.pid,
      since: c.since.toISOString(),
      held: c.held,
    })),
  };
}

export function formatFleets(catalog: string, fleets: Fleet[]): string[] {
  const lines = [`catalog: ${catalog}`];
  if (!fleets.length) {
    lines.push("no copier is working now");
    return lines;
  }
  for (const f of fleets) {
    lines.push("");
    if (f.range && f.cells) {
      const c = f.cells;
      const pct = c.cells ? ((100 * c.committed) / c.cells).toFixed(1) : "0";
      lines.push(
        `${f.dataset.label}: fleet on ${f.range.start}-${f.range.end} in cells of ${f.range.size}`,
        `  cells     ${c.cells}: ${c.committed} committed (${pct}%), ${c.claimed} claimed, ${c.left} left`,
      );
      const seconds = eta(f);
      lines.push(
        f.ledgersPerSecond === null
          ? "  pace      no commits in the last 5 minutes"
          : `  pace      ${f.ledgersPerSecond.toFixed(0)} ledgers/s over the last 5 minutes; ETA ${
            seconds === null ? "?" : formatDuration(seconds)
          }`,
      );
    } else {
      lines.push(`${f.dataset.label}: copiers of disjoint ranges`);
    }
    if (!f.liveness) {
      lines.push(
        "  (a standby: it cannot see which claims are live; these are the claims recorded)",
      );
    }
    const rows = f.copiers.map((c) => [
      c.copierId,
      c.host,
      String(c.pid),
      c.since.toISOString(),
      c.held.map((h) => `${h.start}-${h.end}`).join(", "),
    ]);
    const header = ["COPIER", "HOST", "PID", "SINCE", f.range ? "CELLS HELD" : "RANGE"];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    for (const r of [header, ...rows]) {
      lines.push(`  ${r.map((v, i) => i === r.length - 1 ? v : v.padEnd(widths[i])).join("  ")}`);
    }
  }
  return lines;
}
