// Runs work over many items a fixed number at a time (the scale and supervisor benchmarks write
// thousands of records and images; all at once would measure the queue, not the system).

/** Runs `fn` over `items`, at most `width` at a time. */
export async function eachLimited<T>(items: readonly T[], width: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}
