/**
 * What a copier tells the outside world: its Prometheus metrics and its health, fed by one small
 * set of calls from the copy loop, and the same state as the status page shows it (`live()`: the
 * head, the last commit, the errors by area and the latest problems said). Every series carries
 * the dataset's `network`, `era` and `version`, so several copiers scraped into one Prometheus
 * stay apart.
 */
import type { ErrorArea } from "../runtime/errors.ts";
import { RETRY_AREAS, type RetryArea, type RetryListener } from "../runtime/retry.ts";
import { TRANSIENT_REASONS, type TransientReason } from "../runtime/transient.ts";
import { type Counter, type Gauge, type Histogram, Registry } from "./exposition.ts";
import { Health, type HealthOptions, type HealthStatus } from "./health.ts";

/** Where a failure came from; each kind is its own `bronze_errors_total` series. */
export type ErrorKind = ErrorArea;
export const ERROR_KINDS: readonly ErrorKind[] = [
  "source",
  "catalog",
  "storage",
  "checkpoint",
  "other",
];

/**
 * Seconds from a partition's build start to its catalog commit: a small partition of a quiet
 * testnet takes well under a second, a full 10000-ledger pubnet cell tens of minutes.
 */
export const COMMIT_SECONDS_BUCKETS: readonly number[] = [
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
  300,
  600,
  1200,
  1800,
];

export interface DatasetLabels {
  network: string;
  era: string;
  version: string;
}

export interface Committed {
  /** Ledgers in the partition. */
  ledgers: number;
  /** Parquet bytes of the partition. */
  bytes: number;
  /** The catalog now holds every ledger from the run's start through this one. */
  lastLedger: number;
  /** From the partition's build start to its catalog commit. */
  seconds: number;
}

type D = keyof DatasetLabels;

/** A problem the copier met and said (a warning, an error), as the status page lists it. */
export interface Problem {
  at: Date;
  area: string;
  message: string;
}

/** The latest problems kept for the status page. */
export const RECENT_PROBLEMS = 20;

/** The copier's state as the status page shows it. */
export interface LiveState {
  /** The source's head as last polled (null: not polled yet). */
  sourceHead: number | null;
  /** The catalog holds every ledger from the run's start through this one (null: not known yet). */
  lastCommitted: number | null;
  /** When this process last committed a partition (null: not yet). */
  lastCommitAt: Date | null;
  health: HealthStatus;
  /** bronze_errors_total, by area. */
  errors: Record<ErrorKind, number>;
  /** bronze_retries_total, by area (all reasons). */
  retries: Record<RetryArea, number>;
  /** The latest problems, newest first. */
  recent: Problem[];
}

