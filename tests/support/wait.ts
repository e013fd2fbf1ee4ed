/**
 * Bounded waits for tests: every wait ends, and one that runs out says what did not happen (and
 * what a child process said meanwhile) instead of hanging until the runner gives up.
 */

/** How long a test waits for something it expects soon (a child's line, a catalog row). */
export const WAIT_MS = 60_000;

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

/**
 * Looks at `ready()` every `everyMs` until it holds; after `ms` throws "<what> did not happen
 * within <ms>" (`what` names the event, e.g. "the copier's claim queued behind gc's lock").
 */
export async function until(
  ready: () => boolean | Promise<boolean>,
  what: string,
  { ms = WAIT_MS, everyMs = 20 }: { ms?: number; everyMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ready())) {
    if (Date.now() >= deadline) throw new Error(`${what} did not happen within ${seconds(ms)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `promise`'s outcome, or after `ms` an error saying "<what> did not happen within <ms>". */
export async function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not happen within ${seconds(ms)}`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A child process's output stream (stderr, usually), read as it comes: `text` is all of it so
 * far, `until` waits for a line or pattern in it, `end` for the stream's end. Both are bounded and
 * say, when they run out or the stream ends first, what the child said.
 */
export class Output {
  text = "";
  #ended = false;
  #wake: (() => void)[] = [];
  readonly #reading: Promise<void>;

  /** `who` names the child in messages ("copier A", "bronze repair"). */
  constructor(stream: ReadableStream<Uint8Array>, readonly who: string) {
    this.#reading = (async () => {
      try {
        for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
          this.text += chunk;
          for (const wake of this.#wake.splice(0)) wake();
        }
      } finally {
        this.#ended = true;
        for (const wake of this.#wake.splice(0)) wake();
      }
    })();
    this.#reading.catch(() => {}); // a stream cancelled by end(): nothing more to read
  }

  /**
   * Waits until the text read so far holds `pattern` (a string: as it is; a RegExp: a match, which
   * is returned). Throws when the stream ends first or after `ms`, with what was read.
   */
  async until(pattern: string | RegExp, ms = WAIT_MS): Promise<RegExpExecArray> {
    const deadline = Date.now() + ms;
    const re = typeof pattern === "string"
      ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
      : pattern;
    for (;;) {
      const m = re.exec(this.text);
      if (m) return m;
      if (this.#ended) {
        throw new Error(`${this.who} ended without saying ${pattern}; it said:\n${this.text}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `${this.who} did not say ${pattern} within ${seconds(ms)}; it said:\n${this.text}`,
        );
      }
      await this.#next(left);
    }
  }

  /** Waits for the stream's end (the child exited, or closed it); returns all it said. */
  async end(ms = WAIT_MS): Promise<string> {
    const deadline = Date.now() + ms;
    while (!this.#ended) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`${this.who} did not end within ${seconds(ms)}; it said:\n${this.text}`);
      }
      await this.#next(left);
    }
    return this.text;
  }

  #next(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** How long a test waits for a whole bronze command to exit (a hang, not a slow machine, ends it). */
export const EXIT_MS = 300_000;

/**
 * Waits for `child` to exit, reading its piped stderr meanwhile; after `ms` kills it and throws,
 * saying what it said. Returns its status and stderr.
 */
export async function finish(
  child: Deno.ChildProcess,
  who = "the child process",
  ms = EXIT_MS,
): Promise<{ status: Deno.CommandStatus; stderr: string }> {
  const stderr = new Output(child.stderr, who);
  try {
    const status = await within(child.status, `${who} exiting`, ms);
    return { status, stderr: await stderr.end() };
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch { /* exited meanwhile */ }
    throw new Error(`${(err as Error).message}; it said:\n${stderr.text}`);
  }
}
