/** Bounded concurrency over a list: many object-store reads in flight, never all of them. */

/**
 * `fn` over `items`, at most `limit` at once; results in the items' order. The first error stops
 * the taking of new items and is thrown once those in hand have settled (nothing is left running
 * behind the caller's back).
 */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]);
      } catch (err) {
        next = items.length;
        throw err;
      }
    }
  };
  const settled = await Promise.allSettled(
    Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker),
  );
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return out;
}
