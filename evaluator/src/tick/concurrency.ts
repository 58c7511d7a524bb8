/**
 * Runs `fn` over `items` with at most `limit` calls in flight, in input order of start. Stops
 * starting new items once `signal` aborts (those already started run to completion). Never
 * rejects: `fn` is expected to handle its own errors (each tenant is isolated).
 *
 * @returns how many items were started
 */
export async function forEachConcurrently<T>(
  items: Iterable<T>,
  limit: number,
  fn: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<number> {
  const iterator = items[Symbol.iterator]();
  let started = 0;
  const worker = async () => {
    for (;;) {
      if (signal?.aborted) return;
      const next = iterator.next();
      if (next.done) return;
      started++;
      try {
        await fn(next.value);
      } catch {
        // fn isolates its own failures; a throw here must not stop the other items.
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  return started;
}
