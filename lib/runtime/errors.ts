/**
 * Errors that reach the user. Every one is a single line naming the culprit; main.ts prints
 * `bronze: <message>` and exits with `exitCode`. Anything that is not a BronzeError is a bug
 * and is reported with its stack.
 */
export class BronzeError extends Error {
  /** Where it happened, for metrics (bronze_errors_total{kind}): set by the layer that knows. */
  area?: ErrorArea;

  constructor(message: string, readonly exitCode: number = EXIT.error) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * Every exit code bronze uses, in one place: the commands take theirs from here, and the README's
 * table is made from EXIT_MEANINGS (scripts/readme.ts; tests/cli/reference_test.ts holds them equal).
 */
export const EXIT = {
  ok: 0,
  /** A BronzeError: one line naming the culprit. */
  error: 1,
  /** Bad configuration (a ConfigError), or a command that can never succeed as given. */
  usage: 2,
  /** coverage --fail-on-gaps found a gap; scripts/compile.ts cannot build here. */
  gaps: 3,
  /** The command ran, and found partitions it could not pass (verify, repair, compact, rebuild). */
  incomplete: 4,
  /** Not a BronzeError: a bug (BSD's EX_SOFTWARE). */
  internal: 70,
  /** copy stopped by SIGINT / SIGTERM (128 + the signal's number, as a shell reports it). */
  sigint: 130,
  sigterm: 143,
} as const;

export const EXIT_MEANINGS: readonly (readonly [code: string, meaning: string])[] = [
  ["0", "success"],
  ["1", "an error (catalog, storage, source, checkpoint…): one line on stderr naming the culprit"],
  [
    "2",
    "bad flags, environment variables or DSN (every problem listed); `copy` into a retired dataset",
  ],
  ["3", "`coverage --fail-on-gaps`: at least one gap; `deno task compile`: cannot build here"],
  [
    "4",
    "`verify`: a partition failed a check; `repair`: a partition left unrepaired; `compact`: a " +
    "cell refused (a corrupt partial); `catalog rebuild`: a partition failed its manifest or " +
    "conflicts with the catalog",
  ],
  ["70", "an internal error (a bug): one line, and `BRONZE_DEBUG=1` shows where"],
  [
    "130 / 143",
    "`copy` stopped by SIGINT / SIGTERM after committing the partition in hand (a second signal " +
    "stops it at once; the commit protocol keeps that safe)",
  ],
];

export type ErrorArea = "source" | "catalog" | "storage" | "checkpoint" | "other";

/** The area of any error: what its layer said, else "other". */
export function areaOf(err: unknown): ErrorArea {
  return (err instanceof BronzeError && err.area) || "other";
}

/** Marks an error with its area (once: the innermost layer knows best) and returns it. */
export function inArea<E>(err: E, area: ErrorArea): E {
  if (err instanceof BronzeError) err.area ??= area;
  return err;
}

/** Bad flags, environment variables or configuration files (exit code 2, like a usage error). */
export class ConfigError extends BronzeError {
  constructor(readonly problems: string[]) {
    super(
      problems.length === 1
        ? problems[0]
        : `${problems.length} configuration problems: ${problems.join("; ")}`,
      EXIT.usage,
    );
  }
}
