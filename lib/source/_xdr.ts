/**
 * The primitives every XDR walk uses (the generated skippers in _skippers.generated.ts, the
 * ledger decoder, the lake's batch splitter): bounds checks that fail with the offset.
 */

/** Thrown on bytes that do not follow the schema: truncated, unknown discriminant, too long. */
export class XdrCorruptError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`${message} at byte ${offset}`);
    this.name = "XdrCorruptError";
  }
}

/** Returns the offset just past the value starting at `off`. */
export type Skipper = (view: DataView, off: number) => number;

/** `n` bytes are there at `off`, else XdrCorruptError. */
export function need(view: DataView, off: number, n: number): void {
  if (n < 0 || off + n > view.byteLength) {
    throw new XdrCorruptError(
      `truncated XDR: need ${n} byte(s), have ${view.byteLength - off}`,
      off,
    );
  }
}

/** The big-endian uint32 at `off`, bounds-checked. */
export function readU32(view: DataView, off: number): number {
  need(view, off, 4);
  return view.getUint32(off);
}
