import { describe, expect, it } from 'vitest';
import {
  PolicyError,
  applyRuntimeOptions,
  conflictingOptions,
  formatCommandFor,
  parseOptionPairs,
  resolveVolumeOptions,
  runtimeAsOptions,
  runtimeOf,
  validatePolicy,
} from '../../src/policy/index.js';
import { issuePolicy } from '../helpers/fixtures.js';

const MiB = 1024 ** 2;
const policy = validatePolicy(issuePolicy);

function optionError(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).code).toBe('INVALID_OPTION');
    return err as PolicyError;
  }
  throw new Error('expected INVALID_OPTION');
}

describe('merging default-options with driver options', () => {
  it('takes the defaults when no option is given', () => {
    expect(resolveVolumeOptions(policy, null)).toEqual({
      pool: 'rbd',
      sizeBytes: 10 * MiB,
      snapshots: true,
      snapshot: { frequency: '30m', keep: 20 },
      filesystem: 'btrfs',
      ephemeral: false,
      rateLimit: { writeIops: 1000, readIops: 1000, writeBps: 100000000, readBps: 100000000 },
    });
  });

  it('overrides every key', () => {
    const options = resolveVolumeOptions(policy, {
      pool: 'fast',
      size: '1000',
      snapshots: 'F',
      'snapshots.frequency': '1h',
      'snapshots.keep': '5',
      filesystem: 'ext4',
      ephemeral: 'TRUE',
      'rate-limit.write.iops': '10',
      'rate-limit.read.iops': '20',
      'rate-limit.read.bps': '30',
      'rate-limit.write.bps': '40',
    });
    expect(options).toEqual({
      pool: 'fast',
      sizeBytes: 1000 * MiB,
      snapshots: false,
      snapshot: { frequency: '1h', keep: 5 },
      filesystem: 'ext4',
      ephemeral: true,
      rateLimit: { writeIops: 10, readIops: 20, readBps: 30, writeBps: 40 },
    });
  });

  it('accepts a size with a unit and JSON scalars', () => {
    expect(resolveVolumeOptions(policy, { size: '2GB', ephemeral: true, 'snapshots.keep': 3 })).toMatchObject({
      sizeBytes: 2048 * MiB,
      ephemeral: true,
      snapshot: { keep: 3 },
    });
  });

  it.each([
    [{ sise: '10' }, 'sise', /unknown option "sise"; did you mean "size"\?/],
    [{ 'snapshot.keep': '5' }, 'snapshot.keep', /did you mean "snapshots.keep"/],
    [{ 'rate-limit.write-iops': '5' }, 'rate-limit.write-iops', /did you mean "rate-limit.write.iops"/],
    [{ color: 'red' }, 'color', /unknown option "color"; allowed: pool, size/],
    [{ size: 'big' }, 'size', /not a size/],
    [{ size: '10XB' }, 'size', /unknown size unit/],
    [{ size: '-5' }, 'size', /not a size/],
    [{ snapshots: 'yes' }, 'snapshots', /not a boolean/],
    [{ ephemeral: 'nope' }, 'ephemeral', /not a boolean/],
    [{ 'snapshots.keep': '-1' }, 'snapshots.keep', /negative/],
    [{ 'snapshots.keep': 'x' }, 'snapshots.keep', /not a number or TIER:N/],
    [{ 'snapshots.frequency': 'daily' }, 'snapshots.frequency', /not a duration/],
    [{ 'rate-limit.read.bps': '1.5' }, 'rate-limit.read.bps', /not a whole number/],
    [{ filesystem: 'xfs' }, 'filesystem', /"xfs" is not one of the tenant's filesystems \(btrfs, ext4\)/],
    [{ filesystem: '' }, 'filesystem', /empty/],
    [{ pool: 'a/b' }, 'pool', /may contain only/],
    [{ size: { n: 1 } }, 'size', /must be a string: a size such as "10GB".*got an object/],
    // No coercion: a JSON value of another type than the option's is refused, naming the option.
    [{ pool: 5 }, 'pool', /pool: must be a string: a Ceph pool name, got the number 5/],
    [{ size: 10 }, 'size', /must be a string.*got the number 10/],
    [{ 'rate-limit.write.iops': true }, 'rate-limit.write.iops', /must be a whole number.*got true/],
    [{ snapshots: 1 }, 'snapshots', /must be true or false.*got the number 1/],
    [{ 'snapshots.keep': 2.5 }, 'snapshots.keep', /whole number.*got the number 2.5/],
    [{ size: null }, 'size', /got null/],
  ])('rejects %j', (values, field, reason) => {
    const err = optionError(() => resolveVolumeOptions(policy, values));
    expect(err.field).toBe(field);
    expect(err.message).toMatch(reason);
  });

  it('needs a size from somewhere', () => {
    const noSize = validatePolicy({ 'default-options': { pool: 'rbd' } });
    expect(optionError(() => resolveVolumeOptions(noSize, {})).message).toMatch(/sets no size/);
    expect(resolveVolumeOptions(noSize, { size: '5' }).sizeBytes).toBe(5 * MiB);
  });
});

describe('conflicts with an existing volume', () => {
  const existing = resolveVolumeOptions(policy, { size: '20' });

  it('counts only the options given', () => {
    expect(conflictingOptions(existing, {})).toEqual([]);
    expect(conflictingOptions(existing, null)).toEqual([]);
    expect(conflictingOptions(existing, { size: '20MB' })).toEqual([]);
    expect(conflictingOptions(existing, { 'snapshots.frequency': '0.5h' })).toEqual([]);
    expect(conflictingOptions(existing, { size: '30', filesystem: 'ext4', 'rate-limit.read.iops': '1' })).toEqual([
      'size',
      'filesystem',
      'rate-limit.read.iops',
    ]);
  });
});

describe('runtime options', () => {
  const runtime = runtimeOf(resolveVolumeOptions(policy, {}));

  it('changes only the keys given', () => {
    expect(applyRuntimeOptions(runtime, { 'snapshots.keep': '5', 'rate-limit.write.iops': '0' })).toEqual({
      snapshots: true,
      snapshot: { frequency: '30m', keep: 5 },
      rateLimit: { writeIops: 0, readIops: 1000, writeBps: 100000000, readBps: 100000000 },
    });
  });

  it('changes keep to tiers and consistency to fsfreeze and back; the default is not recorded', () => {
    const tiered = applyRuntimeOptions(runtime, { 'snapshots.keep': 'last:3,daily:7', 'snapshots.consistency': 'fsfreeze' });
    expect(tiered.snapshot).toEqual({ frequency: '30m', keep: { last: 3, daily: 7 }, consistency: 'fsfreeze' });
    expect(runtimeAsOptions(tiered)).toMatchObject({ 'snapshots.keep': 'last:3,daily:7', 'snapshots.consistency': 'fsfreeze' });
    expect(applyRuntimeOptions(tiered, { 'snapshots.consistency': 'crash' }).snapshot).toEqual({ frequency: '30m', keep: { last: 3, daily: 7 } });
    // JSON clients may send the tiers as an object.
    expect(applyRuntimeOptions(runtime, { 'snapshots.keep': { hourly: 24 } } as never).snapshot.keep).toEqual({ hourly: 24 });
    expect(optionError(() => applyRuntimeOptions(runtime, { 'snapshots.consistency': 'freeze' })).message).toMatch(/write crash or fsfreeze/);
    expect(optionError(() => applyRuntimeOptions(runtime, { 'snapshots.keep': { weekly: 0 } } as never)).message).toMatch(/keeps nothing/);
  });

  it('bounds the sum of the tiers by limits.snapshots', () => {
    const limited = validatePolicy({ ...issuePolicy, limits: { snapshots: 20 } });
    expect(() => resolveVolumeOptions(limited, { 'snapshots.keep': 'last:10,daily:10' })).not.toThrow();
    expect(() => resolveVolumeOptions(limited, { 'snapshots.keep': 'last:10,daily:11' })).toThrow(/snapshots.keep: last:10,daily:11 keeps up to 21 snapshots/);
  });

  it('refuses options that need a new volume', () => {
    expect(optionError(() => applyRuntimeOptions(runtime, { size: '10' })).message).toMatch(/unknown runtime option "size"/);
    expect(optionError(() => applyRuntimeOptions(runtime, { filesystem: 'ext4' })).field).toBe('filesystem');
  });

  it('spells runtime options as option keys', () => {
    expect(runtimeAsOptions(runtime)).toEqual({
      snapshots: 'true',
      'snapshots.frequency': '30m',
      'snapshots.keep': '20',
      'snapshots.consistency': 'crash',
      'rate-limit.write.iops': '1000',
      'rate-limit.read.iops': '1000',
      'rate-limit.read.bps': '100000000',
      'rate-limit.write.bps': '100000000',
    });
  });
});

describe('--opt pairs', () => {
  it('splits at the first =', () => {
    expect(parseOptionPairs(['size=10', 'x=a=b', 'e='])).toEqual({ size: '10', x: 'a=b', e: '' });
    expect(optionError(() => parseOptionPairs(['size'])).message).toMatch(/not KEY=VALUE/);
    expect(optionError(() => parseOptionPairs(['=1'])).message).toMatch(/not KEY=VALUE/);
    expect(optionError(() => parseOptionPairs(['a=1', 'a=2'])).message).toMatch(/twice/);
  });
});

describe('filesystem commands', () => {
  it('resolves the tenant command (policy-filesystem.test.ts checks the commands themselves)', () => {
    expect(formatCommandFor(policy, 'btrfs')).toBe('mkfs.btrfs %');
    expect(() => formatCommandFor(policy, 'zfs')).toThrow(/not one of the tenant's filesystems/);
  });
});
