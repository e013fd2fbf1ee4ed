import { EXIT } from "../../runtime/errors.ts";
import { createLogger, type Logger } from "../../runtime/log.ts";
import { repair, type RepairResult } from "../../recover/repair.ts";
import type { SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

/** `bronze repair` exits with this code when a partition could not be brought back. */
export const EXIT_NOT_REPAIRED = EXIT.incomplete;

export type RepairArgs = SettingsOf<"repair">;

export const REPAIR: CliCommand<"repair"> = {
  name: "repair",
  summary: "rebuild missing or corrupt partitions from the source",
  description:
    "rebuild from the source every partition whose stored file is missing or corrupt, publishing only bytes that match the lineage (exit 4 when one cannot be)",
  run: repairCommand,
};

/**
 * `bronze repair`: rebuilds, from the source, every selected partition whose stored file is
 * missing or not the bytes its lineage records, and publishes it only when the rebuilt bytes hash
 * to the recorded checksum. Returns 0 when every file is sound or repaired, EXIT_NOT_REPAIRED when
 * one could not be (the source gives other bytes, another writer changed it meanwhile, or its
 * path leads out of the storage root through a symbolic link: left alone).
 */
export async function repairCommand(
  args: RepairArgs,
  out: (line: string) => void = console.log,
  log: Logger = createLogger(args.logFormat),
): Promise<number> {
  const r = await repair(args, log);
  if (args.json) out(JSON.stringify(toJson(r)));
  else for (const line of formatRepair(r)) out(line);
  return r.repairs.some((x) =>
      x.outcome === "mismatch" || x.outcome === "raced" || x.outcome === "outside"
    )
    ? EXIT_NOT_REPAIRED
    : 0;
}

function toJson(r: RepairResult) {
  return {
    checked: r.checked,
    sound: r.sound,
    repaired: r.repairs.filter((x) => x.outcome === "restored" || x.outcome === "replaced").length,
    not_repaired:
      r.repairs.filter((x) =>
        x.outcome === "mismatch" || x.outcome === "raced" || x.outcome === "outside"
      ).length,
    seconds: Number(r.seconds.toFixed(3)),
    partitions: r.repairs.map((x) => ({
      dataset: x.dataset,
      lineage_id: x.lineageId,
      partition: { start: x.start, end: x.end },
      uri: x.uri,
      problem: x.problem,
      outcome: x.outcome,
      recorded_checksum: x.recorded,
      rebuilt_checksum: x.rebuilt,
      message: x.message,
    })),
    ducklake: r.ducklake,
  };
}

export function formatRepair(r: RepairResult): string[] {
  const fixed = r.repairs.filter((x) => x.outcome === "restored" || x.outcome === "replaced");
  const failed = r.repairs.filter((x) =>
    x.outcome === "mismatch" || x.outcome === "raced" || x.outcome === "outside"
  );
  const lines = [
    `checked ${r.checked} partition${r.checked === 1 ? "" : "s"} in ${r.seconds.toFixed(1)}s: ` +
    `${r.sound} sound, ${fixed.length} repaired, ${failed.length} not repaired`,
  ];
  for (const x of fixed) lines.push(`REPAIRED [${x.outcome}] ${x.message}`);
  for (const x of failed) lines.push(`NOT REPAIRED [${x.outcome}] ${x.message}`);
  for (const d of r.ducklake) {
    lines.push(
      `REPAIRED [ducklake] ${d.dataset}: DuckLake rows brought back to the lineage ` +
        `(${d.disagreements} file(s) disagreed; snapshot${d.snapshots.length === 1 ? "" : "s"} ${
          d.snapshots.join(", ") || "none"
        })`,
    );
  }
  return lines;
}
