// The CSI driver's pure parts: ids (one to one with volplugin's names, tokens it alone makes),
// capacity ranges (the size a range gives, OUT_OF_RANGE when none fits), capabilities (what a
// volume offers, the problem named), parameters and the command line. The RPCs against real
// processes: test/integration/csi-lifecycle.test.ts.
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { capabilityProblem } from '../../src/csi/capabilities.js';
import { MiB, parseRange, sizeFor } from '../../src/csi/capacity.js';
import { parseCsiConfig } from '../../src/csi/config.js';
import { parseParameters } from '../../src/csi/controller.js';
import { CsiError, toCsiError } from '../../src/csi/errors.js';
import { pageToken, parsePageToken, parseSnapshotId, parseVolumeId, snapshotId, snapshotNameFor, volumeId, volumeNameFor } from '../../src/csi/ids.js';
import { endpointPath } from '../../src/csi/server.js';
import { ApiError } from '../../src/api/errors.js';

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as CsiError).code;
  }
  return status.OK;
};

describe('ids', () => {
  it('volume and snapshot ids round-trip; ids volplugin never made parse to null', () => {
    expect(volumeId('t1', 'pvc-1')).toBe('t1.pvc-1');
    expect(parseVolumeId('t1.pvc-1')).toEqual({ tenant: 't1', volume: 'pvc-1' });
    expect(parseVolumeId('no-dot')).toBeNull();
    const id = snapshotId({ tenant: 't1', volume: 'v', snapshot: 'csi-s' });
    expect(parseSnapshotId(id)).toEqual({ tenant: 't1', volume: 'v', snapshot: 'csi-s' });
    expect(parseSnapshotId('t1.v')).toBeNull();
  });

  it('request names: valid ones are kept, others hashed the same way every time', () => {
    expect(volumeNameFor('pvc-0a1b')).toBe('pvc-0a1b');
    const odd = volumeNameFor('a name/with slashes');
    expect(odd).toMatch(/^csi-[0-9a-f]{40}$/);
    expect(volumeNameFor('a name/with slashes')).toBe(odd);
    expect(snapshotNameFor('snap-1')).toBe('csi-snap-1');
  });

  it('page tokens: only the ones it gave are accepted', () => {
    const token = pageToken('t1.v@csi-a');
    expect(parsePageToken(token)).toBe('t1.v@csi-a');
    expect(parsePageToken('bogus')).toBeNull();
    expect(parsePageToken(Buffer.from('v1:nonsense').toString('base64url'))).toBeNull();
  });
});

describe('capacity ranges', () => {
  it('the default size when it fits, else the smallest whole MiB in the range', () => {
    expect(sizeFor(parseRange(null), 100 * MiB)).toBe(100 * MiB);
    expect(sizeFor(parseRange({ required_bytes: String(40 * MiB + 1), limit_bytes: '0' }), null)).toBe(41 * MiB);
    expect(sizeFor(parseRange({ required_bytes: '0', limit_bytes: String(50 * MiB) }), 100 * MiB)).toBe(50 * MiB);
    // Whole KiB when no whole MiB fits.
    expect(sizeFor(parseRange({ required_bytes: String(MiB + 1), limit_bytes: String(MiB + 2048) }), null)).toBe(MiB + 1024);
  });

  it('impossible ranges are OUT_OF_RANGE, negative numbers INVALID_ARGUMENT', () => {
    expect(codeOf(() => parseRange({ required_bytes: String(2 * MiB), limit_bytes: String(MiB) }))).toBe(status.OUT_OF_RANGE);
    expect(codeOf(() => parseRange({ required_bytes: '0', limit_bytes: '1000' }))).toBe(status.OUT_OF_RANGE);
    expect(codeOf(() => parseRange({ required_bytes: '-1', limit_bytes: '0' }))).toBe(status.INVALID_ARGUMENT);
    expect(codeOf(() => sizeFor(parseRange({ required_bytes: String(MiB + 1), limit_bytes: String(MiB + 2) }), null))).toBe(status.OUT_OF_RANGE);
  });
});

