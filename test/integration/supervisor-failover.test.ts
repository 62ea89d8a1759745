// Several volsupervisor processes (from dist/) on the real cluster and etcd: one leads; killing it
// (SIGKILL) hands over within the election TTL without a repeated or a skipped slot; SIGTERM hands
// over at once and exits 0; SIGUSR1 logs the status.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKV } from '../../src/state/etcd.js';
import { StateStore } from '../../src/state/store.js';
import type { VolumeRecord } from '../../src/state/records.js';
import { openStorage } from '../../src/storage/index.js';
import type { Storage } from '../../src/storage/types.js';
import { parseSnapshotName } from '../../src/snapshots/names.js';
import { repoRoot } from '../helpers/sandbox.js';

const backend = existsSync(path.join(repoRoot, 'build/Release/volplugin_rbd.node')) ? 'native' : 'cli';
const bin = path.join(repoRoot, 'dist/supervisor/main.js');
const pool = process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';
const MB = 1024 * 1024;
const TTL = 2;
const FREQUENCY_MS = 3000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Proc {
  child: ChildProcess;
  out: string;
  exit: Promise<number | null>;
}

describe(`volsupervisor fail-over between processes (${backend} backend)`, () => {
  const id = randomUUID().slice(0, 8);
  const prefix = `/it-failover-${id}`;
  const tenant = `fo${id}`;
  const image = `${tenant}.v`;
  let kv: EtcdKV;
  let store: StateStore;
  let storage: Storage;
  const procs: Proc[] = [];

  function start(): Proc {
    const child = spawn(
      process.execPath,
      [
        bin,
        '--etcd', process.env.VOLPLUGIN_TEST_ETCD!,
        '--prefix', prefix,
        '--ceph-conf', process.env.CEPH_CONF!,
        '--ceph-id', 'admin',
        '--backend', backend,
        '--election-ttl', String(TTL),
        '--tick-ms', '200',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const proc: Proc = { child, out: '', exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
    child.stdout!.on('data', (d: Buffer) => (proc.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (proc.out += d.toString()));
    procs.push(proc);
    return proc;
  }

  async function leaderPid(): Promise<number | null> {
    const entry = await kv.get(`${store.keys.supervisorElection}/leader`);
    return entry ? (JSON.parse(entry.value) as { pid: number }).pid : null;
  }

  async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await fn();
      if (value) return value;
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${procs.map((p) => `--- pid ${p.child.pid}\n${p.out.slice(-3000)}`).join('\n')}`);
      }
      await sleep(50);
    }
  }

  async function supervisorSnapshots(): Promise<string[]> {
    return (await storage.listSnapshots(pool, image)).map((s) => s.name).filter((n) => n.startsWith('vs-')).sort();
  }

  beforeAll(async () => {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: build it first (pnpm build:ts, or make build)`);
    kv = new EtcdKV({ endpoints: [process.env.VOLPLUGIN_TEST_ETCD!] });
    store = new StateStore(kv, { prefix, owner: `it-${id}` });
    storage = await openStorage(backend, { confPath: process.env.CEPH_CONF });
    const runtime = { snapshots: true, snapshot: { frequency: '3s', keep: 50 }, rateLimit: { writeIops: 0, readIops: 0, writeBps: 0, readBps: 0 } };
    const record: VolumeRecord = {
      tenant,
      volume: 'v',
      pool,
      image,
      options: { pool, sizeBytes: 8 * MB, filesystem: 'ext4', ephemeral: false, ...runtime },
      runtime,
      policyRevision: 1,
      formatCommand: 'mkfs.ext4 -q %',
      createdAt: new Date().toISOString(),
    };
    await storage.createImage(pool, image, { size: record.options.sizeBytes });
    expect(await store.createVolume(record)).toBe(true);
  });

  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exit));
    for (const s of await storage.listSnapshots(pool, image).catch(() => [])) await storage.removeSnapshot(pool, image, s.name).catch(() => undefined);
    await storage.removeImage(pool, image).catch(() => undefined);
    for (const entry of await kv.list(`${prefix}/`)) await kv.delete(entry.key);
    await storage.close();
    await kv.close();
  });

  it('hands over on SIGKILL within the TTL and on SIGTERM at once, never repeating or skipping a slot', async () => {
    const [a, b, c] = [start(), start(), start()];
    const first = await waitFor('a leader', leaderPid, 20_000);
    const leader = procs.find((p) => p.child.pid === first)!;
    await waitFor('two scheduled snapshots', async () => (await supervisorSnapshots()).length >= 2, 20_000);

    // SIGKILL: the lease expires after the TTL and another takes over.
    leader.child.kill('SIGKILL');
    const killedAt = Date.now();
    const second = await waitFor('a new leader', async () => {
      const pid = await leaderPid();
      return pid !== null && pid !== first ? pid : null;
    }, 10_000);
    const handOver = Date.now() - killedAt;
    expect(handOver).toBeLessThanOrEqual(TTL * 1000 + 1500);
    const count = (await supervisorSnapshots()).length;
    await waitFor('the new leader to take snapshots', async () => (await supervisorSnapshots()).length >= count + 2, 20_000);

    // SIGUSR1: the leader logs what it does.
    const secondProc = procs.find((p) => p.child.pid === second)!;
    secondProc.child.kill('SIGUSR1');
    await waitFor('a status line', async () => /"msg":"status"/.test(secondProc.out) && /"role":"leader"/.test(secondProc.out), 5000);

    // SIGTERM: resigns at once, the third takes over immediately, the process exits 0.
    secondProc.child.kill('SIGTERM');
    const termAt = Date.now();
    const third = await waitFor('the third leader', async () => {
      const pid = await leaderPid();
      return pid !== null && pid !== first && pid !== second ? pid : null;
    }, 10_000);
    expect(Date.now() - termAt).toBeLessThan(1500);
    expect(await Promise.race([secondProc.exit, sleep(12_000).then(() => 'still running')])).toBe(0);
    const count3 = (await supervisorSnapshots()).length;
    await waitFor('the third leader to take a snapshot', async () => (await supervisorSnapshots()).length >= count3 + 1, 10_000);
    expect([a, b, c].map((p) => p.child.pid)).toContain(third);

    // Every 3 s slot from the first to the last has exactly one snapshot.
    const times = (await supervisorSnapshots()).map((n) => parseSnapshotName(n)!.time.getTime());
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!, `slot gap at ${i}`).toBe(FREQUENCY_MS);
  });
});
