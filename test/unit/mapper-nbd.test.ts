// The rbd-nbd mapper with a fake rbd-nbd (no machine here has the nbd module): it learns its Ceph
// client from the image's watchers and refuses a mapping without one, checks that a device still
// maps its image, and cuts I/O by killing the mapping's rbd-nbd.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunOptions, RunResult } from '../../src/mapper/exec.js';
import { NbdMapper } from '../../src/mapper/nbd.js';
import type { Watcher } from '../../src/storage/types.js';

/** rbd-nbd as far as the mapper sees it: map adds a device (and, unless told not to, a watcher). */
class FakeRbdNbd {
  mapped: Array<{ pid: number; pool: string; image: string; device: string }> = [];
  watchers: Watcher[] = [];
  calls: string[] = [];
  addWatcher = true;
  killed: Array<[number, string]> = [];

  run = async (file: string, args: readonly string[], _options?: RunOptions): Promise<RunResult> => {
    this.calls.push([file, ...args].join(' '));
    const verb = args.includes('map') ? 'map' : args[0];
    if (verb === 'map') {
      const [pool, image] = args.at(-1)!.split('/') as [string, string];
      const n = this.mapped.length;
      this.mapped.push({ pid: 5000 + n, pool, image, device: `/dev/nbd${n}` });
      if (this.addWatcher) this.watchers.push({ address: `10.0.0.1:0/${7000 + n}`, clientId: n, cookie: n });
      return { stdout: `/dev/nbd${n}\n`, stderr: '', exitCode: 0 };
    }
    if (verb === 'unmap') {
      this.mapped = this.mapped.filter((m) => m.device !== args[1]);
      return { stdout: '', stderr: '', exitCode: 0 };
    }
    if (verb === 'list-mapped') return { stdout: JSON.stringify(this.mapped.map((m) => ({ ...m, snap: '-' }))), stderr: '', exitCode: 0 };
    throw new Error(`unexpected rbd-nbd ${args.join(' ')}`);
  };
}

describe('NbdMapper with a fake rbd-nbd', () => {
  let dir: string;
  let nbd: FakeRbdNbd;
  let mapper: NbdMapper;
  const target = { tenant: 't1', volume: 'v1', pool: 'rbd', image: 't1.v1' };

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'nbd-test-'));
    nbd = new FakeRbdNbd();
    mapper = new NbdMapper({
      root: path.join(dir, 'nbd'),
      ceph: { clientId: 'admin' },
      watchers: { listWatchers: async () => nbd.watchers.map((w) => ({ ...w })) },
      run: nbd.run,
      kill: (pid, signal) => nbd.killed.push([pid, signal]),
      clientSearch: { attempts: 3, everyMs: 1 },
    });
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("maps and learns rbd-nbd's Ceph client from the watcher that appeared", async () => {
    const mapping = await mapper.map(target);
    expect(mapping).toEqual({ ...target, kind: 'nbd', device: '/dev/nbd0', clientAddress: '10.0.0.1:0/7000' });
    expect(await mapper.discover()).toEqual([mapping]);
  });

  it('refuses a mapping whose client cannot be told: unmapped again, no note (issue 12, rule 3)', async () => {
    nbd.addWatcher = false;
    await expect(mapper.map(target)).rejects.toThrow(/nbd: cannot tell which Ceph client opened rbd\/t1\.v1 \(no new watcher appeared\)/);
    expect(nbd.calls.at(-1)).toBe('rbd-nbd unmap /dev/nbd0');
    expect(nbd.mapped).toEqual([]);
    expect(await mapper.discover()).toEqual([]);
  });

  it('stopIo kills the mapping\'s rbd-nbd; a device that now maps another image is neither mapped nor unmapped', async () => {
    const mapping = await mapper.map(target);
    await mapper.stopIo(mapping);
    expect(nbd.killed).toEqual([[5000, 'SIGKILL']]);
    nbd.mapped[0]!.image = 'other';
    expect(await mapper.isMapped(mapping)).toBe(false);
    await mapper.unmap(mapping);
    expect(nbd.calls.filter((c) => c.includes(' unmap '))).toEqual([]);
    expect(nbd.mapped).toHaveLength(1);
  });
});
