import { hostname } from "node:os";
import { join } from "node:path";
import { parseStoreUrl, redactUrl, schemeOf, splitObjectUrl } from "./blob/url.ts";
import { existingDir, lakeDir, localPath, writableDir, writableFile } from "./probe.ts";
import { parseListenAddress } from "./metrics/server.ts";
import { ConfigError } from "./runtime/errors.ts";
import { validateDsn } from "./metadata/dsn.ts";
import type { DatasetFilter } from "./metadata/coverage.ts";
import { type Network, NETWORKS } from "./source/network.ts";

/**
 * Every setting of every command, validated in one place. A setting comes from its flag, else its
 * environment variable, else its default. All problems are collected and reported together, so a
 * user fixes a bad invocation in one go rather than one error per run.
 */

export interface Settings {
  catalog?: string;
  stateDir: string;
  source?: string;
  storage: string;
  start?: number;
  /** A ledger, or (copy only) the source's newest ledger, found when the run starts. */
  end?: number | "latest";
  partitionSize: number;
  network: Network;
  era: string;
  versionLabel: string;
  copierId: string;
  checkpoint: string;
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
  /** verify: record no quality rows (a read-only standby). */
  noRecord: boolean;
  /** host:port of the Prometheus /metrics and /healthz server. */
  metricsAddr?: string;
  /** Seconds without progress, or of a head that does not advance, before /healthz says 503. */
  stallAfter: number;
  failOnGaps: boolean;
  status: boolean;
  /** Optional filters of coverage/verify: the same flags as the copier's, without defaults. */
  networkFilter?: Network;
  eraFilter?: string;
  versionFilter?: string;
  datasetFilter?: string;
  /** verify: storage root to read partitions from instead of each lineage row's storage_uri. */
  storageRoot?: string;
  /** gc: delete what it lists (without it, a dry run). */
  apply: boolean;
  /** gc: the grace period, in seconds (0 allowed). */
  olderThan: number;
  /** retire: why, recorded in the catalog. */
  reason?: string;
}

type Key = keyof Settings;

interface Spec {
  flag: string;
  env?: string;
  help: string;
  parse(raw: string): unknown | Invalid;
  default?: (s: Partial<Settings>) => unknown;
  boolean?: true;
  /** The default as help shows it, where `default` alone would not say it well. */
  shown?: string;
  /** Checks a local path on disk (commands that use it say so in COMMAND_PROBES). */
  probe?: (value: string, s: Partial<Settings>) => string | undefined;
}

/** A rejected value; the message follows the flag or variable name it came from. */
class Invalid {
  constructor(readonly message: string) {}
}

