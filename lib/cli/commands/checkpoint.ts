import {
  type Checkpoint,
  checkpointManager,
  ErrNoCheckpoint,
} from "../../checkpoint/checkpoint.ts";
import { BronzeError } from "../../errors.ts";
import { openReadyCatalog } from "../../metadata/migrate.ts";
import { CatalogWriter } from "../../metadata/writer.ts";
import { TABLE } from "../../table/layout.ts";
import { type Flags, resolveSettings } from "../../settings.ts";

export const CHECKPOINT_SHOW_SETTINGS = ["checkpoint", "stateDir", "catalog", "json"] as const;

export type CheckpointShowArgs = {
  checkpoint: string;
  stateDir: string;
  catalog?: string;
  json: boolean;
};

export function parseCheckpointShowArgs(
  flags: Flags,
  env?: (n: string) => string | undefined,
): CheckpointShowArgs {
  return resolveSettings(CHECKPOINT_SHOW_SETTINGS, flags, env);
}

/**
 * `bronze checkpoint show`: the checkpoint, and the catalog's view beside it. The catalog is the
 * truth; a checkpoint lagging it is normal after a crash between commit and save.
 */
export async function checkpointShowCommand(
  args: CheckpointShowArgs,
  out: (line: string) => void = console.log,
): Promise<void> {
  const manager = checkpointManager(args.checkpoint);
  let cp: Checkpoint;
  try {
    cp = await manager.load();
  } catch (err) {
    if (!(err instanceof ErrNoCheckpoint)) throw err;
    if (args.json) out("null");
    else {out(
        `no checkpoint at ${manager.location}: a copy with it starts at its --start, skipping what the catalog already holds`,
      );}
    return;
  }
  if (args.json) {
    out(JSON.stringify(cp, null, 2));
    return;
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
}

async function catalogView(args: CheckpointShowArgs, cp: Checkpoint): Promise<string> {
  let catalog;
  try {
    catalog = await openReadyCatalog({ dsn: args.catalog, stateDir: args.stateDir });
  } catch (err) {
    return `unavailable: ${(err as Error).message}`;
  }
  try {
    const { rows } = await catalog.pool.query<{ id: number }>(
      `SELECT id FROM _meta_datasets
       WHERE domain = 'bronze' AND dataset = $1 AND version = $2 AND era_id = $3 AND network = $4`,
      [TABLE, cp.version_label, cp.era_id, cp.network],
    );
    if (!rows.length) {
      return `${catalog.label} has no such dataset: it does not agree with the checkpoint`;
    }
    const writer = new CatalogWriter(catalog);
    const id = rows[0].id;
    const last = cp.last_committed_ledger;
    const island = await writer.islandAround(id, last);
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
