// Online resize on the real cluster: a real volmaster and volplugin (rbd-fuse + loop), real etcd and
// Ceph. A mounted xfs (and ext4 where volplugin has CAP_SYS_RESOURCE) volume grows while its files
// stay open and df (statfs) shows the new size; a volume grown while unmounted, while its holder did
// not answer or could not grow it online, grows at its next mount or when the same resize is asked
// again (never lost); bad input changes nothing; the
// operation shows its progress and the audit trail names who did it; volcli audit --follow prints
// a change as it completes.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { open, readFile, statfs } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../src/api/errors.js';
import { mayResizeExtOnline } from '../../src/mapper/grow.js';
import { repoRoot } from '../helpers/sandbox.js';
import { cleanUpRun, rbd } from '../helpers/plugin-ceph.js';
import { createVolume, startMaster, TestPlugin, testPolicy, testRun, type TestMaster } from '../helpers/plugin-harness.js';

const { run, tenant, root, pool } = testRun('rz', 'resize');
const MiB = 1 << 20;

let master: TestMaster;
let a: TestPlugin;
/** Whether volplugin may grow a mounted ext4 here (CAP_SYS_RESOURCE; volplugin runs as this user). */
let extOnline: boolean;

/** The size of the filesystem at `dir` as df shows it. */
async function dfBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.blocks * s.bsize;
}

async function imageBytes(image: string): Promise<number> {
  return (JSON.parse(await rbd('info', '--format', 'json', `${pool}/${image}`)) as { size: number }).size;
}

async function mounted(name: string, id: string): Promise<string> {
  const answer = await a.mount(name, id);
  expect(answer.Err, answer.Err).toBe('');
  return answer.Mountpoint!;
}

beforeAll(async () => {
  // A short wait for the holder: the paused-holder case below waits it out.
  master = await startMaster(root, `/volplugin-test-${run}`, { extraArgs: ['--resize-host-seconds', '3'] });
  await master.api.uploadTenant(tenant, {
    ...testPolicy({ size: '32MB', filesystems: { ext4: 'mkfs.ext4 -q -m0 %', xfs: 'mkfs.xfs -q %' } }),
    limits: { size: '1GB' },
  });
  a = await TestPlugin.start({ label: 'hosta', root, master });
  extOnline = await mayResizeExtOnline();
});

afterAll(async () => {
  a?.proc.signal('SIGCONT');
  await a?.stop();
  await master?.stop();
  expect(await cleanUpRun({ tenant, root, pool })).toEqual([]);
});

