/**
 * Compaction: a grid cell covered by several partial partitions (a follower's flushes, an
 * interrupted run's pieces) gets one full-cell file. bronze's Parquet is deterministic, so that
 * file is byte-identical to the one a single backfill of the cell writes, with the same checksum:
 * it is written from the partials' own rows (their bytes checked against the lineage first),
 * published through the same Committer as any partition, and recorded in ONE catalog transaction
 * with the partials marked superseded by it. A kill at any step leaves either the partials
 * current or the full row current (the transaction), and an orphan file at worst, which the next
 * compaction adopts. The cell is claimed while it is compacted, like any copy's range: a second
 * compactor, or a copier, is refused, and finds nothing to do afterwards.
 */
import { mkdir, open, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { datasetFilterOf, type SettingsOf } from "../settings/mod.ts";
import type { Logger } from "../runtime/log.ts";
import {
  hashObject,
  type ObjectStore,
  objectUrl,
  openStore,
  storageRootOf,
  type StoreUrl,
} from "../blob/mod.ts";
import type { Catalog } from "../metadata/catalog.ts";
import { ClaimSession, RangeClaimedError } from "../metadata/claims.ts";
import { findDatasets } from "../metadata/coverage.ts";
import { openReadyCatalog } from "../metadata/migrate.ts";
import { CatalogWriter, type LineageRow, SupersededError } from "../metadata/writer.ts";
import type { LedgerRow } from "../source/ledger.ts";
import type { SourceType } from "../source/source.ts";
import { cellOf, type Range } from "../table/grid.ts";
import { fileBuffer, parquetMetadataAsync, rowGroups } from "../table/reader.ts";
import type { PartitionRow } from "../table/schema.ts";
import { Stores } from "../verify/locate.ts";
import type { Built } from "./build.ts";
import { writePartitionFile } from "./build.ts";
import { Committer, type Dataset } from "./commit.ts";
import { placementOf } from "./placement.ts";
import { runRetrier } from "../runtime/retry.ts";
import { fsError } from "../runtime/errors.ts";

export interface Compaction {
  dataset: string;
  cell: Range;
  /** The partial rows replaced (or that would be). */
  partials: number;
  /** skipped: nothing to do, or claimed by another; refused: a partial is not what its lineage says. */
  outcome: "compacted" | "skipped" | "refused";
  /** The full-cell file's checksum, when compacted. */
  checksum: string | null;
  /** Why it was skipped. */
  reason: string | null;
  seconds: number;
}

export interface CompactDeps {
  catalog: Catalog;
  writer: CatalogWriter;
  /** Where the full-cell file is published: the dataset's storage root. */
  storage: ObjectStore;
  /** Where the partials' files are read (their storage_uri, or under a given root). */
  stores: Stores;
  tmpDir: string;
  copierId: string;
  log: Logger;
}

/** The cells of `rows` (current, in ledger order) that two or more partials cover exactly. */
export function compactableCells(rows: readonly LineageRow[], size: number): Range[] {
  const byCell = new Map<number, LineageRow[]>();
  for (const r of rows) {
    const cell = cellOf(r.ledgerStart, size);
    if (cellOf(r.ledgerEnd, size).start !== cell.start) continue; // crosses the grid: not ours
    byCell.set(cell.start, [...(byCell.get(cell.start) ?? []), r]);
  }
  const out: Range[] = [];
  for (const [start, parts] of byCell) {
    const cell = cellOf(start, size);
    if (parts.length < 2) continue;
    let next = cell.start;
    for (const p of parts) {
      if (p.ledgerStart !== next) break;
      next = p.ledgerEnd + 1;
    }
    if (next === cell.end + 1) out.push(cell);
  }
  return out;
}

/**
 * Compacts one cell of one dataset, claimed for the duration (unless the caller's own claim
 * already covers it: a follower compacting the cell it has just completed).
 */
export async function compactCell(
  deps: CompactDeps,
  dataset: Dataset,
  cell: Range,
  { claimed = false } = {},
): Promise<Compaction> {
  const t0 = performance.now();
  const done = (c: Omit<Compaction, "dataset" | "cell" | "seconds">): Compaction => ({
    dataset: dataset.label,
    cell,
    seconds: (performance.now() - t0) / 1000,
    ...c,
  });
  const claims = claimed ? null : await ClaimSession.open(deps.catalog, dataset, deps.copierId);
  try {
    try {
      await claims?.claimRange(cell.start, cell.end);
    } catch (err) {
      if (!(err instanceof RangeClaimedError)) throw err;
      return done({ partials: 0, outcome: "skipped", checksum: null, reason: err.message });
    }
    // Under the claim: what the catalog holds of the cell now (another compactor may be done).
    const parts = await deps.writer.listLineage(dataset.id, cell);
    if (
      parts.length < 2 || parts[0].ledgerStart !== cell.start ||
      parts.at(-1)!.ledgerEnd !== cell.end
    ) {
      return done({
        partials: parts.length,
        outcome: "skipped",
        checksum: null,
        reason: "nothing to do: the cell is one partition now",
      });
    }
    const path = join(deps.tmpDir, `compact-${Deno.pid}-${cell.start}-${cell.end}.parquet`);
    try {
      const built = await writePartitionFile(
        rowsOf(deps, parts),
        cell,
        path,
        { bronzeVersion: dataset.version, eraId: dataset.eraId, network: dataset.network },
        { stopped: () => false, progress() {} },
      ) as Built;
      const committer = new Committer({
        storage: deps.storage,
        writer: deps.writer,
        checkpoint: null, // compaction moves no copier
        dataset: {
          network: dataset.network,
          eraId: dataset.eraId,
          version: dataset.version,
          id: dataset.id,
          label: dataset.label,
        },
        copierId: deps.copierId,
        // The full row says where its ledgers came from: where the partials' did.
        source: {
          type: (parts[0].sourceType ?? "archive") as SourceType,
          url: parts[0].sourceLocation ??
            `compaction of lineage ${parts.map((p) => p.id).join(", ")}`,
        },
        log: deps.log,
      });
      const committed = await committer.commit({
        built,
        checkpointLedger: cell.end,
        supersedes: parts.map((p) => p.id),
        change: {
          type: "compaction",
          description:
            `${parts.length} partitions of ${cell.start}-${cell.end} compacted into one ` +
            `(lineage ${parts.map((p) => p.id).join(", ")} superseded)`,
        },
      });
      return done({
        partials: parts.length,
        outcome: "compacted",
        checksum: committed.checksum,
        reason: null,
      });
    } catch (err) {
      if (err instanceof CompactionRefused) {
        return done({
          partials: parts.length,
          outcome: "refused",
          checksum: null,
          reason: err.message,
        });
      }
      if (!(err instanceof SupersededError)) throw err;
      return done({
        partials: parts.length,
        outcome: "skipped",
        checksum: null,
        reason: err.message,
      });
    } finally {
      await rm(path, { force: true });
    }
  } finally {
    await claims?.close();
  }
}

/** What `bronze compact` reads. */
export type CompactOptions = Omit<SettingsOf<"compact">, "json" | "logFormat">;

/**
 * `bronze compact`: every cell of the selected datasets and range that two or more current
 * partitions cover exactly is compacted, one cell at a time.
 */
export async function compact(opts: CompactOptions, log: Logger): Promise<Compaction[]> {
  await using stack = new AsyncDisposableStack();
  const catalog = await openReadyCatalog({
    dsn: opts.catalog,
    stateDir: opts.stateDir,
    mustExist: true,
    log: (m) => log.info("catalog", m),
  });
  stack.defer(() => catalog.close());
  // Each dataset's full-cell files go where its partials are: its own storage root.
  const retry = runRetrier(opts.retryFor, log);
  const storages = new Map<string, ObjectStore>();
  stack.defer(async () => {
    for (const s of storages.values()) await s.close?.();
  });
  const storageAt = (url: StoreUrl) => {
    if (!storages.has(url.url)) storages.set(url.url, openStore(url, { area: "storage", retry }));
    return storages.get(url.url)!;
  };
  const stores = new Stores(undefined, retry);
  stack.defer(() => stores.close());
  const tmpDir = join(opts.stateDir, "tmp");
  await mkdir(tmpDir, { recursive: true }).catch((e) => {
    throw fsError(e, { path: tmpDir, writing: true, dir: tmpDir });
  });
  const writer = new CatalogWriter(catalog);
  const base = {
    catalog,
    writer,
    stores,
    tmpDir,
    copierId: `compactor-${hostname().slice(0, 40)}-${Deno.pid}`,
    log,
  };
  const out: Compaction[] = [];
  const datasets = await findDatasets(catalog, datasetFilterOf(opts));
  // Every dataset's storage and grid first: a flag that disagrees with one refuses the whole run.
  const placements = datasets.map((ds) => placementOf(ds, opts));
  for (const [i, ds] of datasets.entries()) {
    const place = placements[i];
    const deps: CompactDeps = { ...base, storage: storageAt(place.storage) };
    await writer.recordPlacement(ds.id, storageRootOf(place.storage), place.partitionSize);
    const rows = await writer.listLineage(ds.id, { start: opts.start, end: opts.end });
    const dataset = {
      network: ds.network,
      eraId: ds.eraId,
      version: ds.version,
      id: ds.id,
      label: ds.label,
    };
    for (const cell of compactableCells(rows, place.partitionSize)) {
      const c = await compactCell(deps, dataset, cell);
      out.push(c);
      if (c.outcome === "compacted") {
        log.info(
          "compact",
          `${ds.label}: cell ${cell.start}-${cell.end} compacted from ${c.partials} partitions (${c.checksum})`,
        );
      } else {
        log.warn(
          "compact",
          `${ds.label}: cell ${cell.start}-${cell.end} ${c.outcome}: ${c.reason}`,
        );
      }
    }
  }
  return out;
}

/**
 * The rows of the partials, in order, from their files, each file's bytes checked against its
 * lineage row first (a corrupt partial is for `bronze repair`, never compacted).
 */
async function* rowsOf(deps: CompactDeps, parts: LineageRow[]): AsyncIterable<LedgerRow> {
  for (const part of parts) {
    const { store, key } = deps.stores.locate(part);
    const local = store.localPath?.(key) ?? null;
    const path = local ?? join(deps.tmpDir, `compact-in-${Deno.pid}-${part.id}.parquet`);
    try {
      const { sha256 } = await hashObject(store, key, local ? null : path);
      if (`sha256:${sha256}` !== part.checksum) {
        throw new CompactionRefused(
          `partition ${part.ledgerStart}-${part.ledgerEnd} (${objectUrl(store, key)}) hashes to ` +
            `sha256:${sha256}, lineage records ${part.checksum}: run \`bronze repair\` first`,
        );
      }
      const fh = await open(path, "r");
      try {
        const file = await fileBuffer(fh);
        const metadata = await parquetMetadataAsync(file);
        for await (const group of rowGroups(file, metadata, COLUMNS)) {
          for (const r of group) yield ledgerRow(r);
        }
      } finally {
        await fh.close();
      }
    } finally {
      if (!local) await rm(path, { force: true });
    }
  }
}

/** A partial whose bytes are not its lineage's: compaction would copy the damage. */
export class CompactionRefused extends Error {}

const COLUMNS = [
  "ledger_sequence",
  "ledger_hash",
  "previous_ledger_hash",
  "close_time",
  "protocol_version",
  "total_coins",
  "fee_pool",
  "tx_set_hash",
  "tx_count",
  "operation_count",
  "xdr_bytes",
  "xdr_byte_length",
  "xdr_sha256",
] as const;

/** A stored row as the writer takes it: every column back as it was written. */
function ledgerRow(r: Pick<PartitionRow, (typeof COLUMNS)[number]>): LedgerRow {
  return {
    ledgerSequence: Number(r.ledger_sequence),
    ledgerHash: r.ledger_hash,
    previousLedgerHash: r.previous_ledger_hash,
    closeTimeMs: r.close_time.getTime(),
    protocolVersion: r.protocol_version,
    totalCoins: r.total_coins,
    feePool: r.fee_pool,
    txSetHash: r.tx_set_hash,
    txCount: r.tx_count,
    operationCount: r.operation_count,
    xdr: r.xdr_bytes,
    xdrByteLength: r.xdr_byte_length,
    xdrSha256: r.xdr_sha256,
  };
}
