/**
 * The partition grid of design.md: cell k holds ledgers k*S+1 .. (k+1)*S (S = partition size). A
 * partition never crosses a cell boundary; partial ones (first, last, flushed on interrupt) are
 * completed by later runs.
 */

/**
 * The highest ledger there can be (sequences are 32-bit): a follower without --end claims up to
 * it, so a claim that reaches it is open-ended.
 */
export const LAST_LEDGER = 0xffffffff;

/** An inclusive range of ledgers. */
export interface Range {
  start: number;
  end: number;
}

/** The grid cell holding `ledger`. */
export function cellOf(ledger: number, size: number): Range {
  const k = Math.floor((ledger - 1) / size);
  return { start: k * size + 1, end: (k + 1) * size };
}

/** Sub-ranges of `within` not covered by `held` (sorted, non-overlapping). */
export function gaps(within: Range, held: readonly Range[]): Range[] {
  const out: Range[] = [];
  let next = within.start;
  for (const h of held) {
    if (h.end < next) continue;
    if (h.start > within.end) break;
    if (h.start > next) out.push({ start: next, end: Math.min(h.start - 1, within.end) });
    next = Math.max(next, h.end + 1);
    if (next > within.end) break;
  }
  if (next <= within.end) out.push({ start: next, end: within.end });
  return out;
}