const intIn = (min: number, max: number) => (raw: string): number | Invalid => {
  if (!/^\d+$/.test(raw.trim())) return new Invalid(`must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) return new Invalid(`must be between ${min} and ${max}, got ${n}`);
  return n;
};
/** A duration such as 500ms, 5s, 10m or 1h, in seconds. */
const duration = (raw: string): number | Invalid => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(raw.trim());
  if (!m) return new Invalid(`must be a duration such as 500ms, 5s, 10m or 1h, got "${raw}"`);
  const seconds = Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as "ms"];
  return seconds > 0 ? seconds : new Invalid(`must be more than 0, got "${raw}"`);
};
/** An age such as 0s, 30m, 24h or 7d, in seconds: like duration, but 0 is allowed and so are days. */
const age = (raw: string): number | Invalid => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(raw.trim());
  if (!m) return new Invalid(`must be an age such as 0s, 30m, 24h or 7d, got "${raw}"`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as "ms"];
};
const oneOf = (choices: readonly string[]) => (raw: string): string | Invalid =>
  choices.includes(raw) ? raw : new Invalid(`must be one of ${choices.join(", ")}, got "${raw}"`);
const label = (raw: string): string | Invalid =>
  /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(raw)
    ? raw
    : new Invalid(`must be 1-64 letters, digits, '_', '.' or '-', got "${raw}"`);
const nonEmpty = (raw: string): string | Invalid =>
  raw.trim() ? raw : new Invalid("must not be empty");
const bool = (raw: string): boolean | Invalid => {
  const v = raw.toLowerCase();
  if (["1", "true", "yes"].includes(v)) return true;
  if (["0", "false", "no"].includes(v)) return false;
  return new Invalid(`must be true or false, got "${raw}"`);
};
const dsn = (raw: string): string | Invalid => {
  const problem = validateDsn(raw, "");
  return problem ? new Invalid(problem.trimStart()) : raw;
};
/** A local path, file://, gs://bucket[/prefix] or s3://bucket[/prefix]. */
const storeUrl = (raw: string): string | Invalid => {
  const parsed = parseStoreUrl(raw);
  return "problem" in parsed ? new Invalid(parsed.problem) : raw;
};
const isRpc = (url: string) => schemeOf(url)?.startsWith("rpc+") ?? false;
/** A Galexie lake (a store URL) or a Stellar RPC node: rpc+https://host[:port][/path]. */
const sourceUrl = (raw: string): string | Invalid => {
  if (!isRpc(raw)) return storeUrl(raw);
  const scheme = schemeOf(raw);
  if (scheme !== "rpc+https" && scheme !== "rpc+http") {
    return new Invalid(
      `must be rpc+https:// or rpc+http:// for a Stellar RPC node, got "${redactUrl(raw)}"`,
    );
  }
  try {
    if (new URL(raw.slice("rpc+".length)).hostname) return raw;
  } catch { /* reported below */ }
  return new Invalid(
    `names no RPC host: "${redactUrl(raw)}" (expected ${scheme}://host[:port][/path])`,
  );
};
/** Like storeUrl, but naming one object (the checkpoint file). */
const objectUrl = (raw: string): string | Invalid => {
  const split = splitObjectUrl(raw);
  return "problem" in split ? new Invalid(split.problem) : raw;
};
const UINT32_MAX = 0xffffffff;

