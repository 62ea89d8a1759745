// EtcdKV through an etcd outage: a private etcd (own ports and data dir) is killed and restarted.
// Calls must fail fast with StateUnavailableError, a lease must be declared lost within its TTL,
// and everything must work again soon after etcd is back (no client-side circuit breaker stall).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateUnavailableError, type WatchEvent } from '../../src/state/kv.js';
import { waitFor } from '../unit/state-kv.contract.js';
import { freePort } from '../helpers/net.js';


describe('EtcdKV through an etcd outage', () => {
  let dir = '';
  let clientUrl = '';
  let peerUrl = '';
  let etcd: ChildProcess | null = null;
  let log = '';

  async function startEtcd(): Promise<void> {
    const child = spawn(
      'etcd',
      [
        '--name', 'outage',
        '--data-dir', join(dir, 'data'),
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', `outage=${peerUrl}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.on('error', (err) => (log += `spawn failed: ${err.message}\n`));
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    etcd = child;
    const probe = new EtcdKV({ endpoints: [clientUrl], timeoutMs: 500 });
    try {
      await waitFor(
        `private etcd at ${clientUrl} (log: ${log.slice(-500)})`,
        () => probe.ping(500).then(() => true, () => false),
        15_000,
      );
    } finally {
      await probe.close();
    }
  }

  async function killEtcd(): Promise<void> {
    const child = etcd;
    etcd = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'volplugin-etcd-outage-'));
    clientUrl = `http://127.0.0.1:${await freePort()}`;
    peerUrl = `http://127.0.0.1:${await freePort()}`;
    await startEtcd();
  });

  afterAll(async () => {
    await killEtcd();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('fails fast while etcd is down, loses the lease within its TTL, recovers after restart', { timeout: 60_000 }, async () => {
    const kv = new EtcdKV({ endpoints: [clientUrl], timeoutMs: 1_000 });
    try {
      const lease = await kv.lease(2);
      const lost: Error[] = [];
      lease.onLost((err) => lost.push(err));
      await kv.put('/outage/leased', 'x', { lease });
      await kv.put('/outage/plain', 'y');
      const events: WatchEvent[] = [];
      const watch = await kv.watch('/outage/w/', (event) => events.push(event));

      await killEtcd();
      const downAt = Date.now();
      const started = Date.now();
      await expect(kv.get('/outage/plain')).rejects.toBeInstanceOf(StateUnavailableError);
      await expect(kv.ping(500)).rejects.toBeInstanceOf(StateUnavailableError);
      expect(Date.now() - started).toBeLessThan(2_000);

      await waitFor('the lease to be declared lost', () => lost.length > 0, 4_000);
      expect(lease.lost).toBe(true);
      expect(Date.now() - downAt).toBeLessThan(3_500); // within about one TTL, not etcd3's two

      await startEtcd();
      const upAt = Date.now();
      await waitFor('a read to succeed again', () => kv.get('/outage/plain').then((e) => e?.value === 'y', () => false), 10_000);
      expect(Date.now() - upAt).toBeLessThan(3_000);

      // The watch reconnects by itself.
      await waitFor(
        'the watch to deliver after the restart',
        async () => {
          await kv.put('/outage/w/k', String(Date.now()));
          return events.length > 0;
        },
        15_000,
      );
      // Nobody keeps the lost lease alive: etcd drops it (etcd refreshes lease TTLs on restart).
      await waitFor('the leased key to expire', async () => (await kv.get('/outage/leased')) === null, 10_000);
      // A new lease works.
      const again = await kv.lease(2);
      await kv.put('/outage/leased2', 'z', { lease: again });
      await again.revoke();
      await watch.close();
    } finally {
      await kv.close();
    }
  });
});
