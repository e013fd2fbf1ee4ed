import { EXIT } from "../../runtime/errors.ts";
import { compact, type Compaction } from "../../copy/compact.ts";
import { createLogger, type Logger } from "../../runtime/log.ts";
import type { SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

/** `bronze compact` exits with this code when a cell's partial is not what its lineage says. */
export const EXIT_REFUSED = EXIT.incomplete;

export type CompactArgs = SettingsOf<"compact">;

export const COMPACT: CliCommand<"compact"> = {
  name: "compact",
  summary: "merge each complete cell's partial partitions into one file",
  description:
    "replace the partial partitions of each complete grid cell by one file, byte-identical to a backfill's (the partials stay in lineage, marked superseded)",
  run: compactCommand,
};

/**
 * `bronze compact`: every cell of the selection that several current partitions cover exactly is
 * replaced by one full-cell file, byte-identical to a backfill's, and the partials are marked
 * superseded in the same transaction. Returns 0, or EXIT_REFUSED when a partial is corrupt (repair
 * it first).
 */
export async function compactCommand(
  args: CompactArgs,
  out: (line: string) => void = console.log,
  log: Logger = createLogger(args.logFormat),
): Promise<number> {
  const done = await compact(args, log);
  if (args.json) {
    out(JSON.stringify({
      cells: done.map((c) => ({
        dataset: c.dataset,
        cell: c.cell,
        partials: c.partials,
        outcome: c.outcome,
        checksum: c.checksum,
        reason: c.reason,
        seconds: Number(c.seconds.toFixed(3)),
      })),
    }));
  } else for (const line of formatCompact(done)) out(line);
  return done.some((c) => c.outcome === "refused") ? EXIT_REFUSED : 0;
}

export function formatCompact(done: Compaction[]): string[] {
  const compacted = done.filter((c) => c.outcome === "compacted");
  const partials = compacted.reduce((n, c) => n + c.partials, 0);
  const seconds = compacted.reduce((n, c) => n + c.seconds, 0);
  return [
    done.length === 0
      ? "nothing to compact: no cell is covered by two or more partitions"
      : `compacted ${compacted.length} cell${compacted.length === 1 ? "" : "s"} from ${partials} ` +
        `partitions (${seconds.toFixed(1)}s, ${
          compacted.length ? (seconds / compacted.length).toFixed(2) : "0"
        }s per cell); ${done.length - compacted.length} skipped or refused`,
    ...done.filter((c) => c.outcome !== "compacted").map((c) =>
      `${c.outcome.toUpperCase()} ${c.dataset} ${c.cell.start}-${c.cell.end}: ${c.reason}`
    ),
  ];
}
