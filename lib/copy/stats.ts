/**
 * Where a run's time went: cheap counters, for the benchmark and for operators. Seconds are
 * wall-clock; build times run in parallel with each other and with commits.
 */
import type { Committed } from "./commit.ts";
import type { Built } from "./build.ts";
import { formatDuration } from "../runtime/format.ts";

export interface CopyStats {
  /** Wall time from the first build to the last commit. */
  seconds: number;
  /** The process's CPU time (user + system, every thread) over the same span. */
  cpuSeconds: number;
  partitions: number;
  ledgers: number;
  /** LedgerCloseMeta XDR bytes copied. */
  xdrBytes: number;
  /** Parquet bytes committed (adopted files included). */
  bytes: number;
  /** Per step, summed over partitions: 1 build (source read, decode, Parquet, sha256). */
  buildSeconds: number;
  /** 2 publish. */
  publishSeconds: number;
  /** 3 manifest. */
  manifestSeconds: number;
  /** 4 the catalog transaction. */
  catalogSeconds: number;
  /** 5 the checkpoint save. */
  checkpointSeconds: number;
}

export function emptyStats(): CopyStats {
  return {
    seconds: 0,
    cpuSeconds: 0,
    partitions: 0,
    ledgers: 0,
    xdrBytes: 0,
    bytes: 0,
    buildSeconds: 0,
    publishSeconds: 0,
    manifestSeconds: 0,
    catalogSeconds: 0,
    checkpointSeconds: 0,
  };
}

export function addCommit(stats: CopyStats, built: Built, c: Committed): void {
  stats.partitions++;
  stats.ledgers += c.range.end - c.range.start + 1;
  stats.xdrBytes += built.quality.xdr_bytes;
  stats.bytes += built.bytes;
  stats.buildSeconds += built.seconds;
  stats.publishSeconds += c.seconds.publish;
  stats.manifestSeconds += c.seconds.manifest;
  stats.catalogSeconds += c.seconds.catalog;
  stats.checkpointSeconds += c.seconds.checkpoint;
}

/**
 * The one line that ends a run: what it copied, and how fast. A follower spends most of its time
 * waiting for the source: `followedSeconds` (its whole run) is said beside the seconds spent copying,
 * so neither reads as the other.
 */
export function summary(
  s: CopyStats,
  followedSeconds?: number,
): { text: string; fields: Record<string, unknown> } {
  const mb = (n: number) => (n / 1e6).toFixed(1);
  const rate = s.seconds > 0 ? s.xdrBytes / s.seconds / 1e6 : 0;
  const following = followedSeconds === undefined
    ? ""
    : ` while following for ${formatDuration(followedSeconds)}`;
  return {
    text: `copied ${s.ledgers} ledger${s.ledgers === 1 ? "" : "s"} in ${s.partitions} partition${
      s.partitions === 1 ? "" : "s"
    }${following}: ${mb(s.bytes)} MB written in ${s.seconds.toFixed(1)}s${
      following ? " of copying" : ""
    } (${mb(s.xdrBytes)} MB of ledgers, ${rate.toFixed(1)} MB/s)`,
    fields: {
      event: "summary",
      ledgers: s.ledgers,
      partitions: s.partitions,
      bytes: s.bytes,
      xdr_bytes: s.xdrBytes,
      seconds: Number(s.seconds.toFixed(3)),
      mb_per_s: Number(rate.toFixed(2)),
      ...(followedSeconds === undefined
        ? {}
        : { followed_seconds: Number(followedSeconds.toFixed(3)) }),
    },
  };
}
