// The KV contract against a real etcd (VOLPLUGIN_TEST_ETCD, set by the integration global setup),
// plus what only EtcdKV does: deadlines and StateUnavailableError, real TTL expiry.
import { createServer } from 'node:net';
import { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateUnavailableError, type WatchEvent } from '../../src/state/kv.js';
import { kvContract, waitFor } from '../unit/state-kv.contract.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const endpoint = process.env.VOLPLUGIN_TEST_ETCD;
if (!endpoint) {
  throw new Error(
    'VOLPLUGIN_TEST_ETCD is not set: the integration tests need a running etcd (e.g. http://127.0.0.1:2379); ' +
      'the integration global setup starts one, or start etcd by hand and export the variable',
  );
}
const endpoints = endpoint.split(',');

// A plain etcd3 client playing "the rest of the world": it revokes leases from outside.
const outside = new Etcd3({ hosts: endpoints });
afterAll(() => outside.close());

// Generous deadlines and TTLs: the test machine is shared and etcd's fsyncs can stall for seconds
// under load. The deadline behaviour itself is tested below with short ones.
kvContract('EtcdKV', () => ({
  open: async () => new EtcdKV({ endpoints, timeoutMs: 15_000 }),
  expire: async (_kv, leaseId) => {
    await outside.leaseClient.leaseRevoke({ ID: BigInt(`0x${leaseId}`).toString(10) });
  },
  crash: async (kv) => kv.close(),
  // etcd 3.4 raises any TTL below its minimum (about 1.5 s) to 2 s; 3 s leaves room for stalls.
  ttlSeconds: 3,
  expiryMs: 8_000,
  noticeMs: 4_000,
}));

describe('EtcdKV specifics', () => {
  it('lists a prefix in pages, in key order, at one revision; and lists answers beyond 4 MiB', { timeout: 60_000 }, async () => {
    const prefix = `/test-${crypto.randomUUID()}/`;
    const kv = new EtcdKV({ endpoints, timeoutMs: 15_000, listPageKeys: 3 });
    try {
      const keys = Array.from({ length: 10 }, (_, i) => `${prefix}k${String(i).padStart(2, '0')}`);
      for (const key of [...keys].reverse()) await kv.put(key, `value of ${key}`);
      await kv.put(`${prefix.slice(0, -1)}0`, 'just past the prefix'); // not ours
      const listed = await kv.list(prefix);
      expect(listed.map((e) => e.key)).toEqual(keys);
      expect(listed.map((e) => e.value)).toEqual(keys.map((k) => `value of ${k}`));

      // Five records of 1 MB: 5 MB in one list, beyond gRPC's default 4 MiB answer (10,000 volume
      // records are 6.5 MB), with the default page size.
      const big = new EtcdKV({ endpoints, timeoutMs: 15_000 });
      try {
        for (let i = 0; i < 5; i++) await big.put(`${prefix}big/${i}`, String(i).repeat(1_000_000));
        const all = await big.list(`${prefix}big/`);
        expect(all.map((e) => e.value.length)).toEqual([1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000]);
      } finally {
        await big.close();
      }
    } finally {
      await outside.delete().prefix(prefix.slice(0, -1));
      await kv.close();
    }
  });

  it('fails with StateUnavailableError naming the endpoint when nothing listens there', { timeout: 15_000 }, async () => {
    // Find a closed port: bind one, then free it.
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 1));
      });
    });
    const kv = new EtcdKV({ endpoints: [`http://127.0.0.1:${port}`], timeoutMs: 2_000 });
    try {
      for (const call of [() => kv.get('/x'), () => kv.put('/x', 'y'), () => kv.create('/x', 'y'), () => kv.ping(1_000), () => kv.lease(2)]) {
        const started = Date.now();
        const err = await call().then(
          () => null,
          (e: unknown) => e,
        );
        expect(Date.now() - started).toBeLessThan(2_500);
        expect(err).toBeInstanceOf(StateUnavailableError);
        expect((err as StateUnavailableError).message).toContain(`127.0.0.1:${port}`);
        expect((err as StateUnavailableError).message).toMatch(/check that etcd is running/);
      }
    } finally {
      await kv.close();
    }
  });

  it('times out within the deadline against an endpoint that accepts but never answers', { timeout: 15_000 }, async () => {
    const sockets: import('node:net').Socket[] = [];
    const server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const kv = new EtcdKV({ endpoints: [`http://127.0.0.1:${port}`], timeoutMs: 1_000 });
    try {
      const started = Date.now();
      await expect(kv.get('/x')).rejects.toBeInstanceOf(StateUnavailableError);
      expect(Date.now() - started).toBeLessThan(2_000);
      await expect(kv.ping(500)).rejects.toThrow(/within 500 ms/);
    } finally {
      await kv.close();
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });

  it('a lease left alone expires in etcd after its TTL (a process that died)', { timeout: 30_000 }, async () => {
    const host = new EtcdKV({ endpoints, timeoutMs: 15_000 });
    const observer = new EtcdKV({ endpoints, timeoutMs: 15_000 });
    try {
      const key = `/test-${crypto.randomUUID()}/host`;
      const lease = await host.lease(3);
      const lost: string[] = [];
      lease.onLost((err) => lost.push(err.message));
      await host.put(key, 'alive', { lease });
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      expect(lost).toEqual([]);
      expect((await observer.get(key))?.value).toBe('alive'); // kept alive beyond the TTL
      await host.close(); // stops keep-alive without revoking
      const closedAt = Date.now();
      await waitFor('the key to expire', async () => (await observer.get(key)) === null, 8_000);
      expect(Date.now() - closedAt).toBeGreaterThan(2_000);
    } finally {
      await host.close();
      await observer.close();
    }
  });
  it('a watch etcd cancels (its revision compacted while cut off) is reported dead, and the process goes on', { timeout: 60_000 }, async () => {
    const prefix = `/test-${crypto.randomUUID()}/`;
    const proxy = await startTcpProxy(endpoints[0]!);
    const kv = new EtcdKV({ endpoints: [proxy.url], timeoutMs: 15_000 });
    try {
      const dead: Error[] = [];
      const old = await kv.watch(`${prefix}old/`, () => undefined, { onDead: (err) => dead.push(err) });
      proxy.cut();
      // A watch asked for while cut off starts from the revision it is set up at: etcd keeps it, and
      // with it the stream that etcd cancels the old one on.
      const laterEvents: WatchEvent[] = [];
      const later = kv.watch(`${prefix}later/`, (e) => laterEvents.push(e), { onDead: (err) => dead.push(err) });
      await outside.put(`${prefix}old/k`).value('missed');
      const { header } = await outside.put(`${prefix}compact`).value('x');
      await outside.kv.compact({ revision: header.revision });
      proxy.restore();
      await waitFor('the old watch to be reported dead', () => dead.length > 0, 30_000);
      expect(dead.map((e) => e.message)).toEqual([expect.stringMatching(/canceled/i)]);
      // This process is still alive (etcd3 used to throw from the stream when the dead watch was
      // cancelled as well) and the watch set up while cut off delivers.
      const liveWatch = await later;
      await waitFor('the other watch to deliver', async () => {
        await outside.put(`${prefix}later/k`).value(String(Date.now()));
        return laterEvents.length > 0;
      }, 30_000);
      expect(dead).toHaveLength(1);
      await old.close();
      await liveWatch.close();
    } finally {
      await kv.close();
      await proxy.close();
    }
  });
});
