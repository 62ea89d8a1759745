// The superblock readers of mapper/grow.ts on filesystems made by the real mkfs tools (in sparse
// files: no device, no root), and the grow commands (argument vectors, never a shell).
import { execFile } from 'node:child_process';
import { mkdtemp, open, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { growArgv, mayResizeExtOnline } from '../../src/mapper/grow.js';
import { filesystemBytes, growableKind } from '../../src/mapper/superblock.js';

const exec = promisify(execFile);
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'volplugin-grow-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Makes a filesystem of `type` in a sparse file of `bytes`; its first 128 KiB (where superblocks are). */
async function headOf(type: string, bytes: number, args: string[]): Promise<Buffer> {
  const file = path.join(dir, `${type}.img`);
  await (await open(file, 'w')).close();
  await truncate(file, bytes);
  await exec(`/usr/sbin/mkfs.${type}`, [...args, file]);
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(128 * 1024);
    await fh.read(head, 0, head.length, 0);
    return head;
  } finally {
    await fh.close();
  }
}

describe('filesystemBytes reads the size from the superblock', () => {
  it('ext4 (and a 64bit one)', async () => {
    expect(filesystemBytes('ext4', await headOf('ext4', 64 << 20, ['-q', '-F', '-b', '4096']))).toBe(64 << 20);
    expect(filesystemBytes('ext4', await headOf('ext4', 32 << 20, ['-q', '-F', '-O', '64bit', '-b', '1024']))).toBe(32 << 20);
  });
  it('xfs', async () => {
    expect(filesystemBytes('xfs', await headOf('xfs', 320 << 20, ['-q', '-f']))).toBe(320 << 20);
  });
  it('btrfs', async (ctx) => {
    const head = await headOf('btrfs', 256 << 20, ['-q', '-f']).catch((err: Error) => {
      // mkfs.btrfs stats every mount first: one hung FUSE mount anywhere on the machine (another run's) fails it.
      if (/cannot check mount status/.test(err.message)) ctx.skip('mkfs.btrfs cannot run here: a hung mount on this machine');
      throw err;
    });
    expect(filesystemBytes('btrfs', head)).toBe(256 << 20);
  });
  it('null for a type it does not grow or a superblock that does not match', async () => {
    const head = Buffer.alloc(128 * 1024);
    expect(filesystemBytes('vfat', head)).toBeNull();
    expect(filesystemBytes('ext4', head)).toBeNull();
    expect(filesystemBytes('xfs', head)).toBeNull();
    expect(filesystemBytes('btrfs', head)).toBeNull();
  });
});

describe('growing', () => {
  it('one command per family, on the device (ext) or the mount point (xfs, btrfs)', () => {
    expect(growArgv('ext4', '/dev/loop3', '/mnt/a')).toEqual({ program: 'resize2fs', args: ['/dev/loop3'] });
    expect(growArgv('xfs', '/dev/loop3', '/mnt/a')).toEqual({ program: 'xfs_growfs', args: ['-d', '/mnt/a'] });
    expect(growArgv('btrfs', '/dev/loop3', '/mnt/a')).toEqual({ program: 'btrfs', args: ['filesystem', 'resize', 'max', '/mnt/a'] });
    expect(growableKind('vfat')).toBeNull();
    expect(() => growArgv('vfat', '/dev/loop3', '/mnt/a')).toThrow(/cannot grow a vfat filesystem \(only ext2\/3\/4, xfs and btrfs\)/);
  });
  it('CAP_SYS_RESOURCE from CapEff decides whether a mounted ext filesystem may grow', async () => {
    const status = path.join(dir, 'status');
    const write = async (capEff: string) => {
      const fh = await open(status, 'w');
      await fh.writeFile(`Name:\tnode\nCapEff:\t${capEff}\n`);
      await fh.close();
    };
    await write('000001ffffffffff');
    expect(await mayResizeExtOnline(status)).toBe(true);
    await write('00000000a80425fb'); // Docker's default set: no CAP_SYS_RESOURCE
    expect(await mayResizeExtOnline(status)).toBe(false);
  });
});
