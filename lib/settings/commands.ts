/**
 * The commands' settings, each command beside its rules: which settings it reads (in help order;
 * it refuses the rest), which it cannot run without, which local paths it checks on disk before
 * it starts, which settings mean something else for it (its own spec), and what it demands of
 * them together. Nothing is inferred from which keys a command happens to have: the resolver
 * (resolve.ts) applies exactly what is declared here.
 */
import { DATASET_FILTERS } from "./filters.ts";
import { ledgerOrLatest } from "./parsers.ts";
import { existingDir, lakeDir, onDisk, type Probe, writableDir, writableFile } from "./probe.ts";
import {
  COMPACT_NEEDS_FOLLOW,
  END_NEEDED,
  END_NOT_BEFORE_START,
  FLEET_NEEDS_POSTGRES,
  FLUSH_NEEDS_FOLLOW,
  FOLLOW_NOT_FLEET,
  PATHS_NOT_HISTORY,
  READER_ROLE_NEEDS_POSTGRES,
  RETIRE_NEEDS_A_FILTER,
  type Rule,
  START_NEEDED,
  storageOutsideSource,
} from "./rules.ts";
import type { Key, Settings, Spec } from "./settings.ts";
import { SPECS } from "./specs.ts";

export interface CommandSettings<K extends Key, R extends K, O> {
  /** The settings it reads, in help order. */
  readonly settings: readonly K[];
  /** Those it cannot run without (they have no default): typed as set. */
  readonly required?: readonly R[];
  /** Its own spec of a setting that means something else for it (its help, what it takes). */
  readonly specs?: O;
  /** The local paths it checks on disk before any work, once the values are valid. */
  readonly probes?: { readonly [P in K]?: Probe };
  /** What it demands of its settings together. */
  readonly rules?: readonly Rule[];
}

/** Declares a command's settings, keeping the literal types that SettingsOf reads. */
function command<
  const K extends Key,
  const R extends K = never,
  const O extends { readonly [P in K]?: Spec } = Record<never, never>,
>(c: CommandSettings<K, R, O>): CommandSettings<K, R, O> {
  return c;
}

/** Copy's --end: also `latest`. */
const END_OR_LATEST: Spec<number | "latest"> = {
  ...SPECS.end,
  help:
    "last ledger of the range (inclusive), or `latest`: the source's newest ledger when the run starts",
  parse: ledgerOrLatest,
};

export const COMMANDS = {
  migrate: command({
    settings: ["catalog", "stateDir", "status", "readerRole", "json"],
    rules: [READER_ROLE_NEEDS_POSTGRES],
  }),
  copy: command({
    settings: [
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
      "statusRefresh",
      "retryFor",
      "catalogRetryFor",
    ],
    required: ["source"],
    specs: { end: END_OR_LATEST },
    // It reads its lake, and writes partitions, temp files (and the embedded catalog) and its
    // checkpoint.
    probes: {
      source: onDisk(lakeDir),
      storage: onDisk(writableDir),
      stateDir: onDisk(writableDir),
      checkpoint: onDisk(writableFile),
    },
    rules: [
      START_NEEDED,
      END_NEEDED,
      END_NOT_BEFORE_START,
      FOLLOW_NOT_FLEET,
      COMPACT_NEEDS_FOLLOW,
      FLUSH_NEEDS_FOLLOW,
      FLEET_NEEDS_POSTGRES,
      storageOutsideSource("storage"),
    ],
  }),
  coverage: command({
    settings: ["catalog", "stateDir", ...DATASET_FILTERS, "start", "end", "json", "failOnGaps"],
    rules: [END_NOT_BEFORE_START],
  }),
  verify: command({
    settings: [
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
      "retryFor",
    ],
    probes: { storageRoot: onDisk(existingDir) },
    rules: [END_NOT_BEFORE_START],
  }),
  repair: command({
    settings: [
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
      "retryFor",
    ],
    required: ["source"],
    // It reads the lake and the stored files, and builds in <state-dir>/tmp.
    probes: {
      source: onDisk(lakeDir),
      storageRoot: onDisk(existingDir),
      stateDir: onDisk(writableDir),
    },
    rules: [END_NOT_BEFORE_START, storageOutsideSource("storageRoot")],
  }),
  compact: command({
    settings: [
      "catalog",
      "stateDir",
      "storage",
      ...DATASET_FILTERS,
      "start",
      "end",
      "partitionSize",
      "json",
      "logFormat",
      "retryFor",
    ],
    // It writes each cell's file to storage, built in <state-dir>/tmp.
    probes: { storage: onDisk(writableDir), stateDir: onDisk(writableDir) },
    rules: [END_NOT_BEFORE_START],
  }),
  lineage: command({
    settings: [
      "catalog",
      "stateDir",
      ...DATASET_FILTERS,
      "start",
      "end",
      "history",
      "paths",
      "json",
    ],
    rules: [END_NOT_BEFORE_START, PATHS_NOT_HISTORY],
  }),
  checkpointShow: command({ settings: ["checkpoint", "stateDir", "catalog", "json", "retryFor"] }),
  fleet: command({ settings: ["catalog", "stateDir", ...DATASET_FILTERS, "json"] }),
  status: command({
    settings: ["catalog", "stateDir", "json", "html"],
    probes: { html: onDisk(writableFile) },
  }),
  catalogRebuild: command({
    settings: [
      "storage",
      "catalog",
      "stateDir",
      ...DATASET_FILTERS,
      "json",
      "logFormat",
      "progressInterval",
      "retryFor",
    ],
    // It reads what storage holds, and checks files in <state-dir>/tmp (beside the embedded
    // catalog it may make).
    probes: { storage: onDisk(existingDir), stateDir: onDisk(writableDir) },
  }),
  catalogServe: command({ settings: ["catalog", "stateDir"] }),
  gc: command({
    settings: [
      "catalog",
      "stateDir",
      "storage",
      ...DATASET_FILTERS,
      "olderThan",
      "apply",
      "json",
      "retryFor",
    ],
  }),
  retire: command({
    settings: ["catalog", "stateDir", ...DATASET_FILTERS, "reason", "json"],
    required: ["reason"],
    rules: [RETIRE_NEEDS_A_FILTER],
  }),
};

export type CommandName = keyof typeof COMMANDS;

type Declared = typeof COMMANDS;
type KeyOf<C extends CommandName> = Declared[C]["settings"][number];
type RequiredOf<C extends CommandName> = Declared[C] extends CommandSettings<Key, infer R, unknown>
  ? R
  : never;
type SpecsOf<C extends CommandName> = Declared[C] extends CommandSettings<Key, Key, infer O> ? O
  : never;
type ValueOf<S> = S extends Spec<infer T> ? T : never;

/** Settings (picked), with the command's own specs' value types where it declares them. */
type Own<T, O> = { [P in keyof T]: P extends keyof O ? ValueOf<O[P]> | undefined : T[P] };

/**
 * The options of one command: exactly the settings it reads, typed as its specs parse them, its
 * required ones set.
 */
export type SettingsOf<C extends CommandName> =
  & Omit<Own<Pick<Settings, KeyOf<C>>, SpecsOf<C>>, RequiredOf<C>>
  & { [P in RequiredOf<C>]-?: NonNullable<Settings[P]> };

/** The spec a command reads `key` by: its own, else the common one. */
export function specOf(name: CommandName, key: Key): Spec {
  const own = (COMMANDS[name] as CommandSettings<Key, Key, Partial<Record<Key, Spec>>>).specs;
  return own?.[key] ?? SPECS[key];
}
