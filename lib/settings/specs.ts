/**
 * Every setting: its flag, environment variable, help, parser and default. A setting comes from
 * its flag, else its environment variable, else its default; which commands take it, and what
 * else they demand of it, is COMMANDS' (commands.ts). What a setting is (Settings, Spec) is
 * settings.ts's; the dataset filters' specs stand with the filters (filters.ts).
 */
import { hostname } from "node:os";
import { join } from "node:path";
import { NETWORKS } from "../source/network.ts";
import { FILTER_SPECS } from "./filters.ts";
import {
  age,
  bool,
  dsn,
  duration,
  intIn,
  Invalid,
  label,
  ledger,
  listenAddress,
  nonEmpty,
  objectUrl,
  oneOf,
  roleName,
  sourceUrl,
  storeUrl,
} from "./parsers.ts";
import type { Key, Specs } from "./settings.ts";

/** A default's value, which its parser takes (a bug otherwise). */
function must<T>(value: T | Invalid): T {
  if (value instanceof Invalid) throw new Error(`a default is invalid: ${value.message}`);
  return value;
}

export const SPECS: Specs<Key> = {
  catalog: {
    flag: "--catalog",
    env: "CATALOG_DSN",
    help:
      "PostgreSQL URL of the catalog (postgres://user:pass@host:5432/db); its password is never printed",
    parse: dsn,
    shown: "embedded, in <state-dir>/catalog",
  },
  stateDir: {
    flag: "--state-dir",
    env: "STATE_DIR",
    help: "directory for the embedded catalog (catalog/), the local checkpoint and temp files",
    parse: nonEmpty,
    default: () => "./state",
  },
  source: {
    flag: "--source",
    env: "SOURCE_URL",
    help:
      "where ledgers come from: a Galexie data lake (a path, file://, gs:// or s3:// URL) or a Stellar RPC node (rpc+https://host[:port][/path])",
    parse: sourceUrl,
  },
  storage: {
    flag: "--storage",
    env: "STORAGE_URL",
    help:
      "where the partitions are stored: a path, file://, gs:// or s3:// URL; a dataset keeps the one it was registered with",
    parse: storeUrl,
    // No default here: a registered dataset's own root comes first (lib/copy/placement.ts).
    shown: "the dataset's; ./data for a new one",
  },
  start: {
    flag: "--start",
    env: "LEDGER_START",
    help: "first ledger of the range",
    parse: ledger,
  },
  end: {
    flag: "--end",
    env: "LEDGER_END",
    help: "last ledger of the range (inclusive)",
    parse: ledger,
  },
  partitionSize: {
    flag: "--partition-size",
    env: "PARTITION_SIZE",
    help: "ledgers per partition (grid cell); a dataset keeps the one it was registered with",
    parse: intIn(1, 10_000_000),
    shown: "the dataset's; 10000 for a new one",
  },
  network: {
    flag: "--network",
    env: "NETWORK",
    help: "pubnet, testnet or futurenet; the source's network passphrase must match",
    parse: oneOf(NETWORKS),
    default: () => "pubnet",
  },
  era: {
    flag: "--era",
    env: "ERA_ID",
    help: "era label of the dataset",
    parse: label,
    default: () => "default",
  },
  versionLabel: {
    flag: "--version-label",
    env: "VERSION_LABEL",
    help: "version label of the dataset (also the bronze_version column)",
    parse: label,
    default: () => "v1",
  },
  copierId: {
    flag: "--copier-id",
    env: "COPIER_ID",
    help: "identity of this copier (its checkpoint belongs to it)",
    parse: label,
    // A fleet copier is one process among many: by default, the host and pid say which.
    default: (s) => s.fleet ? `${hostname().slice(0, 50)}-${Deno.pid}` : "bronze-copier",
    after: ["fleet"],
    shown: "bronze-copier; with --fleet, <host>-<pid>",
  },
  checkpoint: {
    flag: "--checkpoint",
    env: "CHECKPOINT_URL",
    help: "checkpoint location: a path, gs:// or s3:// URL",
    parse: objectUrl,
    default: (s) => must(objectUrl(join(s.stateDir ?? "./state", "checkpoint.json"))),
    after: ["stateDir"],
    shown: "<state-dir>/checkpoint.json",
  },
  concurrency: {
    flag: "--concurrency",
    env: "CONCURRENCY",
    help: "partitions built at once, each by a worker thread (commits stay in ledger order)",
    parse: intIn(1, 64),
    // A build worker keeps one core busy; the main thread's commits cost little beside them.
    default: () => Math.min(64, Math.max(1, navigator.hardwareConcurrency || 1)),
    shown: "the number of cores",
  },
  progressInterval: {
    flag: "--progress-interval",
    env: "PROGRESS_INTERVAL",
    help:
      "seconds between plain progress lines when stderr is not a terminal (0: none); on a terminal a live line shows ledgers/s, MB/s and ETA",
    parse: intIn(0, 86_400),
    default: () => 30,
  },
  pollInterval: {
    flag: "--poll-interval",
    env: "POLL_INTERVAL",
    help: "how often to look again for work: cells held by other fleet copiers, new ledgers",
    parse: duration,
    default: () => 5,
    shown: "5s",
  },
  logFormat: {
    flag: "--log-format",
    env: "LOG_FORMAT",
    help: "text or json log lines on stderr",
    parse: oneOf(["text", "json"]),
    default: () => "text",
  },
  json: {
    flag: "--json",
    help: "machine-readable output on stdout",
    parse: bool,
    boolean: true,
    default: () => false,
  },
  fillGaps: {
    flag: "--fill-gaps",
    help:
      "copy only the ranges missing from the catalog; without --start/--end, between the dataset's lowest and highest ledger",
    parse: bool,
    boolean: true,
    default: () => false,
  },
  fleet: {
    flag: "--fleet",
    env: "FLEET",
    help:
      "share the range with every copier given the same range (any number, on any machines), cell by cell, coordinated by the PostgreSQL catalog",
    parse: bool,
    boolean: true,
    default: () => false,
  },
  follow: {
    flag: "--follow",
    env: "FOLLOW",
    help:
      "keep copying as the source grows: commit each grid cell as soon as it is complete, then poll for more",
    parse: bool,
    boolean: true,
    default: () => false,
  },
  compact: {
    flag: "--compact",
    env: "COMPACT",
    help:
      "with --follow: once a cell is complete, compact its partial partitions into one file, byte-identical to a backfill's",
    parse: bool,
    boolean: true,
    default: () => false,
  },
  flushInterval: {
    flag: "--flush-interval",
    env: "FLUSH_INTERVAL",
    help:
      "with --follow: commit a partial cell once its oldest ledger has waited this long (500ms, 5s, 10m), so downstream lag stays under it",
    parse: duration,
  },
  metricsAddr: {
    flag: "--metrics-addr",
    env: "METRICS_ADDR",
    help:
      "serve the status page (/ and /status.json), Prometheus /metrics and /healthz on host:port while copying (off by default)",
    parse: listenAddress,
  },
  statusRefresh: {
    flag: "--status-refresh",
    env: "STATUS_REFRESH",
    help:
      "how often the status page at --metrics-addr (/) refreshes; the catalog is asked at most once per interval, however many pages are open",
    parse: duration,
    default: () => 5,
    shown: "5s",
  },
  html: {
    flag: "--html",
    help:
      "also write the status page to this file (self-contained HTML, no script; for a cron job or a report)",
    parse: nonEmpty,
  },
  history: {
    flag: "--history",
    help: "also the superseded partitions (replaced by a compaction), each with what replaced it",
    parse: bool,
    boolean: true,
    default: () => false,
  },
  paths: {
    flag: "--paths",
    help:
      "only the current files' URLs, one a line, for readers that speak neither DuckLake nor PostgreSQL (pyarrow, Spark, Polars)",
    parse: bool,
    boolean: true,
    default: () => false,
  },
  readerRole: {
    flag: "--reader-role",
    help:
      "also create (or update) this PostgreSQL role: it may read the DuckLake and _meta_* tables and write nothing (for DuckDB readers)",
    parse: roleName,
  },
  noRecord: {
    flag: "--no-record",
    help: "record no verify_* quality rows: for a read-only catalog (a standby)",
    parse: bool,
    boolean: true,
    default: () => false,
  },
  stallAfter: {
    flag: "--stall-after",
    env: "STALL_AFTER",
    help:
      "/healthz answers 503 once the copier has made no progress, or the source's head has not advanced, for this long",
    parse: duration,
    default: () => 600,
    shown: "10m",
  },
  failOnGaps: {
    flag: "--fail-on-gaps",
    help: "exit 3 when any gap exists",
    parse: bool,
    boolean: true,
    default: () => false,
  },
  status: {
    flag: "--status",
    help: "list applied and pending migrations instead of migrating",
    parse: bool,
    boolean: true,
    default: () => false,
  },
  ...FILTER_SPECS,
  storageRoot: {
    flag: "--storage",
    env: "STORAGE_URL",
    help:
      "read partitions under this root (path, file://, gs://, s3://) at each lineage row's storage_path",
    parse: storeUrl,
    shown: "each row's storage_uri",
  },
  apply: {
    flag: "--apply",
    help: "delete what is listed (without it, gc only lists what it would delete)",
    parse: bool,
    boolean: true,
    default: () => false,
  },
  olderThan: {
    flag: "--older-than",
    help:
      "grace period: only objects older than this, and datasets retired longer ago, are deleted (0s, 30m, 24h, 7d)",
    parse: age,
    default: () => 86_400,
    shown: "24h",
  },
  reason: {
    flag: "--reason",
    help: 'why, recorded in the catalog (e.g. "superseded by v2")',
    parse: nonEmpty,
  },
  retryFor: {
    flag: "--retry-for",
    env: "RETRY_FOR",
    help:
      "how long a failing object store or RPC call is retried (dropped connections, throttling, 5xx, timeouts) before the run stops with exit 75 (30s, 5m, 1h)",
    parse: duration,
    default: () => 300,
    shown: "5m",
  },
  catalogRetryFor: {
    flag: "--catalog-retry-for",
    env: "CATALOG_RETRY_FOR",
    help:
      "how long copy reconnects to a PostgreSQL catalog that went away (a restart, a failover), re-claiming its range or cells, before it stops with exit 75 (30s, 5m, 1h)",
    parse: duration,
    default: () => 300,
    shown: "5m",
  },
};
