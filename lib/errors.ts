/**
 * Errors that reach the user. Every one is a single line naming the culprit; main.ts prints
 * `bronze: <message>` and exits with `exitCode`. Anything that is not a BronzeError is a bug
 * and is reported with its stack.
 */
export class BronzeError extends Error {
  /** Where it happened, for metrics (bronze_errors_total{kind}): set by the layer that knows. */
  area?: ErrorArea;

  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = new.target.name;
  }
}

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
      2,
    );
  }
}