export const SPECS: Record<Key, Spec> = {
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
    probe: (dir) => writableDir(dir),
  },
  source: {
    flag: "--source",
    env: "SOURCE_URL",
    help:
      "where ledgers come from: a Galexie data lake (a path, file://, gs:// or s3:// URL) or a Stellar RPC node (rpc+https://host[:port][/path])",
    parse: sourceUrl,
    probe: (url) => {
      const path = isRpc(url) ? null : localPath(url);
      return path === null ? undefined : lakeDir(path);
    },
  },
  storage: {
    flag: "--storage",
    env: "STORAGE_URL",
    help: "where partitions are written: a path, file://, gs:// or s3:// URL",
    parse: storeUrl,
    default: () => "./data",
    probe: (url) => {
      const path = localPath(url);
      return path === null ? undefined : writableDir(path);
    },
  },
  start: {
    flag: "--start",
    env: "LEDGER_START",
    help: "first ledger of the range",
    parse: intIn(1, UINT32_MAX),
  },
  end: {
    flag: "--end",
    env: "LEDGER_END",
    help:
      "last ledger of the range (inclusive); for copy also `latest`: the source's newest ledger",
    parse: (raw) => raw.trim() === "latest" ? "latest" : intIn(1, UINT32_MAX)(raw),
  },
  partitionSize: {
    flag: "--partition-size",
    env: "PARTITION_SIZE",
    help: "ledgers per partition (grid cell)",
    parse: intIn(1, 10_000_000),
    default: () => 10_000,
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
    shown: "bronze-copier; with --fleet, <host>-<pid>",
  },
  checkpoint: {
    flag: "--checkpoint",
    env: "CHECKPOINT_URL",
    help: "checkpoint location: a path, gs:// or s3:// URL",
    parse: objectUrl,
    default: (s) => join(s.stateDir ?? "./state", "checkpoint.json"),
    shown: "<state-dir>/checkpoint.json",
    probe: (url) => {
      const path = localPath(url);
      return path === null ? undefined : writableFile(path);
    },
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
    help: "serve Prometheus /metrics and /healthz on host:port while copying (off by default)",
    parse: (raw) => {
      const parsed = parseListenAddress(raw);
      return typeof parsed === "string" ? new Invalid(parsed) : raw;
    },
  },
  history: {
    flag: "--history",
    help: "also the superseded partitions (replaced by a compaction), each with what replaced it",
    parse: bool,
    boolean: true,
    default: () => false,
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
  networkFilter: {
    flag: "--network",
    env: "NETWORK",
    help: "only datasets of this network: pubnet, testnet or futurenet",
    parse: oneOf(NETWORKS),
    shown: "all",
  },
  eraFilter: {
    flag: "--era",
    env: "ERA_ID",
    help: "only datasets of this era label",
    parse: label,
    shown: "all",
  },
  versionFilter: {
    flag: "--version-label",
    env: "VERSION_LABEL",
    help: "only datasets of this version label",
    parse: label,
    shown: "all",
  },
  datasetFilter: {
    flag: "--dataset",
    env: "DATASET",
    help: "only this dataset name, e.g. ledgers_lcm_raw",
    parse: label,
    shown: "all",
  },
  storageRoot: {
    flag: "--storage",
    env: "STORAGE_URL",
    help:
      "read partitions under this root (path, file://, gs://, s3://) at each lineage row's storage_path",
    parse: storeUrl,
    shown: "each row's storage_uri",
    probe: (url) => {
      const path = localPath(url);
      return path === null ? undefined : existingDir(path);
    },
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
};

/** The filters that pick datasets, in help order (every command over existing datasets takes them). */
const DATASET_FILTERS = ["networkFilter", "eraFilter", "versionFilter", "datasetFilter"] as const;

/** The dataset filter flags (--network, --era, --version-label, --dataset) as the catalog's filter. */
export function datasetFilterOf(s: {
  networkFilter?: string;
  eraFilter?: string;
  versionFilter?: string;
  datasetFilter?: string;
}): DatasetFilter {
  return {
    network: s.networkFilter,
    eraId: s.eraFilter,
    version: s.versionFilter,
    dataset: s.datasetFilter,
  };
}

/**
 * The settings each command reads, in help order; a command rejects the rest (commander rejects
 * unknown flags). Each command's options type is derived from its list (SettingsOf).
 */
export const COMMAND_SETTINGS = {
  migrate: ["catalog", "stateDir", "status", "json"],
  copy: [
    "source",
    "storage",
    "start",
    "end",
    "partitionSize",
    "network",
    "era",
    "versionLabel",
    "copierId",
    "catalog",
    "stateDir",
    "checkpoint",
    "concurrency",
    "progressInterval",
    "logFormat",
    "fillGaps",
    "fleet",
    "follow",
    "compact",
    "pollInterval",
    "flushInterval",
    "metricsAddr",
    "stallAfter",
  ],
  coverage: [
    "catalog",
    "stateDir",
    ...DATASET_FILTERS,
    "start",
    "end",
    "json",
    "failOnGaps",
  ],
  verify: [
    "catalog",
    "stateDir",
    "storageRoot",
    ...DATASET_FILTERS,
    "start",
    "end",
    "json",
    "logFormat",
    "progressInterval",
    "noRecord",
  ],
  repair: [
    "catalog",
    "stateDir",
    "source",
    "storageRoot",
    ...DATASET_FILTERS,
    "start",
    "end",
    "json",
    "logFormat",
    "progressInterval",
  ],
  compact: [
    "catalog",
    "stateDir",
    "storage",
    ...DATASET_FILTERS,
    "start",
    "end",
    "partitionSize",
    "json",
    "logFormat",
  ],
  lineage: [
    "catalog",
    "stateDir",
    ...DATASET_FILTERS,
    "start",
    "end",
    "history",
    "json",
  ],
  checkpointShow: ["checkpoint", "stateDir", "catalog", "json"],
  fleet: [
    "catalog",
    "stateDir",
    ...DATASET_FILTERS,
    "json",
  ],
  catalogRebuild: [
    "storage",
    "catalog",
    "stateDir",
    ...DATASET_FILTERS,
    "json",
    "logFormat",
    "progressInterval",
  ],
  gc: [
    "catalog",
    "stateDir",
    "storage",
    ...DATASET_FILTERS,
    "olderThan",
    "apply",
    "json",
  ],
  retire: [
    "catalog",
    "stateDir",
    ...DATASET_FILTERS,
    "reason",
    "json",
  ],
} as const satisfies Record<string, readonly Key[]>;

export type CommandName = keyof typeof COMMAND_SETTINGS;

/** The settings a command cannot run without (they have no default). */
export const COMMAND_REQUIRED = {
  copy: ["source"],
  repair: ["source"],
  retire: ["reason"],
} as const satisfies {
  readonly [C in CommandName]?: readonly (typeof COMMAND_SETTINGS)[C][number][];
};

/**
 * The local paths each command checks on disk before it starts: copy writes to its storage, state
 * dir (temp files, the embedded catalog) and checkpoint and reads its lake; verify reads under
 * --storage. (migrate's embedded catalog says itself when it cannot be made.)
 */
export const COMMAND_PROBES: { readonly [C in CommandName]?: readonly Key[] } = {
  copy: ["source", "storage", "stateDir", "checkpoint"],
  verify: ["storageRoot"],
  repair: ["source", "storageRoot", "stateDir"],
};

/** The options of one command: exactly the settings it reads, with their types. */
export type SettingsOf<C extends CommandName> = Pick<
  Settings,
  (typeof COMMAND_SETTINGS)[C][number]
>;

/** Options whose --end is a ledger (every command but copy, which also takes `latest`). */
export type WithLedgerEnd<T> = Omit<T, "end"> & { end?: number };

/** Narrows --end to a ledger (resolveSettings already refused `latest` outside copy). */
export function withLedgerEnd<T extends { end?: number | "latest" }>(s: T): WithLedgerEnd<T> {
  const { end, ...rest } = s;
  if (end === "latest") throw new ConfigError(["--end latest is for copy only"]);
  return { ...rest, end };
}

/** Flag values as commander parsed them, keyed by its camelCase option names. */
export type Flags = Record<string, string | boolean | undefined>;

/** commander's camelCase option name for a spec's flag ("--state-dir" -> "stateDir"). */
export function optionName(key: Key): string {
  // commander keeps `--no-x` as `x`: true unless the flag is given, then false.
  const flag = SPECS[key].flag.replace(/^--no-/, "--");
  return flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export interface ResolveOptions<K extends Key, R extends K> {
  /** Must end up set, and are typed so. */
  required?: readonly R[];
  /** Local paths to check on disk (COMMAND_PROBES), once the value itself is valid. */
  probe?: readonly K[];
  /** Command-line words commander did not recognise, reported with the other problems. */
  unknown?: readonly string[];
}

/**
 * Resolves the given keys from flags (by commander's option names), then the environment, then
 * defaults, then probes local paths. Throws one ConfigError listing every problem.
 */
export function resolveSettings<K extends Key, R extends K = never>(
  keys: readonly K[],
  flags: Flags,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  opts: ResolveOptions<K, R> = {},
): Pick<Settings, K> & Required<Pick<Settings, R>> {
  const required: readonly K[] = opts.required ?? [];
  const problems: string[] = unknownProblems(keys, opts.unknown ?? []);
  const out: Partial<Settings> = {};
  const origins: Partial<Record<Key, string>> = {};
  // Some defaults depend on other settings (checkpoint on stateDir, copierId on fleet): those
  // come last.
  const late = (k: Key) => (k === "checkpoint" || k === "copierId" ? 1 : 0);
  const ordered = [...keys].sort((a, b) => late(a) - late(b));
  for (const key of ordered) {
    const spec = SPECS[key];
    const given = flags[optionName(key)];
    // A negated flag (--no-record) is the setting true when given, commander's false.
    const flagValue = spec.flag.startsWith("--no-") ? (given === false ? true : undefined) : given;
    let raw: string | undefined;
    let origin = spec.flag;
    if (typeof flagValue === "boolean") raw = String(flagValue);
    else if (flagValue !== undefined) raw = flagValue;
    else if (spec.env && env(spec.env) !== undefined) {
      raw = env(spec.env);
      origin = spec.env;
    }
    const name = spec.env ? `${spec.flag} (${spec.env})` : spec.flag;
    if (raw === undefined) {
      if (spec.default) (out as Record<string, unknown>)[key] = spec.default(out);
      else if (required.includes(key)) problems.push(`${name} is required`);
      origins[key] = name;
      continue;
    }
    const parsed = spec.parse(raw);
    if (parsed instanceof Invalid) problems.push(`${origin} ${parsed.message}`);
    else (out as Record<string, unknown>)[key] = parsed;
    origins[key] = origin;
  }
  const s = out as Partial<Settings>;
  // A copy needs its range, but --fill-gaps defaults it to the dataset's recorded extent, and a
  // follower needs no end.
  if (keys.includes("fillGaps" as K) && !s.fillGaps) {
    if (s.start === undefined && origins.start) problems.push(`${origins.start} is required`);
    if (s.end === undefined && !s.follow && origins.end) {
      problems.push(`${origins.end} is required (a ledger, or latest; or --follow)`);
    }
  }
  if (s.end === "latest" && !keys.includes("source" as K)) {
    problems.push(
      `${origins.end} latest is for copy (the newest ledger of its source); give a ledger`,
    );
  }
  if (typeof s.end === "number" && s.start !== undefined && s.end < s.start) {
    problems.push(`--end (LEDGER_END) ${s.end} is before --start (LEDGER_START) ${s.start}`);
  }
  if (s.follow && s.fleet) {
    problems.push(
      `${origins.follow} and ${origins.fleet} do not go together: a fleet backfills a fixed range`,
    );
  }
  if (s.compact && !s.follow) {
    problems.push(
      `${origins.compact} needs --follow (FOLLOW); \`bronze compact\` compacts any range`,
    );
  }
  if (s.flushInterval !== undefined && !s.follow) {
    problems.push(
      `${origins.flushInterval} needs --follow (FOLLOW): only a follower has partial cells to flush`,
    );
  }
  if (s.fleet && keys.includes("catalog" as K) && s.catalog === undefined) {
    problems.push(
      `${origins.fleet} needs a PostgreSQL catalog (--catalog or CATALOG_DSN): the embedded ` +
        `catalog serves the processes of one machine, a fleet spans many`,
    );
  }
  for (const key of opts.probe ?? []) {
    const value = (out as Record<string, unknown>)[key];
    const problem = typeof value === "string" ? SPECS[key].probe?.(value, s) : undefined;
    if (problem) problems.push(`${origins[key]} ${problem}`);
  }
  if (problems.length) throw new ConfigError(problems);
  return out as Pick<Settings, K> & Required<Pick<Settings, R>>;
}

/**
 * One problem per unknown word, suggesting the command's flag it most likely meant
 * (`--version` → `--version-label`).
 */
function unknownProblems(keys: readonly Key[], words: readonly string[]): string[] {
  const flags = [...new Set(keys.map((k) => SPECS[k].flag))];
  const problems: string[] = [];
  let valueOfUnknown = false;
  for (const word of words) {
    if (!word.startsWith("-")) {
      // The value of the unknown option before it, most likely: that option is the problem.
      if (!valueOfUnknown) problems.push(`unexpected argument "${word}" (settings are flags)`);
      valueOfUnknown = false;
      continue;
    }
    const flag = word.split("=")[0];
    valueOfUnknown = !word.includes("=");
    const guess = flags.find((f) => f.startsWith(flag)) ??
      flags.find((f) => editDistance(f, flag) <= 2);
    problems.push(`unknown option ${flag}${guess ? ` (did you mean ${guess}?)` : ""}`);
  }
  return problems;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}
