// The KV contract against MemoryKV, plus what only the memory twin has (test helpers).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryKV } from '../../src/state/memory.js';
import { StateUnavailableError } from '../../src/state/kv.js';
import { volumeRecord } from '../helpers/fixtures.js';
import { StateStore } from '../../src/state/store.js';
import { kvContract } from './state-kv.contract.js';
import { holderDeadlineMs, leaseMarginMs } from '../../src/state/etcd-lease.js';

let root = new MemoryKV();

kvContract('MemoryKV', () => ({
  open: async () => root.client(),
  expire: async (kv, leaseId) => (kv as MemoryKV).expireLease(leaseId),
  crash: async (kv) => (kv as MemoryKV).crash(),
  ttlSeconds: 1,
  expiryMs: 200,
  noticeMs: 200,
}));

describe('the lease deadline (issue 12, rule 7; the numbers in the README)', () => {
  it('the holder gives a lease up TTL/4 (at most 5 s) before it can expire at etcd, counted from the keep-alive it sent', () => {
    expect([leaseMarginMs(30), holderDeadlineMs(30)]).toEqual([5_000, 25_000]);
    expect([leaseMarginMs(4), holderDeadlineMs(4)]).toEqual([1_000, 3_000]);
    expect([leaseMarginMs(60), holderDeadlineMs(60)]).toEqual([5_000, 55_000]);
    // Never before the next keep-alive (every TTL/3) could have been answered.
    for (const ttl of [1, 2, 3, 4, 10, 30, 60]) expect(holderDeadlineMs(ttl)).toBeGreaterThan((ttl * 1000) / 3);
  });
});

describe('MemoryKV helpers', () => {
  afterEach(() => {
    vi.useRealTimers();
    root = new MemoryKV();
  });

  it('a lease whose keep-alive stops expires after its TTL and fires onLost', async () => {
    vi.useFakeTimers();
    const kv = root.client();
    const lease = await kv.lease(5);
    await kv.put('/k', 'v', { lease });
    const lost: Error[] = [];
    lease.onLost((err) => lost.push(err));
    kv.stopKeepAlive(lease.id);
    await vi.advanceTimersByTimeAsync(4_999);
    expect((await kv.get('/k'))?.value).toBe('v');
    await vi.advanceTimersByTimeAsync(1);
    expect(await kv.get('/k')).toBeNull();
    expect(lease.lost).toBe(true);
    expect(lost).toHaveLength(1);
  });

  it('close lets the client\'s leases expire after their TTL', async () => {
    vi.useFakeTimers();
    const host = root.client();
    const other = root.client();
    const lease = await host.lease(3);
    await host.put('/h', 'v', { lease });
    await host.close();
    await expect(host.get('/h')).rejects.toThrow(/closed/);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(await other.get('/h')).toBeNull();
  });

  it('setUnavailable makes every call fail with StateUnavailableError, and StateStore passes it on', async () => {
    const kv = root.client();
    const store = new StateStore(kv);
    kv.setUnavailable(true);
    await expect(kv.get('/x')).rejects.toBeInstanceOf(StateUnavailableError);
    await expect(kv.ping()).rejects.toBeInstanceOf(StateUnavailableError);
    await expect(store.listVolumes()).rejects.toMatchObject({ code: 'STATE_UNAVAILABLE' });
    kv.setUnavailable(false);
    await expect(kv.ping()).resolves.toBeUndefined();
  });

  it('a compare-and-swap that loses every race gives up after 20 attempts, naming what it did', async () => {
    const kv = root.client();
    const store = new StateStore(kv);
    const record = volumeRecord('t', 'v');
    await kv.put(store.keys.volume('t', 'v'), JSON.stringify(record));
    let attempts = 0;
    const update = store.updateVolume('t', 'v', (current) => {
      attempts++;
      // Another writer changes the record between this read and the write (MemoryKV writes at once).
      void kv.put(store.keys.volume('t', 'v'), JSON.stringify({ ...record, image: String(attempts) }));
      return current;
    });
    await expect(update).rejects.toThrow('update of volume t/v: gave up after too many concurrent modifications; try again');
    expect(attempts).toBe(20);
  });

  it('leaseIds lists only the leases of that client', async () => {
    const a = root.client();
    const b = root.client();
    const la = await a.lease(1);
    await b.lease(1);
    expect(a.leaseIds()).toEqual([la.id]);
    await la.revoke();
    expect(a.leaseIds()).toEqual([]);
  });
});
