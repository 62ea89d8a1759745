// blkio throttling strings: cgroup v1 throttle files and the cgroup v2 io.max line, exactly as the
// kernel takes them, and their parsers. (test/integration/storage-blkio.test.ts writes them into a
// real cgroup.)

import { describe, expect, it } from 'vitest';
import {
  applyBlkioV1,
  applyIoMax,
  blkioV1Writes,
  decodeDev,
  deviceNumberOf,
  ioMaxLine,
  parseIoMax,
  parseV1Throttle,
} from '../../src/ratelimit/index.js';

const dev = { major: 252, minor: 16 };

describe('cgroup v1 blkio throttle', () => {
  it('writes "MAJ:MIN LIMIT" into one file per limit', () => {
    expect(blkioV1Writes(dev, { writeIops: 100, readIops: 200, writeBps: 1048576, readBps: 0 })).toEqual([
      { file: 'blkio.throttle.write_iops_device', value: '252:16 100' },
      { file: 'blkio.throttle.read_iops_device', value: '252:16 200' },
      { file: 'blkio.throttle.write_bps_device', value: '252:16 1048576' },
      { file: 'blkio.throttle.read_bps_device', value: '252:16 0' },
    ]);
  });

  it('touches only the limits given (0 clears one)', () => {
    expect(blkioV1Writes(dev, { readBps: 0 })).toEqual([{ file: 'blkio.throttle.read_bps_device', value: '252:16 0' }]);
    expect(blkioV1Writes(dev, {})).toEqual([]);
  });

  it('refuses negative, fractional or unsafe numbers', () => {
    expect(() => blkioV1Writes(dev, { readIops: -1 })).toThrow(/limits\.readIops/);
    expect(() => blkioV1Writes(dev, { readIops: 1.5 })).toThrow(RangeError);
    expect(() => blkioV1Writes({ major: -1, minor: 0 }, { readIops: 1 })).toThrow(/dev\.major/);
  });

  it('applies through the writer, in the cgroup directory', async () => {
    const writes: [string, string][] = [];
    await applyBlkioV1('/sys/fs/cgroup/blkio/docker/abc', dev, { writeIops: 5, readIops: 6 }, async (f, d) => {
      writes.push([f, d]);
    });
    expect(writes).toEqual([
      ['/sys/fs/cgroup/blkio/docker/abc/blkio.throttle.write_iops_device', '252:16 5'],
      ['/sys/fs/cgroup/blkio/docker/abc/blkio.throttle.read_iops_device', '252:16 6'],
    ]);
  });

  it('parses a throttle file', () => {
    expect([...parseV1Throttle('7:0 100\n252:16 5\n\n')]).toEqual([
      ['7:0', 100],
      ['252:16', 5],
    ]);
  });
});

describe('cgroup v2 io.max', () => {
  it('is one line with rbps, wbps, riops, wiops; 0 is "max"', () => {
    expect(ioMaxLine(dev, { readBps: 1048576, writeBps: 0, readIops: 100, writeIops: 50 })).toBe(
      '252:16 rbps=1048576 wbps=max riops=100 wiops=50',
    );
  });

  it('leaves out the limits not given (the kernel keeps them)', () => {
    expect(ioMaxLine(dev, { writeIops: 10 })).toBe('252:16 wiops=10');
    expect(ioMaxLine(dev, {})).toBeNull();
  });

  it('applies through the writer into io.max, and nothing when there is nothing to set', async () => {
    const writes: [string, string][] = [];
    const write = async (f: string, d: string) => {
      writes.push([f, d]);
    };
    await applyIoMax('/sys/fs/cgroup/system.slice/x', dev, { readIops: 1 }, write);
    await applyIoMax('/sys/fs/cgroup/system.slice/x', dev, {}, write);
    expect(writes).toEqual([['/sys/fs/cgroup/system.slice/x/io.max', '252:16 riops=1']]);
  });

  it('parses io.max', () => {
    expect(parseIoMax('252:16 rbps=10 wbps=max riops=max wiops=7\n').get('252:16')).toEqual({
      readBps: 10,
      writeBps: 0,
      readIops: 0,
      writeIops: 7,
    });
  });
});

describe('device numbers', () => {
  it('decodes Linux dev_t values (small and large majors/minors)', () => {
    expect(decodeDev(0x0700n)).toEqual({ major: 7, minor: 0 });
    expect(decodeDev(0xfc10n)).toEqual({ major: 252, minor: 16 });
    // major 259, minor 1048575: the high bits live above bit 20 and 32.
    const rdev = (259n << 8n) | 0xffn | (0xfff00n << 12n);
    expect(decodeDev(rdev)).toEqual({ major: 259, minor: 0xfffff });
  });

  it('refuses a node that is not a block device', async () => {
    await expect(deviceNumberOf('/dev/null')).rejects.toThrow(/not a block device/);
  });
});
