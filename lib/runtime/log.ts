/**
 * Log lines on stderr: the seed's `[tag] message` in text mode, one JSON object per line in json
 * mode. `progress()` draws a live, rewritten line, only on a terminal (`live`); elsewhere progress
 * is reported as ordinary, periodic `[progress]` lines (see Progress).
 */
export interface Logger {
  info(tag: string, message: string, fields?: Record<string, unknown>): void;
  warn(tag: string, message: string, fields?: Record<string, unknown>): void;
  progress(text: string): void;
  /** A live line can be drawn (text on a terminal). */
  readonly live: boolean;
}

export function createLogger(
  format: "text" | "json" = "text",
  write: (line: string) => void = (line) => console.error(line),
  isTerminal = Deno.stderr.isTerminal(),
): Logger {
  let liveLine = false;
  const clearLive = () => {
    if (liveLine) {
      Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[2K"));
      liveLine = false;
    }
  };
  const emit = (level: string, tag: string, message: string, fields?: Record<string, unknown>) => {
    clearLive();
    if (format === "json") {
      write(JSON.stringify({ time: new Date().toISOString(), level, tag, message, ...fields }));
    } else {
      write(
        level === "warn"
          ? `[warn] ${tag === "warn" ? "" : `${tag}: `}${message}`
          : `[${tag}] ${message}`,
      );
    }
  };
  return {
    live: isTerminal && format === "text",
    info: (tag, message, fields) => emit("info", tag, message, fields),
    warn: (tag, message, fields) => emit("warn", tag, message, fields),
    progress(text) {
      if (!isTerminal || format === "json") return;
      Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[2K${text}`));
      liveLine = true;
    },
  };
}

/** A logger that keeps lines in memory, for tests. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger("text", (l) => lines.push(l), false);
  return Object.assign(logger, { lines });
}
