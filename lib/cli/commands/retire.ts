import { openReadyCatalog } from "../../metadata/migrate.ts";
import { type Retired, retireDatasets } from "../../metadata/retire.ts";
import { datasetFilterOf, type SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

export type RetireArgs = SettingsOf<"retire">;

export const RETIRE: CliCommand<"retire"> = {
  name: "retire",
  summary: "retire a dataset version: copy refuses it, gc deletes its files later",
  description:
    "mark the matching datasets retired (--reason required): their lineage stays, copy refuses them, gc --apply deletes their files",
  run: retireCommand,
};

/**
 * `bronze retire`: marks every dataset matching the filters retired (once: one already retired
 * keeps its first retirement), with a _meta_changes row. Its lineage stays; copy no longer writes
 * into it; `bronze gc --apply` deletes its files once it has been retired longer than gc's
 * --older-than. Refuses when no dataset matches.
 */
export async function retireCommand(
  args: RetireArgs,
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  const catalog = await openReadyCatalog({
    dsn: args.catalog,
    stateDir: args.stateDir,
    mustExist: true,
    log: (m) => err(`[catalog] ${m}`),
  });
  try {
    const retired = await retireDatasets(catalog, datasetFilterOf(args), args.reason);
    if (args.json) out(JSON.stringify({ catalog: catalog.label, datasets: retired.map(toJson) }));
    else for (const r of retired) formatRetired(r).forEach((l) => out(l));
    return 0;
  } finally {
    await catalog.close();
  }
}

function toJson(r: Retired) {
  return {
    dataset_id: r.dataset.id,
    domain: r.dataset.domain,
    dataset: r.dataset.dataset,
    network: r.dataset.network,
    era_id: r.dataset.eraId,
    version: r.dataset.version,
    retired_at: r.retirement.at.toISOString(),
    reason: r.retirement.reason,
    already_retired: r.already,
    copiers: r.copiers.map((c) => ({ copier_id: c.copierId, host: c.host, pid: c.pid })),
  };
}

export function formatRetired(r: Retired): string[] {
  const at = r.retirement.at.toISOString();
  const lines = [
    r.already
      ? `${r.dataset.label} was already retired at ${at} (${r.retirement.reason}); nothing changed`
      : `retired ${r.dataset.label} at ${at} (${r.retirement.reason}); its lineage stays, ` +
        `copy no longer writes into it, \`bronze gc --apply\` deletes its files once it has been ` +
        `retired longer than gc's --older-than`,
  ];
  for (const c of r.copiers) {
    lines.push(
      `  copier ${c.copierId} (host ${c.host}, pid ${c.pid}) is still copying into it: it goes on ` +
        `until it stops, and gc keeps what it claims`,
    );
  }
  return lines;
}