export class CopierMetrics implements RetryListener {
  readonly health: Health;
  readonly #registry = new Registry();
  readonly #dataset: DatasetLabels;
  readonly #lastCommitted: Gauge<D>;
  readonly #sourceHead: Gauge<D>;
  readonly #ledgers: Counter<D>;
  readonly #partitions: Counter<D>;
  readonly #bytes: Counter<D>;
  readonly #commitSeconds: Histogram<D>;
  readonly #errors: Counter<D | "kind">;
  readonly #retries: Counter<D | "area" | "reason">;
  readonly #reconnects: Counter<D>;
  readonly #live = {
    sourceHead: null as number | null,
    lastCommitted: null as number | null,
    lastCommitAt: null as Date | null,
    errors: Object.fromEntries(ERROR_KINDS.map((k) => [k, 0])) as Record<ErrorKind, number>,
    retries: Object.fromEntries(RETRY_AREAS.map((a) => [a, 0])) as Record<RetryArea, number>,
    recent: [] as Problem[],
  };
  readonly #wallClock: () => number;
  readonly #healthy: Gauge<D>;
  readonly #lag: Gauge<D>;
  readonly #flushInterval: Gauge<D>;
  readonly #fleetCells: Gauge<D | "state">;
  /** performance.now() when the oldest ledger seen but not committed was first seen. */
  #waitingSince: number | null | undefined;
  readonly #now: () => number;

  /** `wallClock`: epoch ms for the times the status page shows (default Date.now). */
  constructor(
    dataset: DatasetLabels,
    health: HealthOptions = {},
    wallClock: () => number = Date.now,
  ) {
    this.#dataset = { network: dataset.network, era: dataset.era, version: dataset.version };
    this.health = new Health(health);
    this.#wallClock = wallClock;
    this.#now = health.now ?? (() => performance.now());
    const r = this.#registry;
    const labels = ["network", "era", "version"] as const;
    this.#lastCommitted = r.gauge(
      "bronze_last_committed_ledger",
      "Last ledger of the contiguous range the catalog holds from the run's start (the start - 1 " +
        "while it holds none of it), read from the catalog at start.",
      labels,
    );
    this.#sourceHead = r.gauge(
      "bronze_source_head_ledger",
      "Latest ledger the source holds, as last polled.",
      labels,
    );
    this.#ledgers = r.counter(
      "bronze_ledgers_committed_total",
      "Ledgers committed to the catalog.",
      labels,
    );
    this.#partitions = r.counter(
      "bronze_partitions_committed_total",
      "Partitions committed to the catalog.",
      labels,
    );
    this.#bytes = r.counter(
      "bronze_bytes_written_total",
      "Parquet bytes of the committed partitions.",
      labels,
    );
    this.#commitSeconds = r.histogram(
      "bronze_partition_commit_seconds",
      "Seconds from a partition's build start to its catalog commit.",
      labels,
      COMMIT_SECONDS_BUCKETS,
    );
    this.#errors = r.counter(
      "bronze_errors_total",
      "Errors met by the copier, by kind (retried ones included).",
      [...labels, "kind"],
    );
    this.#retries = r.counter(
      "bronze_retries_total",
      "Attempts retried after a transient failure, by area and reason (throttled, server, " +
        "timeout, connection, truncated, bad_response, io).",
      [...labels, "area", "reason"],
    );
    this.#reconnects = r.counter(
      "bronze_catalog_reconnects_total",
      "Times the catalog was reached again after it went away (a restart, a failover, a dropped " +
        "connection): one per burst of catalog retries that recovered, claims re-taken and a " +
        "commit whose answer was lost resolved.",
      labels,
    );
    this.#healthy = r.gauge(
      "bronze_healthy",
      "1 while /healthz answers 200, 0 while it answers 503 (no progress, a stalled source head, " +
        "or a failure: /healthz says which).",
      labels,
    );
    this.#lag = r.gauge(
      "bronze_lag_seconds",
      "A follower's lag: how long the oldest ledger it has seen in the source but not committed " +
        "has waited since it was first seen (0 when it holds all it has seen).",
      labels,
    );
    this.#flushInterval = r.gauge(
      "bronze_flush_interval_seconds",
      "A follower's --flush-interval: the lag it keeps under, give or take a poll.",
      labels,
    );
    this.#fleetCells = r.gauge(
      "bronze_fleet_cells",
      "The cells of a fleet's range by state (committed, claimed by a live copier, left), as " +
        "this fleet copier last read them from the catalog.",
      [...labels, "state"],
    );
    // Counters are exported from the start at zero, so that rate() and increase() see the first
    // event; the gauges only once they are known (a zero head would be a lie).
    const d = this.#dataset;
    this.#ledgers.init(d);
    this.#partitions.init(d);
    this.#bytes.init(d);
    this.#commitSeconds.init(d);
    this.#reconnects.init(d);
    for (const kind of ERROR_KINDS) this.#errors.init({ ...d, kind });
    for (const area of RETRY_AREAS) {
      for (const reason of TRANSIENT_REASONS) this.#retries.init({ ...d, area, reason });
    }
  }

  /** One attempt retried (a RetryMonitor listener). */
  retried(area: RetryArea, reason: TransientReason): void {
    this.#retries.inc({ ...this.#dataset, area, reason });
    this.#live.retries[area]++;
  }

  /**
   * A burst of retries began or ended: /healthz says "degraded: retrying <area>" meanwhile. A
   * catalog burst that recovered is a reconnect.
   */
  burst(area: RetryArea, active: boolean, recovered?: boolean): void {
    this.health.retrying(area, active);
    if (area === "catalog" && !active && recovered) this.#reconnects.inc(this.#dataset);
  }

  /** At start: the catalog already holds the run's ledgers through `lastLedger`. */
  resumed(lastLedger: number): void {
    this.#lastCommitted.set(this.#dataset, lastLedger);
    this.#live.lastCommitted = lastLedger;
    this.health.progress(lastLedger);
  }

  /** A ledger built (the build pool's progress callback): the copier is alive. */
  built(): void {
    this.health.progress();
  }

  /** A partition's catalog transaction committed. */
  committed(c: Committed): void {
    const d = this.#dataset;
    this.#ledgers.inc(d, c.ledgers);
    this.#partitions.inc(d);
    this.#bytes.inc(d, c.bytes);
    this.#commitSeconds.observe(d, c.seconds);
    this.#lastCommitted.set(d, c.lastLedger);
    this.#live.lastCommitted = c.lastLedger;
    this.#live.lastCommitAt = new Date(this.#wallClock());
    this.health.progress(c.lastLedger);
  }

  /** The source's head, each time it is polled. */
  sourceHead(ledger: number): void {
    this.#sourceHead.set(this.#dataset, ledger);
    this.#live.sourceHead = ledger;
    this.health.sourceHead(ledger);
  }

  /** Caught up: nothing to build until the source's head (polled: `head`) moves on. */
  waiting(head: number): void {
    this.#sourceHead.set(this.#dataset, head);
    this.#live.sourceHead = head;
    this.health.waiting(head);
  }

  /**
   * An error met, retried or not; it does not change health by itself. With its message, it is
   * also one of the recent problems.
   */
  error(kind: ErrorKind, message?: string): void {
    this.#errors.inc({ ...this.#dataset, kind });
    this.#live.errors[kind]++;
    if (message !== undefined) this.problem(kind, message);
  }

  /** A problem said (a warning line): the status page lists the latest RECENT_PROBLEMS. */
  problem(area: string, message: string): void {
    const recent = this.#live.recent;
    recent.unshift({ at: new Date(this.#wallClock()), area, message });
    if (recent.length > RECENT_PROBLEMS) recent.length = RECENT_PROBLEMS;
  }

  /** The copier's state now, as the status page shows it. */
  live(): LiveState {
    const l = this.#live;
    return {
      sourceHead: l.sourceHead,
      lastCommitted: l.lastCommitted,
      lastCommitAt: l.lastCommitAt,
      health: this.health.check(),
      errors: { ...l.errors },
      retries: { ...l.retries },
      recent: [...l.recent],
    };
  }

  /** The copier cannot go on (or not yet): /healthz says `reason` until the next progress. */
  failing(reason: string): void {
    this.health.failing(reason);
  }

  /** A follower's --flush-interval, exported beside its lag. */
  flushInterval(seconds: number): void {
    this.#flushInterval.set(this.#dataset, seconds);
  }

  /**
   * A follower's oldest ledger seen in the source but not committed was first seen at `since`
   * (performance.now()), or there is none (null): bronze_lag_seconds counts from then.
   */
  uncommittedSince(since: number | null): void {
    this.#waitingSince = since;
  }

  /** A fleet's cells as last read from the catalog. */
  fleetCells(cells: { committed: number; claimed: number; left: number }): void {
    for (const state of ["committed", "claimed", "left"] as const) {
      this.#fleetCells.set({ ...this.#dataset, state }, cells[state]);
    }
  }

  /** The Prometheus text exposition of every series. */
  render(): string {
    // What depends on the clock is read as it is scraped.
    this.#healthy.set(this.#dataset, this.health.check().ok ? 1 : 0);
    if (this.#waitingSince !== undefined) {
      const waited = this.#waitingSince === null ? 0 : (this.#now() - this.#waitingSince) / 1000;
      this.#lag.set(this.#dataset, Math.max(0, Number(waited.toFixed(3))));
    }
    return this.#registry.render();
  }
}
