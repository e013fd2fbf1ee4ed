/**
 * The releases a claim session has heard (NOTIFY on the claims channel, claims.ts), and waiting
 * for the next one: a fleet copier with nothing to claim looks again at once when a cell is let
 * go. Private to lib/metadata/.
 */
import { sleep } from "../runtime/time.ts";

export class Releases {
  #count = 0;
  readonly #waiting = new Set<() => void>();

  /** One release heard: whoever waits looks again. */
  heard(): void {
    this.#count++;
    for (const wake of this.#waiting) wake();
  }

  /** The releases heard so far: read it before looking, then wait with it. */
  get count(): number {
    return this.#count;
  }

  /** Until a release is heard after `seen` (at once if one was), `ms` pass, or `signal` aborts. */
  async since(seen: number, ms: number, signal: AbortSignal): Promise<void> {
    if (this.#count !== seen) return;
    const heard = new AbortController();
    const wake = () => heard.abort();
    this.#waiting.add(wake);
    try {
      await sleep(ms, AbortSignal.any([signal, heard.signal]));
    } finally {
      this.#waiting.delete(wake);
    }
  }
}
