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
  /**
   * The machine said no: a full disk or quota, a folder that is not writable (permissions, a
   * read-only filesystem), too many open files (sysexits' EX_IOERR). Fix it and run again.
   */
  io: 74,
  /**
   * A temporary failure outlasted its bound (--retry-for; the catalog's, --catalog-retry-for): a
   * store, the source or the catalog kept failing. Nothing was lost; run again (sysexits'
   * EX_TEMPFAIL).
   */
  tempfail: 75,
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
    "74",
    "the machine said no: a full disk or quota, a folder that is not writable, too many open " +
    "files; one line names the path and what to do (the run resumes where it stopped)",
  ],
  [
    "75",
    "a temporary failure outlasted `--retry-for` (a store or the source kept failing) or " +
    "`--catalog-retry-for` (the catalog stayed away): one line names the object or the catalog " +
    "and the last error; run again",
  ],
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

/**
 * The environment's refusals (ENOSPC, EDQUOT, EACCES/EPERM, EROFS, EMFILE/ENFILE) as one line
 * naming the path and what to do, exit 74; null for any other error. `path` is what was being
 * read or written; when `writing`, a refusal is the folder's (`dir`, default the path's parent).
 * A BronzeError passes through as it is (null).
 */
export function environmentError(
  err: unknown,
  where: { path: string; writing?: boolean; dir?: string },
): BronzeError | null {
  if (err instanceof BronzeError) return null;
  const code = codeOf(err);
  const { path, writing = false } = where;
  const dir = where.dir ?? (path.replace(/\/+$/, "").replace(/\/[^/]*$/, "") || "/");
  let message: string;
  switch (code) {
    case "ENOSPC":
      message = `${path}: no space left on device: free space there and run again ` +
        `(the run resumes where it stopped)`;
      break;
    case "EDQUOT":
      message = `${path}: disk quota exceeded: free space or raise the quota and run again ` +
        `(the run resumes where it stopped)`;
      break;
    case "EACCES":
    case "EPERM":
      message = writing
        ? `folder ${dir} is not writable (permission denied): give this user write access to it ` +
          `and run again`
        : `${path}: permission denied: give this user read access to it and run again`;
      break;
    case "EROFS":
      message = `folder ${dir} is not writable (read-only file system): mount it read-write or ` +
        `choose another location, and run again`;
      break;
    case "EMFILE":
    case "ENFILE":
      message = `${path}: too many open files: raise the limit (ulimit -n, LimitNOFILE=) and run ` +
        `again`;
      break;
    default:
      return null;
  }
  const wrapped = new BronzeError(message, EXIT.io);
  (wrapped as { cause?: unknown }).cause = err;
  return wrapped;
}

/**
 * WebAssembly programs (PGlite, the embedded catalog) report the OS's refusals as Emscripten's
 * ErrnoError, whose numbers are WASI's, not Linux's.
 */
const WASI_ERRNO: Record<number, string> = {
  2: "EACCES",
  19: "EDQUOT",
  33: "EMFILE",
  41: "ENFILE",
  51: "ENOSPC",
  63: "EPERM",
  69: "EROFS",
};

/** The error's system code: Node's and Deno's `code`, or an Emscripten ErrnoError's number. */
function codeOf(err: unknown): unknown {
  const e = err as { code?: unknown; name?: unknown; errno?: unknown };
  if (e?.code !== undefined) return e.code;
  if (e?.name === "ErrnoError" && typeof e.errno === "number") return WASI_ERRNO[e.errno];
  return undefined;
}

/**
 * A local filesystem call's failure as the user should meet it: an environment refusal as one
 * line (exit 74, environmentError), anything else unchanged.
 */
export function fsError(err: unknown, where: { path: string; writing?: boolean; dir?: string }) {
  return environmentError(err, where) ?? err;
}
