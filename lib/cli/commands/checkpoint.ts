import {
  type Checkpoint,
  checkpointManager,
  ErrNoCheckpoint,
} from "../../checkpoint/checkpoint.ts";
import { BronzeError } from "../../runtime/errors.ts";
import { runRetrier } from "../../runtime/retry.ts";
import { islandAround } from "../../metadata/coverage.ts";
import { openReadyCatalog } from "../../metadata/migrate.ts";
import { CatalogWriter } from "../../metadata/writer.ts";
import { TABLE } from "../../table/schema.ts";
import type { SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

export type CheckpointShowArgs = SettingsOf<"checkpointShow">;

export const CHECKPOINT_SHOW: CliCommand<"checkpointShow"> = {
  name: "checkpointShow",
  summary: "where is this copier?",
  description: "print the checkpoint and the catalog's view beside it",
  run: checkpointShowCommand,
};

/**
 * `bronze checkpoint show`: the checkpoint, and the catalog's view beside it. The catalog is the
 * truth; a checkpoint lagging it is normal after a crash between commit and save. Returns the
 * exit code.
 */
export async function checkpointShowCommand(
  args: CheckpointShowArgs,
  out: (line: string) => void = console.log,
): Promise<number> {
  const manager = checkpointManager(args.checkpoint, runRetrier(args.retryFor));
  let cp: Checkpoint;
  try {
    cp = await manager.load();
  } catch (err) {
    if (!(err instanceof ErrNoCheckpoint)) throw err;
    if (args.json) out("null");
    else {out(
        `no checkpoint at ${manager.location}: a copy with it starts at its --start, skipping what the catalog already holds`,
      );}
    return 0;
  }
  if (args.json) {
    out(JSON.stringify(cp, null, 2));
    return 0;
  }
  const view = await catalogView(args, cp);
  const p = cp.last_committed_partition;
  out(`checkpoint             ${manager.location}`);
  out(
    `copier                 ${cp.copier_id} (dataset ${TABLE} ${cp.network}/${cp.era_id}/${cp.version_label})`,
  );
  out(`last committed ledger  ${cp.last_committed_ledger}`);
  out(`last partition         ${p ? `${p.start}-${p.end}  ${p.checksum}` : "(none)"}`);
  out(`saved at               ${cp.updated_at}`);
  out(`catalog                ${view}`);
  return 0;
}

async function catalogView(args: CheckpointShowArgs, cp: Checkpoint): Promise<string> {
  let catalog;
  try {
    catalog = await openReadyCatalog({
      dsn: args.catalog,
      stateDir: args.stateDir,
      mustExist: true,
    });
  } catch (err) {
    return `unavailable: ${(err as Error).message}`;
  }
  try {
    const writer = new CatalogWriter(catalog);
    const dataset = await writer.findDataset({
      domain: "bronze",
      dataset: TABLE,
      version: cp.version_label,
      eraId: cp.era_id,
      network: cp.network,
    });
    if (!dataset) {
      return `${catalog.label} has no such dataset: it does not agree with the checkpoint`;
    }
    const id = dataset.id;
    const last = cp.last_committed_ledger;
    const island = await islandAround(catalog, id, last);
    const p = cp.last_committed_partition;
    const row = p ? await writer.findPartition(id, p.start, p.end) : null;
    const parts: string[] = [];
    if (!island) {
      parts.push(`holds no lineage at ledger ${last}: the checkpoint is ahead of the catalog`);
    } else if (island.end === last) {
      parts.push(`holds ${island.start}-${island.end} contiguously: agrees`);
    } else {parts.push(
        `holds ${island.start}-${island.end} contiguously: ${
          island.end - last
        } ledgers beyond the checkpoint (the checkpoint lags; the catalog is the truth)`,
      );}
    if (p && !row) parts.push(`no lineage row for partition ${p.start}-${p.end}`);
    else if (p && row && row.checksum !== p.checksum) {
      parts.push(
        `partition ${p.start}-${p.end} is recorded with ${row.checksum}, not ${p.checksum}`,
      );
    }
    return parts.join("; ");
  } catch (err) {
    if (err instanceof BronzeError) return `unavailable: ${err.message}`;
    throw err;
  } finally {
    await catalog.close();
  }
}