describe('online resize', () => {
  it('a mounted ext4 volume grows while a file stays open in it (online where volplugin may, else at the next mount); the operation and the audit say so', async () => {
    const name = `${tenant}/ext`;
    await createVolume(a, name);
    let dir = await mounted(name, 'c1');
    const before = await dfBytes(dir);
    expect(before).toBeLessThan(32 * MiB);
    const file = await open(path.join(dir, 'kept-open'), 'w');
    let op;
    try {
      await file.write('written before the resize\n');
      op = await master.api.resizeVolume(tenant, 'ext', '96MB');
      expect(op).toMatchObject({ kind: 'resize', state: 'done', by: 'bootstrap', result: { sizeBytes: 96 * MiB, previousBytes: 32 * MiB, host: 'hosta' } });
      expect(await imageBytes(`${tenant}.ext`)).toBe(96 * MiB);
      expect((await master.api.getVolume(tenant, 'ext')).options.sizeBytes).toBe(96 * MiB);
      if (extOnline) {
        expect(op.result).toMatchObject({ filesystem: 'grown', hostResult: { type: 'ext4', deviceBytes: 96 * MiB } });
        expect(await dfBytes(dir)).toBeGreaterThan(before + 55 * MiB);
      } else {
        // This machine (a container without CAP_SYS_RESOURCE) cannot grow a mounted ext4: the growth waits for the next mount.
        expect(op.result).toMatchObject({ filesystem: 'pending', detail: expect.stringMatching(/CAP_SYS_RESOURCE/) });
        expect(await dfBytes(dir)).toBe(before);
      }
      // The open file goes on working, and what was written is there.
      await file.write('written after the resize\n');
      await file.sync();
    } finally {
      await file.close();
      expect((await a.unmount(name, 'c1')).Err).toBe('');
    }
    dir = await mounted(name, 'c2');
    try {
      expect(await dfBytes(dir)).toBeGreaterThan(before + 55 * MiB); // 64 MiB more, less ext4's inode tables and journal
      expect(await readFile(path.join(dir, 'kept-open'), 'utf8')).toBe('written before the resize\nwritten after the resize\n');
    } finally {
      expect((await a.unmount(name, 'c2')).Err).toBe('');
    }
    expect(await master.api.getOperation(op.id)).toMatchObject({ state: 'done', message: expect.stringMatching(extOnline ? /grew with it \(df shows it now\)/ : /grows later/) });
    const audit = await master.api.listAudit({ tenant });
    expect(audit.find((e) => e.operation === op.id)).toMatchObject({ method: 'POST', route: '/v1/volumes/:tenant/:volume/resize', outcome: 'ok', status: 200, who: { name: 'bootstrap' }, body: { size: '96MB' } });
  });

  it('a mounted xfs volume grows online, under a file kept open; df shows it at once', async () => {
    const name = `${tenant}/xfs`;
    await createVolume(a, name, { size: '320MB', filesystem: 'xfs' });
    const dir = await mounted(name, 'c1');
    try {
      const file = await open(path.join(dir, 'kept-open'), 'w');
      await file.write('before\n');
      const before = await dfBytes(dir);
      const op = await master.api.resizeVolume(tenant, 'xfs', '400MB');
      expect(op.result).toMatchObject({ filesystem: 'grown', host: 'hosta', hostResult: { type: 'xfs', deviceBytes: 400 * MiB } });
      expect(await dfBytes(dir)).toBeGreaterThan(before + 70 * MiB);
      await file.write('after\n');
      await file.close();
      expect(await readFile(path.join(dir, 'kept-open'), 'utf8')).toBe('before\nafter\n');
    } finally {
      expect((await a.unmount(name, 'c1')).Err).toBe('');
    }
  });

  it('bad input changes nothing: a smaller size, an unknown unit, beyond limits.size, a volume that does not exist', async () => {
    const name = `${tenant}/bad`;
    await createVolume(a, name);
    const refused = async (size: string, volume = 'bad') => (await master.api.resizeVolume(tenant, volume, size).catch((e: unknown) => e)) as ApiError;
    expect(await refused('16MB')).toMatchObject({ code: 'SHRINK_REFUSED', status: 422, field: 'size', message: expect.stringMatching(/volumes only grow/) });
    expect(await refused('64XB')).toMatchObject({ status: 400, field: 'size' });
    expect(await refused('2GB')).toMatchObject({ code: 'LIMIT_EXCEEDED', status: 422, field: 'size' });
    expect(await refused('64MB', 'nope')).toMatchObject({ code: 'VOLUME_NOT_FOUND', status: 404 });
    expect((await master.api.getVolume(tenant, 'bad')).options.sizeBytes).toBe(32 * MiB);
    expect(await imageBytes(`${tenant}.bad`)).toBe(32 * MiB);
    expect((await master.api.listOperations()).filter((o) => o.volume === 'bad')).toEqual([]);
  });

  it('a volume grown while unmounted grows at its next mount', async () => {
    const name = `${tenant}/later`;
    await createVolume(a, name);
    await mounted(name, 'c1');
    expect((await a.unmount(name, 'c1')).Err).toBe('');
    const op = await master.api.resizeVolume(tenant, 'later', '80MB');
    expect(op.result).toMatchObject({ filesystem: 'not-mounted' });
    const dir = await mounted(name, 'c2');
    try {
      expect(await dfBytes(dir)).toBeGreaterThan(64 * MiB);
      expect(await a.logs()).toMatch(/filesystem grown to its device at mount/);
    } finally {
      expect((await a.unmount(name, 'c2')).Err).toBe('');
    }
  });

  it('a holder that does not answer leaves the growth pending; the same resize again finishes it (never lost)', async () => {
    const name = `${tenant}/paused`;
    await createVolume(a, name, { size: '320MB', filesystem: 'xfs' });
    const dir = await mounted(name, 'c1');
    try {
      const before = await dfBytes(dir);
      a.proc.signal('SIGSTOP');
      let op;
      try {
        op = await master.api.resizeVolume(tenant, 'paused', '400MB');
      } finally {
        a.proc.signal('SIGCONT');
      }
      expect(op.result).toMatchObject({ filesystem: 'pending', host: 'hosta', detail: expect.stringMatching(/did not answer within 3 s/) });
      expect(await imageBytes(`${tenant}.paused`)).toBe(400 * MiB);
      expect(await dfBytes(dir)).toBe(before);
      const again = await master.api.resizeVolume(tenant, 'paused', '400MB');
      expect(again.result).toMatchObject({ filesystem: 'grown' });
      expect(await dfBytes(dir)).toBeGreaterThan(before + 70 * MiB);
    } finally {
      expect((await a.unmount(name, 'c1')).Err).toBe('');
    }
  });

  it('volcli audit --follow --json prints a change as it completes', async () => {
    const volcli = spawn(process.execPath, [path.join(repoRoot, 'dist/cli/main.js'), '--master', master.address, '--token-file', master.tokenFile, '--json', 'audit', '--follow', '--limit', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const lines = createInterface({ input: volcli.stdout });
      const seen: Array<{ method: string; path: string; outcome: string }> = [];
      const found = new Promise<void>((resolve) =>
        lines.on('line', (line) => {
          seen.push(JSON.parse(line) as (typeof seen)[number]);
          if (seen.some((e) => e.path === `/v1/volumes/${tenant}/followed`)) resolve();
        }),
      );
      // The first line is the newest entry so far: volcli is following from then on.
      await once(lines, 'line');
      await master.api.createVolume(tenant, 'followed');
      await found;
      expect(seen.find((e) => e.path === `/v1/volumes/${tenant}/followed`)).toMatchObject({ method: 'PUT', outcome: 'ok' });
    } finally {
      volcli.kill();
    }
  });
});
