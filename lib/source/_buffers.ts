/**
 * Decompressed batches, reused once every ledger in them has been written. A build holds a row
 * group of ledgers (64 MB of XDR) and then lets them all go at once; left to the garbage
 * collector, the next row group is allocated before the last is freed, and a build worker's
 * memory doubles (measured: 110 MB more per worker at 1 MB ledgers). Small batches are left to
 * the collector: pooling them costs more than it saves.
 */

/** Batches smaller than this are not pooled. */
const MIN_POOLED = 64 << 10;
/** Buffers come in multiples of this, so one batch's buffer fits the next batch of about its size. */
const GRAIN = 64 << 10;

export class BatchBuffers {
  readonly #free: ArrayBuffer[] = [];
  #freeBytes = 0;
  /** Ledgers of each held buffer not yet released (weak: a batch never fully written, as when a
   * build is interrupted, is simply collected). */
  readonly #held = new WeakMap<ArrayBuffer, number>();

  /** @param maxFree bytes kept for reuse at most (about a row group: what one lets go at once). */
  constructor(private readonly maxFree = 96 << 20) {}

  /** A buffer for `n` bytes of batch: a free one that fits, or a new one. */
  take(n: number): Uint8Array {
    if (n < MIN_POOLED) return new Uint8Array(n);
    let best = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const size = this.#free[i].byteLength;
      // Not more than a quarter too big: a small batch must not pin a large buffer.
      if (size >= n && size <= n + (n >> 2) + GRAIN) {
        if (best < 0 || size < this.#free[best].byteLength) best = i;
      }
    }
    if (best < 0) return new Uint8Array(new ArrayBuffer(Math.ceil(n / GRAIN) * GRAIN), 0, n);
    const [buffer] = this.#free.splice(best, 1);
    this.#freeBytes -= buffer.byteLength;
    return new Uint8Array(buffer, 0, n);
  }

  /** `data` (from take()) holds `ledgers` ledgers that will each be released once written. */
  hold(data: Uint8Array, ledgers: number): void {
    if (data.buffer.byteLength < MIN_POOLED || ledgers < 1) return;
    this.#held.set(data.buffer as ArrayBuffer, ledgers);
  }

  /** One ledger of a held batch is written: when all are, its buffer is free for reuse. */
  release(xdr: Uint8Array): void {
    const buffer = xdr.buffer as ArrayBuffer;
    const left = this.#held.get(buffer);
    if (left === undefined) return;
    if (left > 1) {
      this.#held.set(buffer, left - 1);
      return;
    }
    this.#held.delete(buffer);
    if (this.#freeBytes + buffer.byteLength > this.maxFree) return;
    this.#free.push(buffer);
    this.#freeBytes += buffer.byteLength;
  }
}
