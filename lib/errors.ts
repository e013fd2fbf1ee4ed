/**
 * Errors that reach the user. Every one is a single line naming the culprit; main.ts prints
 * `bronze: <message>` and exits with `exitCode`. Anything that is not a BronzeError is a bug
 * and is reported with its stack.
 */
export class BronzeError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = new.target.name;
  }
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
