// One live process per host id (cluster/identity.ts) and what a reboot forgets (mounts/boot.ts),
// on MemoryKV and a temporary state dir.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import { HostIdentityClaim, IdentityConflictError } from '../../src/plugin/cluster/identity.js';
import { HostLease } from '../../src/plugin/cluster/lease.js';
import { forgetOtherBoot, readBootId } from '../../src/plugin/mounts/boot.js';
import { LocalState, type LocalVolume } from '../../src/plugin/mounts/local-state.js';

const host = { id: '2e0c5d1a-0000-4000-8000-000000000001', label: 'hosta' };
let kv: MemoryKV;
let dir: string;

beforeEach(async () => {
  kv = new MemoryKV();
  dir = await mkdtemp(path.join(tmpdir(), 'volplugin-identity-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A volplugin process's claim: `pid` on machine `hostname` in boot `bootId`; `running` are the pids alive there. */
function process_(pid: number, bootId: string, hostname = 'machine1', running: number[] = [], waitMs = 1_500) {
  const client = kv.client();
  const store = new StateStore(client);
  const claim = new HostIdentityClaim({ store, host, bootId, stateDir: '/var/lib/volplugin', pid, hostname, isRunning: async (p) => running.includes(p) });
  const lease = new HostLease(client, 1, undefined, (l, first) => claim.claim(l, first ? waitMs : 0));
  return { client, store, lease };
}

describe('one live process per host id (issue 12, rule 5)', () => {
  it('a second live process with the same host id waits one TTL, then refuses to start, saying how to get a new identity', async () => {
    const first = process_(100, 'boot-1', 'machine1', [100]);
    await first.lease.get();
    const clone = process_(200, 'boot-9', 'machine2', [200]);
    const err = await clone.lease.get().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityConflictError);
    expect((err as Error).message).toMatch(
      /^another volplugin runs with this host's id 2e0c5d1a-.*: pid 100 on machine1 \(host label hosta, boot id boot-1, .*move \/var\/lib\/volplugin\/host-id and \/var\/lib\/volplugin\/mounts.json aside/,
    );
    expect(clone.client.leaseIds()).toEqual([]); // its lease was revoked: nothing of it stays
  });

  it('a second live process on the same machine and boot (two volplugins on one state dir) refuses too', async () => {
    const first = process_(100, 'boot-1', 'machine1', [100, 200]);
    await first.lease.get();
    const second = process_(200, 'boot-1', 'machine1', [100, 200], 500);
    await expect(second.lease.get()).rejects.toBeInstanceOf(IdentityConflictError);
  });

  it("takes over at once from its own dead predecessor (same boot, same machine, that pid gone)", async () => {
    const dead = process_(100, 'boot-1');
    await dead.lease.get();
    // No waiting allowed: the old record must be taken over, not waited out.
    const next = process_(101, 'boot-1', 'machine1', [101], 0);
    await next.lease.get();
    expect(JSON.parse((await kv.get('/volplugin/host-alive/' + host.id))!.value)).toMatchObject({ pid: 101 });
  });

  it('a process of an earlier boot is waited for until its lease lapses, then replaced', async () => {
    const before = process_(100, 'boot-1');
    const old = await before.lease.get();
    kv.stopKeepAlive(old.id); // the machine rebooted: nobody renews it
    const after = process_(100, 'boot-2', 'machine1', [100]);
    await after.lease.get();
    expect(JSON.parse((await kv.get('/volplugin/host-alive/' + host.id))!.value)).toMatchObject({ bootId: 'boot-2' });
  });

  it('a later lease of the same process claims the id again', async () => {
    const p = process_(100, 'boot-1', 'machine1', [100]);
    const first = await p.lease.get();
    kv.expireLease(first.id);
    const second = await p.lease.get();
    expect(second.id).not.toBe(first.id);
    expect(await kv.get('/volplugin/host-alive/' + host.id)).not.toBeNull();
  });
});

describe('reboots (issue 12, rule 4)', () => {
  const entry = (volume: string): LocalVolume => ({
    tenant: 't',
    volume,
    pool: 'rbd',
    image: `t.${volume}`,
    mapping: { tenant: 't', volume, pool: 'rbd', image: `t.${volume}`, kind: 'fuse', device: '/dev/loop3', clientAddress: '127.0.0.1:0/1' },
    mountpoint: `/mnt/t/${volume}`,
    refs: ['id1'],
    since: 'then',
    appliedLimits: null,
    lost: null,
    lockGeneration: 1,
    idleUntil: null,
  });

  it('reads the boot id from the given file', async () => {
    await writeFile(path.join(dir, 'boot'), 'abc-123\n');
    expect(await readBootId(path.join(dir, 'boot'))).toBe('abc-123');
    await expect(readBootId(path.join(dir, 'missing'))).rejects.toThrow(/ENOENT/);
  });

  it('a table of another boot is forgotten (and saved so); one of this boot is kept', async () => {
    const local = LocalState.inDir(dir);
    local.bootId = 'boot-1';
    local.set(entry('a'));
    await local.save();
    const same = LocalState.inDir(dir);
    await same.load();
    expect(await forgetOtherBoot(same, 'boot-1')).toEqual([]);
    expect(same.all()).toHaveLength(1);
    const rebooted = LocalState.inDir(dir);
    await rebooted.load();
    expect((await forgetOtherBoot(rebooted, 'boot-2')).map((e) => e.volume)).toEqual(['a']);
    const reread = LocalState.inDir(dir);
    await reread.load();
    expect(reread.all()).toEqual([]);
    expect(reread.bootId).toBe('boot-2');
  });

  it('a table from before boot ids were kept is kept, and gets this boot id', async () => {
    await writeFile(path.join(dir, 'mounts.json'), JSON.stringify({ version: 1, volumes: [entry('a')] }));
    const local = LocalState.inDir(dir);
    await local.load();
    expect(await forgetOtherBoot(local, 'boot-7')).toEqual([]);
    expect(local.all()).toHaveLength(1);
    expect(local.bootId).toBe('boot-7');
  });
});
