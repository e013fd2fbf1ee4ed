/**
 * What a command demands of its settings together, beyond each value being valid on its own.
 * Each command declares the rules it obeys (COMMANDS in commands.ts); the resolver applies them.
 */
import { storeShown, storeWithin } from "../blob/url.ts";
import { isRpcUrl } from "../source/url.ts";
import type { Key, Settings } from "./settings.ts";

export interface Rule {
  /** How tests and readers know it. */
  readonly name: string;
  /**
   * The settings it reads. It is skipped when one of them was given but is invalid: that problem
   * is reported already, and one problem per setting is enough (`--start abc` is not also
   * "required").
   */
  readonly keys: readonly Key[];
  /** The problem, or undefined. `origin(k)` is where k came from: its flag or variable. */
  check(s: Partial<Settings>, origin: (k: Key) => string): string | undefined;
}

/** A copy needs a first ledger, unless --fill-gaps takes the dataset's lowest. */
export const START_NEEDED: Rule = {
  name: "start needed",
  keys: ["start", "fillGaps"],
  check: (s, origin) =>
    s.start === undefined && !s.fillGaps ? `${origin("start")} is required` : undefined,
};

/** A copy needs a last ledger, unless --fill-gaps takes the dataset's highest or it follows. */
export const END_NEEDED: Rule = {
  name: "end needed",
  keys: ["end", "fillGaps", "follow"],
  check: (s, origin) =>
    s.end === undefined && !s.fillGaps && !s.follow
      ? `${origin("end")} is required (a ledger, or latest; or --follow)`
      : undefined,
};

export const END_NOT_BEFORE_START: Rule = {
  name: "end not before start",
  keys: ["start", "end"],
  check: (s) =>
    typeof s.end === "number" && s.start !== undefined && s.end < s.start
      ? `--end (LEDGER_END) ${s.end} is before --start (LEDGER_START) ${s.start}`
      : undefined,
};

export const FOLLOW_NOT_FLEET: Rule = {
  name: "follow not fleet",
  keys: ["follow", "fleet"],
  check: (s, origin) =>
    s.follow && s.fleet
      ? `${origin("follow")} and ${
        origin("fleet")
      } do not go together: a fleet backfills a fixed range`
      : undefined,
};

export const COMPACT_NEEDS_FOLLOW: Rule = {
  name: "compact needs follow",
  keys: ["compact", "follow"],
  check: (s, origin) =>
    s.compact && !s.follow
      ? `${origin("compact")} needs --follow (FOLLOW); \`bronze compact\` compacts any range`
      : undefined,
};

export const FLUSH_NEEDS_FOLLOW: Rule = {
  name: "flush needs follow",
  keys: ["flushInterval", "follow"],
  check: (s, origin) =>
    s.flushInterval !== undefined && !s.follow
      ? `${
        origin("flushInterval")
      } needs --follow (FOLLOW): only a follower has partial cells to flush`
      : undefined,
};

export const FLEET_NEEDS_POSTGRES: Rule = {
  name: "fleet needs postgres",
  keys: ["fleet", "catalog"],
  check: (s, origin) =>
    s.fleet && s.catalog === undefined
      ? `${origin("fleet")} needs a PostgreSQL catalog (--catalog or CATALOG_DSN): the embedded ` +
        `catalog serves the processes of one machine, a fleet spans many`
      : undefined,
};

/** Without a filter every dataset of the catalog would go: never what anyone means. */
export const RETIRE_NEEDS_A_FILTER: Rule = {
  name: "retire needs a filter",
  keys: ["networkFilter", "eraFilter", "versionFilter", "datasetFilter"],
  check: (s) =>
    !s.networkFilter && !s.eraFilter && !s.versionFilter && !s.datasetFilter
      ? "retire needs at least one of --network, --era, --version-label, --dataset: " +
        "it retires every dataset they match"
      : undefined,
};

/** --paths lists what a reader reads now: the superseded rows are not files to read. */
export const PATHS_NOT_HISTORY: Rule = {
  name: "paths not history",
  keys: ["paths", "history"],
  check: (s) =>
    s.paths && s.history
      ? "--paths lists the current files; --history does not go with it"
      : undefined,
};

/** The embedded catalog has one user; its readers go through `bronze catalog serve`. */
export const READER_ROLE_NEEDS_POSTGRES: Rule = {
  name: "reader role needs postgres",
  keys: ["readerRole", "catalog"],
  check: (s, origin) =>
    s.readerRole !== undefined && s.catalog === undefined
      ? `${origin("readerRole")} needs a PostgreSQL catalog (--catalog or CATALOG_DSN): the ` +
        "embedded catalog has one user (its DuckLake readers go through `bronze catalog serve`)"
      : undefined,
};

/**
 * Storage equal to, or inside, the lake it copies from: partitions would be written into the
 * lake (a dataset someone else writes, and whose objects a reader of the lake lists). Compared
 * where they really are: paths after resolving (`./lake` is `lake/`, a symbolic link is its
 * target), buckets by scheme, bucket and prefix. A lake inside the storage is left alone: bronze
 * only ever lists, writes or deletes keys of its own layout under the storage root
 * (`<network>/<era>/<version>/<table>/range=…`), so it never touches a lake that lies there.
 */
export function storageOutsideSource(storage: "storage" | "storageRoot"): Rule {
  return {
    name: "storage outside the source",
    keys: ["source", storage],
    check(s, origin) {
      const lake = s.source;
      const store = s[storage];
      if (!lake || !store || isRpcUrl(lake)) return undefined;
      const where = storeWithin(store, lake);
      if (!where) return undefined;
      return `${origin(storage)} ${storeShown(store)} ${
        where === "same" ? "is" : "is inside"
      } the source lake, ${origin("source")} ${
        storeShown(lake)
      }: partitions would be written into the lake; store them outside it`;
    },
  };
}
