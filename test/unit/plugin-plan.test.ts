// Convergence planning: from observations to actions, with no I/O.
import { describe, expect, it } from 'vitest';
import type { Mapping } from '../../src/mapper/types.js';
import type { MountInfo } from '../../src/mapper/mountinfo.js';
import type { RateLimit } from '../../src/policy/types.js';
import type { MountRecord } from '../../src/state/records.js';
import type { LocalVolume } from '../../src/plugin/mounts/local-state.js';
import { planConvergence, volumeOfMountpoint, type Observation } from '../../src/plugin/converge/plan.js';

const ROOT = '/mnt/ceph';
const ME = 'host-me';

function mapping(tenant: string, volume: string, device: string | null): Mapping {
  return { tenant, volume, pool: 'rbd', image: `${tenant}.${volume}`, kind: 'fuse', device, clientAddress: `addr-${volume}`, fuseDir: `/state/fuse/${tenant}/${volume}` };
}

function entry(volume: string, refs: string[], extra: Partial<LocalVolume> = {}): LocalVolume {
  return {
    tenant: 't',
    volume,
    pool: 'rbd',
    image: `t.${volume}`,
    mapping: mapping('t', volume, `/dev/loop-${volume}`),
    mountpoint: `${ROOT}/t/${volume}`,
    refs,
    since: 'then',
    appliedLimits: null,
    lost: null,
    lockGeneration: 1,
    idleUntil: null,
    ...extra,
  };
}

function mountAt(mountPoint: string, source: string): MountInfo {
  return { id: 1, parentId: 0, devNumber: '7:0', major: 7, minor: 0, root: '/', mountPoint, options: 'rw', fsType: 'ext4', source, superOptions: 'rw' };
}

function lock(volume: string, hostId: string, lease: string): MountRecord {
  return { tenant: 't', volume, host: hostId, hostId, lease, device: '', mountpoint: '', mapper: 'fuse', clientAddress: null, since: 'then' };
}

const limits: RateLimit = { writeIops: 100, readIops: 0, writeBps: 0, readBps: 0 };

function observe(o: Partial<Observation>): Observation {
  return {
    hostId: ME,
    leaseId: 'L2',
    locksKnown: true,
    entries: [],
    mounts: [],
    mappings: [],
    locks: [],
    limits: new Map(),
    busy: new Set(),
    mountRoot: ROOT,
    now: Date.now(),
    ...o,
  };
}

/** A healthy mounted volume: entry, mount, mapping and our lock under the live lease. */
function healthy(volume: string) {
  return {
    entries: [entry(volume, ['id1'])],
    mounts: [mountAt(`${ROOT}/t/${volume}`, `/dev/loop-${volume}`)],
    mappings: [mapping('t', volume, `/dev/loop-${volume}`)],
    locks: [lock(volume, ME, 'L2')],
  };
}

