import { EXIT } from "../../runtime/errors.ts";
import { createLogger, type Logger } from "../../runtime/log.ts";
import { verify, type VerifyResult } from "../../verify/verify.ts";
import { formatBytes } from "../../runtime/format.ts";
import type { SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

/** `bronze verify` exits with this code when any partition fails a check. */
export const EXIT_VERIFY_FAILED = EXIT.incomplete;

export type VerifyArgs = SettingsOf<"verify">;

export const VERIFY: CliCommand<"verify"> = {
  name: "verify",
  summary: "are the stored bytes what the catalog recorded?",
  description:
    "re-read stored partitions and check them against their lineage (exit 4 on any failure)",
  run: verifyCommand,
};

/**
 * `bronze verify`: re-reads every selected partition and checks it against its lineage row.
 * Failures go to stderr as they are found and are summed up on stdout (or one JSON object with
 * --json). Returns 0, or EXIT_VERIFY_FAILED when any check failed.
 */
export async function verifyCommand(
  args: VerifyArgs,
  out: (line: string) => void = console.log,
  log: Logger = createLogger(args.logFormat),
): Promise<number> {
  const r = await verify(args, log);
  if (args.json) out(JSON.stringify(toJson(r)));
  else for (const line of formatVerify(r)) out(line);
  return r.failed > 0 || r.ducklake.length > 0 ? EXIT_VERIFY_FAILED : 0;
}

function toJson(r: VerifyResult) {
  return {
    ok: r.failed === 0 && r.ducklake.length === 0,
    partitions: r.partitions,
    passed: r.passed,
    failed: r.failed,
    ledgers: r.ledgers,
    bytes: r.bytes,
    seconds: Number(r.seconds.toFixed(3)),
    failures: r.failures.map((f) => ({
      dataset: f.dataset,
      lineage_id: f.lineageId,
      partition: { start: f.start, end: f.end },
      uri: f.uri,
      ledger: f.ledger,
      check: f.check,
      message: f.message,
    })),
    ducklake: r.ducklake,
    // The same failures as the text, bounded the same way: the rest are counted per partition
    // and kind (a script acts per partition; memory stays bounded however much is broken).
    omitted: r.omitted.map((o) => ({
      dataset: o.dataset,
      lineage_id: o.lineageId,
      partition: { start: o.start, end: o.end },
      uri: o.uri,
      check: o.check,
      count: o.count,
      ledgers: o.firstLedger === null ? null : { first: o.firstLedger, last: o.lastLedger },
    })),
    retired: r.retired.map((d) => ({
      dataset: d.dataset,
      retired_at: d.retiredAt.toISOString(),
      reason: d.reason,
      partitions: d.partitions,
      ledgers: d.ledgers,
    })),
  };
}

export function formatVerify(r: VerifyResult): string[] {
  const rate = r.seconds > 0 ? r.bytes / r.seconds / 1e6 : 0;
  const lines = [
    `verified ${r.partitions} partition${r.partitions === 1 ? "" : "s"} (${r.ledgers} ledgers, ${
      formatBytes(r.bytes)
    }) in ${r.seconds.toFixed(1)}s (${
      rate.toFixed(1)
    } MB/s): ${r.passed} passed, ${r.failed} failed${
      r.failed ? ` (checks failed: ${[...new Set(r.failures.map((f) => f.check))].join(", ")})` : ""
    }`,
  ];
  // Each partition's first failures of each kind, then how many more of each there were.
  const more = Map.groupBy(r.omitted, (o) => o.lineageId);
  r.failures.forEach((f, i) => {
    lines.push(`FAIL [${f.check}] ${f.message}`);
    if (r.failures[i + 1]?.lineageId === f.lineageId) return;
    for (const o of more.get(f.lineageId) ?? []) {
      const where = o.firstLedger === null
        ? ""
        : o.firstLedger === o.lastLedger
        ? ` (ledger ${o.firstLedger})`
        : ` (ledgers ${o.firstLedger}-${o.lastLedger})`;
      lines.push(
        `FAIL [${o.check}] partition ${o.start}-${o.end} (${o.uri}): ${o.count} more ${o.check} ` +
          `failure${o.count === 1 ? "" : "s"}${where}, not shown`,
      );
    }
  });
  for (const d of r.ducklake) lines.push(`FAIL [ducklake] ${d.dataset}: ${d.message}`);
  for (const d of r.retired) {
    lines.push(
      `retired: ${d.partitions} partition${d.partitions === 1 ? "" : "s"} (${d.ledgers} ledgers) ` +
        `of ${d.dataset} not checked: retired at ${d.retiredAt.toISOString()} (${d.reason}); ` +
        `gc deletes its files`,
    );
  }
  if (r.failed || r.ducklake.length) {
    lines.push(
      "the way back: `bronze repair --source <lake or RPC>` (with the same filters) rebuilds " +
        "missing or corrupt files from the source, publishing only bytes that match the lineage, " +
        "and brings the DuckLake rows back to the lineage",
    );
  }
  return lines;
}
