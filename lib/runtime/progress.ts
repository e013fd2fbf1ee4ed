import { formatDuration } from "./format.ts";
import type { Logger } from "./log.ts";

/**
 * Throughput and ETA of a run: a live line on a terminal, redrawn a few times a second; elsewhere
 * (a log file, a pipe, json mode) a plain `[progress]` line every `plainEverySeconds` (0: none).
 */
export class Progress {
  #total = 0;
  #ledgers = 0;
  #bytes = 0;
  #startedAt = 0;
  #lastDraw = 0;
  #lastPlain = 0;

  constructor(private readonly log: Logger, private readonly plainEverySeconds = 0) {}

  begin(totalLedgers: number): void {
    this.#total = totalLedgers;
    this.#startedAt = performance.now();
    this.#lastPlain = this.#startedAt;
  }

  add(ledgers: number, bytes: number): void {
    this.#ledgers += ledgers;
    this.#bytes += bytes;
    const now = performance.now();
    if (this.log.live) {
      if (now - this.#lastDraw < 250) return;
      this.#lastDraw = now;
      this.log.progress(this.line(now));
    } else if (
      this.plainEverySeconds > 0 && now - this.#lastPlain >= this.plainEverySeconds * 1000
    ) {
      this.#lastPlain = now;
      this.log.info("progress", this.line(now).slice("[progress] ".length), {
        ledgers: this.#ledgers,
        total: this.#total,
      });
    }
  }

  line(now = performance.now()): string {
    const secs = Math.max((now - this.#startedAt) / 1000, 1e-3);
    const rate = this.#ledgers / secs;
    const mbps = this.#bytes / secs / 1e6;
    const left = this.#total - this.#ledgers;
    const eta = rate > 0 ? formatDuration(left / rate) : "?";
    const pct = this.#total ? ((100 * this.#ledgers) / this.#total).toFixed(1) : "0";
    return `[progress] ${this.#ledgers}/${this.#total} ledgers (${pct}%)  ${
      rate.toFixed(0)
    } ledgers/s  ${mbps.toFixed(1)} MB/s  ETA ${eta}`;
  }

  end(): void {
    this.log.progress("");
  }
}