describe('planConvergence', () => {
  it('a healthy host needs nothing but its limits applied', () => {
    const plan = planConvergence(observe({ ...healthy('a'), limits: new Map([['t/a', limits]]) }));
    expect(plan.problems).toEqual([]);
    expect(plan.actions).toEqual([{ kind: 'apply-limits', volume: 't/a', limits, changed: true }]);
  });

  it('limits already applied are marked unchanged', () => {
    const h = healthy('a');
    h.entries[0]!.appliedLimits = { ...limits };
    const plan = planConvergence(observe({ ...h, limits: new Map([['t/a', limits]]) }));
    expect(plan.actions).toEqual([{ kind: 'apply-limits', volume: 't/a', limits, changed: false }]);
  });

  it('after a restart our lock under the old lease is adopted', () => {
    const h = healthy('a');
    h.locks = [lock('a', ME, 'L1')];
    expect(planConvergence(observe(h)).actions).toEqual([{ kind: 'adopt-lock', volume: 't/a' }]);
  });

  it('a missing lock is taken back; without a lease it is only reported', () => {
    const h = healthy('a');
    h.locks = [];
    expect(planConvergence(observe(h)).actions).toEqual([{ kind: 'take-lock', volume: 't/a' }]);
    const noLease = planConvergence(observe({ ...h, leaseId: null }));
    expect(noLease.actions).toEqual([]);
    expect(noLease.problems[0]).toMatch(/no etcd lease/);
  });

  it('a lock held by another host means the volume is lost: fence before anything else', () => {
    const h = healthy('a');
    const other = lock('a', 'host-other', 'L9');
    h.locks = [other];
    const plan = planConvergence(observe({ ...h, limits: new Map([['t/a', limits]]) }));
    expect(plan.actions).toEqual([{ kind: 'lost-lock', volume: 't/a', holder: other }]);
  });

  it('a volume already marked lost is only reported', () => {
    const h = healthy('a');
    h.entries[0]!.lost = 'host-other';
    h.locks = [lock('a', 'host-other', 'L9')];
    const plan = planConvergence(observe(h));
    expect(plan.actions).toEqual([]);
    expect(plan.problems[0]).toMatch(/^t\/a: lost to this host \(host-other\)/);
  });

  it('a lost volume whose lock this host still holds gets it released, never retaken', () => {
    const h = healthy('a');
    h.entries[0]!.lost = 'lease not renewed';
    h.locks = [lock('a', ME, 'L-old')];
    expect(planConvergence(observe(h)).actions).toEqual([{ kind: 'release-lock', volume: 't/a', lease: 'L-old' }]);
    h.locks = [];
    expect(planConvergence(observe(h)).actions).toEqual([]);
  });

  it('an entry without references is torn down', () => {
    const h = healthy('a');
    h.entries[0]!.refs = [];
    expect(planConvergence(observe(h)).actions).toEqual([{ kind: 'teardown', volume: 't/a' }]);
  });

  it('our lock on a volume we no longer have is released', () => {
    const plan = planConvergence(observe({ locks: [lock('gone', ME, 'L1'), lock('theirs', 'host-other', 'L9')] }));
    expect(plan.actions).toEqual([{ kind: 'release-lock', volume: 't/gone', lease: 'L1' }]);
  });

  it('leftovers of a crash: the mount is removed before the mapping beneath it', () => {
    const plan = planConvergence(
      observe({ mounts: [mountAt(`${ROOT}/t/x`, '/dev/loop-x')], mappings: [mapping('t', 'x', '/dev/loop-x'), mapping('t', 'y', null)] }),
    );
    expect(plan.actions.map((a) => `${a.kind} ${a.volume}`)).toEqual(['cleanup-mount t/x', 'cleanup-mapping t/x', 'cleanup-mapping t/y']);
  });

  it('mounts outside MOUNT-ROOT/<tenant>/<volume> are not volplugin\'s', () => {
    const plan = planConvergence(observe({ mounts: [mountAt('/mnt/ceph', '/dev/sda'), mountAt('/mnt/ceph/t/a/deeper', '/dev/sdb'), mountAt('/srv', '/dev/sdc')] }));
    expect(plan.actions).toEqual([]);
  });

  it('volumes with an operation in progress are left alone', () => {
    const plan = planConvergence(
      observe({
        busy: new Set(['t/x', 't/gone']),
        mounts: [mountAt(`${ROOT}/t/x`, '/dev/loop-x')],
        mappings: [mapping('t', 'x', '/dev/loop-x')],
        locks: [lock('gone', ME, 'L1')],
      }),
    );
    expect(plan.actions).toEqual([]);
  });

  it('a mounted volume whose mount or device vanished is reported, never torn down under its containers', () => {
    const plan = planConvergence(observe({ entries: [entry('a', ['id1'])], locks: [lock('a', ME, 'L2')], mappings: [mapping('t', 'a', null)] }));
    expect(plan.actions).toEqual([]);
    expect(plan.problems).toHaveLength(2);
    expect(plan.problems[0]).toMatch(/no longer mounted/);
    expect(plan.problems[1]).toMatch(/no longer mapped/);
  });

  it('a volume whose mapping broke (its client died) is reported with what to do', () => {
    const h = healthy('a');
    const plan = planConvergence(observe({ ...h, broken: new Set(['t/a']) }));
    expect(plan.problems).toEqual([
      't/a: its device /dev/loop-a is no longer mapped (fuse; its client died?): the containers using it get I/O errors; stop them so that volplugin can clean up',
    ]);
  });

  it('etcd unreadable: no lock actions, local cleanup still happens', () => {
    const h = healthy('a');
    h.locks = [];
    const plan = planConvergence(observe({ ...h, locksKnown: false, mappings: [...h.mappings, mapping('t', 'z', '/dev/loop-z')] }));
    expect(plan.actions).toEqual([{ kind: 'cleanup-mapping', volume: 't/z', mapping: mapping('t', 'z', '/dev/loop-z') }]);
  });

  it('volumeOfMountpoint', () => {
    expect(volumeOfMountpoint('/mnt/ceph/', '/mnt/ceph/t/v')).toBe('t/v');
    expect(volumeOfMountpoint('/mnt/ceph', '/mnt/cephx/t/v')).toBeNull();
    expect(volumeOfMountpoint('/mnt/ceph', '/mnt/ceph/t')).toBeNull();
  });
});
