// Parsers of what the host tools print: mountinfo, losetup, blkid, rbd-nbd; and the watcher diff
// that finds a new mapping's Ceph client.
import { describe, expect, it } from 'vitest';
import { parseBlkidExport } from '../../src/mapper/fs.js';
import { parseLosetupJson } from '../../src/mapper/loop.js';
import { isBelow, parseMountInfo, parseMountInfoLine, unescapeMountField } from '../../src/mapper/mountinfo.js';
import { parseNbdList } from '../../src/mapper/nbd.js';
import { newWatchers } from '../../src/mapper/types.js';
import { commandLine } from '../../src/mapper/exec.js';

describe('mountinfo', () => {
  it('parses an ext4 mount on a loop device', () => {
    const m = parseMountInfoLine('44 27 7:0 / /tmp/vpp/m/a rw,relatime - ext4 /dev/loop0 rw');
    expect(m).toEqual({
      id: 44,
      parentId: 27,
      devNumber: '7:0',
      major: 7,
      minor: 0,
      root: '/',
      mountPoint: '/tmp/vpp/m/a',
      options: 'rw,relatime',
      fsType: 'ext4',
      source: '/dev/loop0',
      superOptions: 'rw',
    });
  });

  it('handles optional fields before the separator and rbd-fuse mounts', () => {
    const m = parseMountInfoLine('42 27 0:39 / /var/lib/volplugin/fuse/t/v rw,nosuid,nodev shared:5 master:1 - fuse.rbd-fuse rbd-fuse rw,user_id=0,group_id=0');
    expect(m?.fsType).toBe('fuse.rbd-fuse');
    expect(m?.source).toBe('rbd-fuse');
    expect(m?.mountPoint).toBe('/var/lib/volplugin/fuse/t/v');
  });

  it('decodes octal escapes in paths', () => {
    expect(unescapeMountField('/mnt/with\\040space\\011tab\\134slash')).toBe('/mnt/with space\ttab\\slash');
    expect(parseMountInfoLine('1 0 8:1 / /a\\040b rw - ext4 /dev/sda1 rw')?.mountPoint).toBe('/a b');
  });

  it('skips lines that are not mountinfo', () => {
    expect(parseMountInfo('garbage\n\n44 27 7:0 / /x rw - ext4 /dev/loop0 rw\n')).toHaveLength(1);
  });

  it('isBelow does not confuse /mnt/ceph with /mnt/cephx', () => {
    expect(isBelow('/mnt/ceph/t/v', '/mnt/ceph')).toBe(true);
    expect(isBelow('/mnt/ceph', '/mnt/ceph')).toBe(true);
    expect(isBelow('/mnt/cephx/t', '/mnt/ceph')).toBe(false);
  });
});

describe('losetup --json', () => {
  it('parses devices, direct I/O and deleted backing files', () => {
    const text = JSON.stringify({
      loopdevices: [
        { name: '/dev/loop0', 'back-file': '/s/fuse/t/v/t.v', dio: true },
        { name: '/dev/loop1', 'back-file': '/s/fuse/t/w/t.w (deleted)', dio: false },
      ],
    });
    expect(parseLosetupJson(text)).toEqual([
      { device: '/dev/loop0', backingFile: '/s/fuse/t/v/t.v', deleted: false, directIo: true },
      { device: '/dev/loop1', backingFile: '/s/fuse/t/w/t.w', deleted: true, directIo: false },
    ]);
  });

  it('empty output and an empty list mean no loop devices', () => {
    expect(parseLosetupJson('')).toEqual([]);
    expect(parseLosetupJson('{"loopdevices": []}')).toEqual([]);
  });
});

describe('blkid -o export', () => {
  it('gives the fields', () => {
    expect(parseBlkidExport('DEVNAME=/dev/loop0\nUUID=e124\nTYPE=ext4\nUSAGE=filesystem\n')).toMatchObject({ TYPE: 'ext4', UUID: 'e124' });
  });
});

describe('rbd-nbd list-mapped', () => {
  it('parses the JSON list', () => {
    const text = JSON.stringify([{ id: 1, pid: 4242, pool: 'rbd', namespace: '', image: 't.v', snap: '-', device: '/dev/nbd0' }]);
    expect(parseNbdList(text)).toEqual([{ pid: 4242, pool: 'rbd', image: 't.v', device: '/dev/nbd0', snap: '-' }]);
    expect(parseNbdList('')).toEqual([]);
  });
});

describe('newWatchers', () => {
  it('keeps only clients that were not there before', () => {
    const a = { address: '127.0.0.1:0/1', clientId: 1, cookie: 1 };
    const b = { address: '127.0.0.1:0/2', clientId: 2, cookie: 2 };
    expect(newWatchers([a], [a, b])).toEqual([b]);
    expect(newWatchers([a, b], [b])).toEqual([]);
  });
});

describe('commandLine', () => {
  it('quotes words a shell would split', () => {
    expect(commandLine('rbd-fuse', ['-p', 'rbd', '/a dir'])).toBe("rbd-fuse -p rbd '/a dir'");
    expect(commandLine('sh', ['-c', "mkfs.ext4 '/dev/loop0'"])).toBe(`sh -c 'mkfs.ext4 '\\''/dev/loop0'\\'''`);
  });
});
