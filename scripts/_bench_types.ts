/**
 * What the bench's sections share (bench.ts runs them; bench-coldstart.ts is one of them and is
 * handed the rest as a kit): its profiles, a run's measure and a copy child's arguments.
 */

export interface Profile {
  name: string;
  ledgerBytes: number;
  count: number;
  /** Partition size of the throughput runs: several partitions, so workers have work to share. */
  partitionSize: number;
  /** Ledgers of the memory run (one partition of this many ledgers), 0 for none. */
  memoryLedgers: number;
}

export interface Measure {
  seconds: number;
  /** Wall time of the whole subprocess, runtime start to exit. */
  wallSeconds: number;
  ledgers: number;
  xdrBytes: number;
  peakRssMb: number;
  /**
   * CPU seconds (user + system, all threads) over the same span as `seconds` (a copy's loop, from
   * its first build to its last commit; the whole of a baseline).
   */
  cpuSeconds: number;
  /** CPU seconds outside that span: runtime, catalog and worker start-up, shutdown. */
  fixedCpuSeconds?: number;
  stats?: Record<string, number>;
  /** sha256 over the stored partitions' checksums, in key order (determinism check). */
  digest?: string;
}

export interface CopyChildArgs {
  lake: string;
  start: number;
  end: number;
  partitionSize: number;
  concurrency: number;
  catalog?: string;
  work: string;
  /** A fleet copier (`copy --fleet`), writing into this shared storage. */
  fleet?: { storage: string; copierId: string };
  /** Storage elsewhere than the run's folder (a bucket): no digest of it is taken. */
  storage?: string;
}
