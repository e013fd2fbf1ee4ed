/**
 * The settings every command reads a part of, and a Spec: how one setting is given (flag,
 * environment, parser, default). Apart from the table of every spec (specs.ts) so that a table of
 * specs elsewhere (the dataset filters' in filters.ts) can be typed without importing that table.
 */
import type { ObjectUrl, StoreUrl } from "../blob/url.ts";
import type { Network } from "../source/network.ts";
import type { SourceUrl } from "../source/url.ts";
import type { Parser } from "./parsers.ts";

export interface Settings {
  catalog?: string;
  stateDir: string;
  source?: SourceUrl;
  /** Unset: the dataset's recorded storage root (a new dataset: ./data); lib/copy/placement.ts. */
  storage?: StoreUrl;
  start?: number;
  /** A ledger (copy's --end also takes `latest`: COMMANDS.copy.specs). */
  end?: number;
  /** Unset: the dataset's recorded grid (a new dataset: 10000). */
  partitionSize?: number;
  network: Network;
  era: string;
  versionLabel: string;
  copierId: string;
  checkpoint: ObjectUrl;
  concurrency: number;
  progressInterval: number;
  /** Seconds. */
  pollInterval: number;
  logFormat: "text" | "json";
  json: boolean;
  fillGaps: boolean;
  fleet: boolean;
  follow: boolean;
  /** With --follow: compact each cell its partials complete. */
  compact: boolean;
  /** Seconds; undefined: partial cells wait until they are complete. */
  flushInterval?: number;
  /** lineage: superseded rows too. */
  history: boolean;
  /** lineage: only the current files' URLs. */
  paths: boolean;
  /** migrate: the read-only role to create for DuckLake readers. */
  readerRole?: string;
  /** verify: record no quality rows (a read-only standby). */
  noRecord: boolean;
  /** host:port of the Prometheus /metrics and /healthz server. */
  metricsAddr?: string;
  /** Seconds without progress, or of a head that does not advance, before /healthz says 503. */
  stallAfter: number;
  /** Seconds between refreshes of the status page at --metrics-addr (one catalog query each). */
  statusRefresh: number;
  /** status: write the status page to this file. */
  html?: string;
  failOnGaps: boolean;
  status: boolean;
  /** Optional filters of coverage/verify: the same flags as the copier's, without defaults. */
  networkFilter?: Network;
  eraFilter?: string;
  versionFilter?: string;
  datasetFilter?: string;
  /** verify: storage root to read partitions from instead of each lineage row's storage_uri. */
  storageRoot?: StoreUrl;
  /** gc: delete what it lists (without it, a dry run). */
  apply: boolean;
  /** gc: the grace period, in seconds (0 allowed). */
  olderThan: number;
  /** retire: why, recorded in the catalog. */
  reason?: string;
  /**
   * Seconds a failing store or RPC call is retried before the run stops (exit 75). Always set by
   * the resolver (default 300); optional for callers of the library, which default it alike.
   */
  retryFor?: number;
  /**
   * Seconds a catalog that went away (a restart, a failover) is reconnected to before the run
   * stops (exit 75). Always set by the resolver (default 300).
   */
  catalogRetryFor?: number;
}

export type Key = keyof Settings;

export interface Spec<T = unknown> {
  flag: string;
  env?: string;
  help: string;
  parse: Parser<T>;
  /** Applied when neither the flag nor the environment gives a value. */
  default?: (s: Partial<Settings>) => T;
  /** The settings its default reads: resolved (and defaulted) before it. */
  after?: readonly Key[];
  boolean?: true;
  /** The default as help shows it, where `default` alone would not say it well. */
  shown?: string;
}

/** The specs of the settings in K, each typed by its setting. */
export type Specs<K extends Key> = { readonly [P in K]-?: Spec<NonNullable<Settings[P]>> };
