import { describe, expect, it } from 'vitest';
import { PolicyError, parsePolicy, policyDefaults, validatePolicy } from '../../src/policy/index.js';
import { issuePolicy } from '../helpers/fixtures.js';

const readme = issuePolicy;

function withOptions(options: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { 'default-options': { pool: 'rbd', ...options }, ...extra };
}

function rejected(value: unknown): PolicyError {
  try {
    validatePolicy(value);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).code).toBe('INVALID_POLICY');
    return err as PolicyError;
  }
  throw new Error('policy was accepted');
}

describe('tenant policy validation', () => {
  it('accepts the README policy and types its defaults', () => {
    const policy = validatePolicy(readme);
    expect(policy).toEqual(readme);
    expect(policyDefaults(policy)).toEqual({
      pool: 'rbd',
      sizeBytes: 10 * 1024 * 1024,
      snapshots: true,
      snapshot: { frequency: '30m', keep: 20 },
      filesystem: 'btrfs',
      ephemeral: false,
      rateLimit: { writeIops: 1000, readIops: 1000, writeBps: 100000000, readBps: 100000000 },
    });
  });

  it('fills the default filesystems and defaults when omitted', () => {
    const policy = validatePolicy({ 'default-options': { pool: 'rbd' } });
    expect(policy.filesystems).toEqual({ ext4: 'mkfs.ext4 -m0 -E lazy_journal_init=1 %' });
    expect(policyDefaults(policy)).toEqual({
      pool: 'rbd',
      sizeBytes: null,
      snapshots: false,
      snapshot: { frequency: '30m', keep: 20 },
      filesystem: 'ext4',
      ephemeral: false,
      rateLimit: { writeIops: 0, readIops: 0, writeBps: 0, readBps: 0 },
    });
  });

  it('does not keep a reference to the input', () => {
    const input = withOptions({ size: '1GB' });
    const policy = validatePolicy(input);
    (input['default-options'] as Record<string, unknown>).size = 'x';
    expect(policy['default-options'].size).toBe('1GB');
  });

  it.each([
    [[], '', /must be a JSON object/],
    ['x', '', /must be a JSON object/],
    [{}, 'default-options', /is required/],
    [{ 'default-options': {} }, 'default-options.pool', /is required/],
    [{ 'default-options': 'rbd' }, 'default-options', /must be an object/],
    [{ 'default-options': { pool: 'rbd' }, extra: 1 }, 'extra', /unknown key/],
    [withOptions({ sise: '1GB' }), 'default-options.sise', /unknown key "sise"; did you mean "size"\? allowed: pool, size/],
    [withOptions({ pool: 1 }), 'default-options.pool', /must be a string/],
    [withOptions({ pool: '' }), 'default-options.pool', /empty/],
    [withOptions({ pool: 'a b' }), 'default-options.pool', /may contain only/],
    [withOptions({ size: '10' }), 'default-options.size', /has no unit/],
    [withOptions({ size: 10 }), 'default-options.size', /must be a string with a unit.*got the number 10/],
    [withOptions({ size: '10XB' }), 'default-options.size', /unknown size unit "XB"/],
    [withOptions({ size: 'big' }), 'default-options.size', /not a size/],
    [withOptions({ snapshots: 'yes' }), 'default-options.snapshots', /true or false/],
    [withOptions({ snapshot: { keep: -1 } }), 'default-options.snapshot.keep', /at least 1, got -1/],
    [withOptions({ snapshot: { keep: 0 } }), 'default-options.snapshot.keep', /at least 1/],
    [withOptions({ snapshot: { keep: 1.5 } }), 'default-options.snapshot.keep', /whole number/],
    [withOptions({ snapshot: { keep: '20' } }), 'default-options.snapshot.keep', /whole number/],
    [withOptions({ snapshot: { keep: { hourly: 'x' } } }), 'default-options.snapshot.keep.hourly', /whole number/],
    [withOptions({ snapshot: { keep: { hourly: -1 } } }), 'default-options.snapshot.keep.hourly', /at least 0/],
    [withOptions({ snapshot: { keep: { yearly: 2 } } }), 'default-options.snapshot.keep.yearly', /unknown key "yearly"/],
    [withOptions({ snapshot: { keep: { daily: 0 } } }), 'default-options.snapshot.keep', /keeps nothing/],
    [withOptions({ snapshot: { keep: {} } }), 'default-options.snapshot.keep', /at least 1 key/],
    [withOptions({ snapshot: { keep: { last: 30 } } }, { limits: { snapshots: 20 } }), 'default-options.snapshot.keep', /limit of 20/],
    [withOptions({ snapshot: { keep: { last: 3, daily: 10, weekly: 10 } } }, { limits: { snapshots: 20 } }), 'default-options.snapshot.keep', /keeps up to 23 snapshots.*limit of 20/],
    [withOptions({ snapshot: { consistency: 'freeze' } }), 'default-options.snapshot.consistency', /"crash" or "fsfreeze"/],
    [withOptions({ snapshot: { frequency: 'hourly' } }), 'default-options.snapshot.frequency', /not a duration/],
    [withOptions({ snapshot: { frequency: '10ms' } }), 'default-options.snapshot.frequency', /too short/],
    [withOptions({ snapshot: { frequency: 30 } }), 'default-options.snapshot.frequency', /must be a string/],
    [withOptions({ snapshot: { every: '1h' } }), 'default-options.snapshot.every', /unknown key/],
    [withOptions({ ephemeral: 'false' }), 'default-options.ephemeral', /true or false/],
    [withOptions({ 'rate-limit': { 'write-iops': -5 } }), 'default-options.rate-limit.write-iops', /at least 0/],
    [withOptions({ 'rate-limit': { 'write-iops': '5' } }), 'default-options.rate-limit.write-iops', /whole number/],
    [withOptions({ 'rate-limit': { 'write-ops': 5 } }), 'default-options.rate-limit.write-ops', /unknown key/],
    [withOptions({ filesystem: 'xfs' }), 'default-options.filesystem', /"xfs" is not in filesystems; use one of: ext4/],
    [withOptions({}, { filesystems: { xfs: 'mkfs.xfs %' } }), 'default-options.filesystem', /default "ext4" is not in filesystems/],
    [withOptions({}, { filesystems: {} }), 'filesystems', /names no filesystem/],
    [withOptions({}, { filesystems: { ext4: 'mkfs.ext4 -q' } }), 'filesystems.ext4', /has no "%"/],
    [withOptions({}, { filesystems: { ext4: 'mkfs.ext4 -E stride=100%%' } }), 'filesystems.ext4', /has no "%"/],
    [withOptions({}, { filesystems: { ext4: 'mkfs.ext4 %; rm -rf /' } }), 'filesystems.ext4', /"mkfs.ext4 %; rm -rf \/" contains ";".*without a shell/],
    [withOptions({}, { filesystems: { ext4: 'sh -c mkfs %' } }), 'filesystems.ext4', /runs "sh", which is not an allowed program; allowed programs: mkfs.ext4, mkfs.xfs, mkfs.btrfs/],
    [withOptions({}, { filesystems: { ext4: '' } }), 'filesystems.ext4', /empty/],
    [withOptions({}, { filesystems: { ext4: ['mkfs', '%'] } }), 'filesystems.ext4', /must be a string/],
    [withOptions({}, { filesystems: { 'bad name': 'mkfs %' } }), 'filesystems.bad name', /filesystem name/],
  ])('rejects %j at %s', (value, field, reason) => {
    const err = rejected(value);
    if (field) {
      expect(err.field).toBe(field);
      expect(err.message.startsWith(`${field}: `)).toBe(true);
    }
    expect(err.message).toMatch(reason);
  });

  it('accepts tiered keeps and fsfreeze consistency, keeping them as written', () => {
    const keep = { last: 3, hourly: 24, daily: 7, weekly: 4, monthly: 6 };
    const policy = validatePolicy(withOptions({ snapshot: { frequency: '1h', keep, consistency: 'fsfreeze' } }, { limits: { snapshots: 44 } }));
    expect(policy['default-options'].snapshot).toEqual({ frequency: '1h', keep, consistency: 'fsfreeze' });
  });

  it('accepts %% next to the device placeholder', () => {
    expect(() => validatePolicy(withOptions({}, { filesystems: { ext4: 'mkfs.ext4 -E stride=100%% %' } }))).not.toThrow();
  });

  it('parses text and reports JSON errors with their position', () => {
    expect(parsePolicy(JSON.stringify(readme))).toEqual(readme);
    expect(() => parsePolicy('{\n "default-options": {"pool": "rbd",}\n}')).toThrow(/line 2, column 36/);
  });
});
