// One operation at a time per volume: Mount, Unmount, Remove and the convergence loop's actions on
// the same tenant/volume queue behind each other; different volumes proceed in parallel.

export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  /** True while an operation on `key` runs or waits. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }

  keys(): string[] {
    return [...this.tails.keys()];
  }

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    try {
      await previous;
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