describe('capabilities', () => {
  const mount = (mode: string, extra: object = {}) => ({ mount: { fs_type: '', mount_flags: [], volume_mount_group: '', ...extra }, access_mode: { mode }, access_type: 'mount' as const });

  it('single-node mount access is offered; block, multi-node modes, foreign filesystems and unsafe flags are not', () => {
    expect(capabilityProblem(mount('SINGLE_NODE_WRITER') as never, 'c')).toBeNull();
    expect(capabilityProblem(null, 'c')?.kind).toBe('missing');
    expect(capabilityProblem({ block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' } as never, 'c')?.message).toMatch(/block access is not offered/);
    expect(capabilityProblem(mount('MULTI_NODE_MULTI_WRITER') as never, 'c')?.kind).toBe('unsupported');
    expect(capabilityProblem(mount('SINGLE_NODE_WRITER', { fs_type: 'xfs' }) as never, 'c', 'ext4')?.message).toMatch(/filesystem is ext4/);
    expect(capabilityProblem(mount('SINGLE_NODE_WRITER', { mount_flags: ['suid'] }) as never, 'c')?.message).toMatch(/"suid" is not offered/);
  });
});

describe('parameters and errors', () => {
  it('the tenant is required, size is refused, the CO\'s own keys are ignored, options are checked', () => {
    expect(parseParameters({ tenant: 't1', filesystem: 'xfs', 'csi.storage.k8s.io/pvc/name': 'x' })).toEqual({ tenant: 't1', options: { filesystem: 'xfs' } });
    expect(codeOf(() => parseParameters({ filesystem: 'xfs' }))).toBe(status.INVALID_ARGUMENT);
    expect(codeOf(() => parseParameters({ tenant: 't1', size: '10GB' }))).toBe(status.INVALID_ARGUMENT);
    expect(codeOf(() => parseParameters({ tenant: 't1', bogus: '1' }))).toBe(status.INVALID_ARGUMENT);
  });

  it('the master\'s errors become the spec\'s codes, with what to do for credentials', () => {
    expect(toCsiError(new ApiError('VOLUME_NOT_FOUND', 'gone')).code).toBe(status.NOT_FOUND);
    expect(toCsiError(new ApiError('VOLUME_ATTACHED', 'elsewhere')).code).toBe(status.FAILED_PRECONDITION);
    expect(toCsiError(new ApiError('FORBIDDEN', 'no')).message).toMatch(/role provisioner/);
    expect(toCsiError(new Error('boom')).code).toBe(status.INTERNAL);
  });
});

describe('the command line', () => {
  it('the endpoint comes from CSI_ENDPOINT in any of its forms; a non-unix endpoint is refused', () => {
    expect(endpointPath('unix:///csi/csi.sock')).toBe('/csi/csi.sock');
    expect(endpointPath('unix:/csi/csi.sock')).toBe('/csi/csi.sock');
    expect(endpointPath('/run/docker/plugins/x.sock')).toBe('/run/docker/plugins/x.sock');
    expect(() => endpointPath('tcp://127.0.0.1:10000')).toThrow(/not a unix socket/);
    const config = parseCsiConfig(['--mode', 'node'], { CSI_ENDPOINT: 'unix:///var/lib/kubelet/plugins/csi.volplugin.io/csi.sock' });
    expect(config.endpoint).toBe('unix:///var/lib/kubelet/plugins/csi.volplugin.io/csi.sock');
    expect(config.mode).toBe('node');
    expect(config.driverName).toBe('csi.volplugin.io');
    expect(() => parseCsiConfig(['--driver-name', 'Not_A_Name'], {})).toThrow(/not a CSI driver name/);
    expect(() => parseCsiConfig(['--endpoint', 'tcp://x:1'], {})).toThrow(/not a unix socket/);
  });
});
