import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import { Supervisor } from '../../src/supervisor/supervisor.js';
import { memoryStorage } from '../../src/storage/memory.js';

const log = pino({ level: 'silent' });

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - started;
}

describe('Supervisor leader election', () => {
  const running: Supervisor[] = [];
  const root = new MemoryKV();

  function supervisor(kv: MemoryKV = root.client()): Supervisor {
    const s = new Supervisor({
      store: new StateStore(kv, { owner: `sup-${running.length}` }),
      storage: memoryStorage(),
      logger: log,
      electionTtlSeconds: 2,
      scheduler: { tickMs: 20 },
      stopTimeoutMs: 1000,
    });
    running.push(s);
    void s.start();
    return s;
  }

  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.stop()));
  });

  it('elects exactly one leader and names it to the others', async () => {
    const a = supervisor();
    await until('a leads', () => a.isLeader);
    const b = supervisor();
    await new Promise((r) => setTimeout(r, 100));
    expect(b.isLeader).toBe(false);
    const status = await b.status();
    expect(status.role).toBe('candidate');
    expect(status.leader).toMatchObject({ id: a.identity.id, pid: process.pid });
    expect((await a.status()).role).toBe('leader');
  });

  it('hands over when the leader dies (its lease expires)', async () => {
    const kvA = root.client();
    const a = supervisor(kvA);
    await until('a leads', () => a.isLeader);
    const b = supervisor();
    await new Promise((r) => setTimeout(r, 50));
    kvA.crash();
    await until('b leads', () => b.isLeader);
    await until('a stops leading', () => !a.isLeader);
  });

  it('resigns at once on stop, and another takes over immediately', async () => {
    const a = supervisor();
    await until('a leads', () => a.isLeader);
    const b = supervisor();
    await new Promise((r) => setTimeout(r, 50));
    const stopped = a.stop();
    const ms = await until('b leads', () => b.isLeader, 1000);
    await stopped;
    expect(ms).toBeLessThan(1000);
    expect((await a.status()).role).toBe('stopped');
  });

  it('campaigns again after a failed campaign (etcd unreachable) once etcd answers', async () => {
    const away = new MemoryKV();
    away.setUnavailable(true);
    const a = supervisor(away);
    await new Promise((r) => setTimeout(r, 100));
    expect(a.isLeader).toBe(false);
    away.setUnavailable(false);
    await until('a leads', () => a.isLeader, 3000);
  });

  it('stop() does not wait for the pause between failed campaigns', async () => {
    const away = new MemoryKV();
    away.setUnavailable(true);
    const a = supervisor(away);
    await new Promise((r) => setTimeout(r, 100)); // the first campaign failed; the next is 500 ms later
    const started = Date.now();
    await a.stop();
    expect(Date.now() - started).toBeLessThan(300);
    expect((await a.status()).role).toBe('stopped');
  });

  it('campaigns again after losing leadership while etcd was away', async () => {
    const kvA = root.client();
    const a = supervisor(kvA);
    await until('a leads', () => a.isLeader);
    // Someone deletes the leader key (an operator, or etcd losing the lease): a stops and campaigns again.
    await root.delete(`${new StateStore(root).keys.supervisorElection}/leader`);
    await until('a stops leading', () => !a.isLeader, 1000);
    await until('a leads again', () => a.isLeader, 5000);
  });
});
