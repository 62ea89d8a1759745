// Coalesced reads: the concurrent get()s of one EtcdKV go to etcd together, as one transaction of
// range requests, instead of a gRPC call each. Under load (the master answering many GETs at once)
// that is most of what a read costs the process and etcd.
//
// Every read stays linearizable: a get joins only a batch that has not been sent yet, so the batch
// reaches etcd after the get was called and sees every write that finished before (etcd's ranges
// are linearizable unless asked otherwise, also inside a transaction). A batch collects what was
// asked during one turn of the event loop and goes out at the next setImmediate; while
// `maxInFlight` batches are on their way, new gets wait for the next one (larger batches, never
// older answers).

import type { Entry } from './kv.js';

export interface ReadBatcherOptions {
  /** Reads many keys in one request (a transaction of ranges). */
  readMany(keys: string[]): Promise<Map<string, Entry | null>>;
  /** Reads one key (a plain range): batches of one, and keys retried alone. */
  readOne(key: string): Promise<Entry | null>;
  /** Whether a failed batch should be retried key by key (e.g. etcd refused one key to this user). */
  retryAlone(err: unknown): boolean;
  /** Batches on their way at once (default 2). */
  maxInFlight?: number;
  /** Keys per batch (etcd allows 128 operations per transaction; default 100). */
  maxKeys?: number;
}

interface Waiter {
  resolve: (entry: Entry | null) => void;
  reject: (err: unknown) => void;
}

export class ReadBatcher {
  private pending = new Map<string, Waiter[]>();
  private scheduled = false;
  private inFlight = 0;
  private readonly maxInFlight: number;
  private readonly maxKeys: number;
  /** Batches sent and keys read (for tests and the bench). */
  readonly stats = { batches: 0, keys: 0 };

  constructor(private readonly options: ReadBatcherOptions) {
    this.maxInFlight = options.maxInFlight ?? 2;
    this.maxKeys = options.maxKeys ?? 100;
  }

  get(key: string): Promise<Entry | null> {
    return new Promise<Entry | null>((resolve, reject) => {
      const waiters = this.pending.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else this.pending.set(key, [{ resolve, reject }]);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight || this.pending.size === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.inFlight < this.maxInFlight && this.pending.size > 0) {
      const batch = new Map<string, Waiter[]>();
      for (const [key, waiters] of this.pending) {
        if (batch.size >= this.maxKeys) break;
        batch.set(key, waiters);
      }
      for (const key of batch.keys()) this.pending.delete(key);
      this.inFlight++;
      this.stats.batches++;
      this.stats.keys += batch.size;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.schedule();
      });
    }
  }

  private async send(batch: Map<string, Waiter[]>): Promise<void> {
    const settle = (waiters: Waiter[], result: { entry: Entry | null } | { err: unknown }) => {
      for (const w of waiters) {
        if ('err' in result) w.reject(result.err);
        else w.resolve(result.entry);
      }
    };
    const readAlone = async (key: string, waiters: Waiter[]) => {
      try {
        settle(waiters, { entry: await this.options.readOne(key) });
      } catch (err) {
        settle(waiters, { err });
      }
    };
    if (batch.size === 1) {
      const [[key, waiters]] = [...batch] as [[string, Waiter[]]];
      return readAlone(key, waiters);
    }
    try {
      const entries = await this.options.readMany([...batch.keys()]);
      for (const [key, waiters] of batch) settle(waiters, { entry: entries.get(key) ?? null });
    } catch (err) {
      if (!this.options.retryAlone(err)) {
        for (const waiters of batch.values()) settle(waiters, { err });
        return;
      }
      // One key refused must not fail the others: each on its own, for its own answer.
      await Promise.all([...batch].map(([key, waiters]) => readAlone(key, waiters)));
    }
  }
}
