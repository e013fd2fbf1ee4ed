import { join } from "node:path";
import { poolOf } from "./catalogs.ts";
import type { CopyOptions } from "../../lib/copy/run.ts";
import { type ObjectUrl, type StoreUrl, toObjectUrl, toStoreUrl } from "../../lib/blob/mod.ts";
import { type SourceUrl, toSourceUrl } from "../../lib/source/mod.ts";
import type { CatalogTarget } from "./catalogs.ts";

/**
 * What the copy tests share: the copier's options against a test catalog, the lineage it records,
 * and the environment and query of the seed's CLI session.
 */

/** Where copy() reads and writes, parsed as the settings would, or as they parsed it. */
export interface Places {
  source: string | SourceUrl;
  storage: string | StoreUrl;
  checkpoint?: string | ObjectUrl;
}

/**
 * Options for copy() into `target`: 100-ledger partitions of testnet/pre_p23/v1, the checkpoint
 * in the target's state dir, two builders, no gap filling. `o` overrides any of them.
 */
export function copyOptions(
  target: CatalogTarget,
  o: Partial<Omit<CopyOptions, keyof Places>> & Places,
): CopyOptions {
  const { source, storage, checkpoint, ...rest } = o;
  return {
    partitionSize: 100,
    network: "testnet",
    era: "pre_p23",
    versionLabel: "v1",
    copierId: "test-copier",
    catalog: target.dsn,
    stateDir: target.stateDir,
    concurrency: 2,
    progressInterval: 0,
    pollInterval: 0.2,
    fillGaps: false,
    fleet: false,
    follow: false,
    compact: false,
    stallAfter: 600,
    ...rest,
    source: toSourceUrl(source),
    storage: toStoreUrl(storage),
    checkpoint: toObjectUrl(checkpoint ?? join(target.stateDir, "checkpoint.json")),
  };
}

export interface LineageRecord {
  ledger_start: number;
  ledger_end: number;
  row_count: number;
  checksum: string;
  storage_path: string;
  storage_uri: string;
  byte_size: number;
}

/** The ledgers_lcm_raw lineage rows of the target's catalog, by ledger_start. */
export async function lineageRows(target: CatalogTarget): Promise<LineageRecord[]> {
  const c = await target.open();
  try {
    const { rows } = await poolOf(c).query<LineageRecord>(
      `SELECT l.ledger_start, l.ledger_end, l.row_count, l.checksum, l.storage_path, l.storage_uri,
              l.byte_size
       FROM _meta_lineage l JOIN _meta_datasets d ON d.id = l.dataset_id
       WHERE d.dataset = 'ledgers_lcm_raw' ORDER BY l.ledger_start`,
    );
    return rows;
  } finally {
    await c.close();
  }
}

/** The environment of `bronze copy` from `source` to `storage` on testnet, into `target`. */
export function copyEnv(
  target: CatalogTarget,
  source: string,
  storage: string,
): Record<string, string> {
  return {
    SOURCE_URL: source,
    STORAGE_URL: storage,
    NETWORK: "testnet",
    CATALOG_DSN: target.dsn!,
    STATE_DIR: target.stateDir,
    // Tests assert stderr line by line: no periodic progress lines, however slow the machine.
    PROGRESS_INTERVAL: "0",
  };
}

/** The seed's psql query: every range with its checksum. */
export const SEED_QUERY = `SELECT ledger_start, ledger_end, checksum
           FROM _meta_lineage l
           JOIN _meta_datasets d ON l.dataset_id = d.id
           WHERE d.dataset = 'ledgers_lcm_raw'
           ORDER BY ledger_start`;

/** Runs `psql -At -c query` against dsn: its output lines (fields separated by `|`). */
export function psqlLines(dsn: string, query: string): string[] {
  const out = new Deno.Command("psql", {
    args: [dsn, "-At", "-c", query],
    stdout: "piped",
  }).outputSync();
  return new TextDecoder().decode(out.stdout).trim().split("\n");
}

const SUMMARY =
  /^\[copier\] copied (\d+) ledgers? in (\d+) partitions?(?: while following for \S+)?: [\d.]+ MB written in [\d.]+s(?: of copying)? \([\d.]+ MB of ledgers, [\d.]+ MB\/s\)$/;

/**
 * A run's log lines without its summary line, whose bytes and seconds vary: checks that there is
 * exactly one, and with `counts`, that it counts those ledgers and partitions.
 */
export function withoutSummary(
  lines: string[],
  counts?: { ledgers: number; partitions: number },
): string[] {
  const found = lines.filter((l) => SUMMARY.test(l));
  if (found.length !== 1) throw new Error(`expected one summary line in:\n${lines.join("\n")}`);
  if (counts) {
    const [, ledgers, partitions] = SUMMARY.exec(found[0])!;
    if (Number(ledgers) !== counts.ledgers || Number(partitions) !== counts.partitions) {
      throw new Error(`summary ${found[0]} does not count ${JSON.stringify(counts)}`);
    }
  }
  return lines.filter((l) => !SUMMARY.test(l));
}

/** The same for a whole stderr text. */
export function stderrWithoutSummary(
  stderr: string,
  counts?: { ledgers: number; partitions: number },
): string {
  return withoutSummary(stderr.split("\n"), counts).join("\n");
}
