// The tenant policy's `backup` block and the driver/runtime options that override it (src/policy/backup.ts).
import { describe, expect, it } from 'vitest';
import { PolicyError, policyDefaults, validatePolicy } from '../../src/policy/index.js';
import { applyRuntimeOptions, conflictingOptions, resolveVolumeOptions, runtimeAsOptions, runtimeOf } from '../../src/policy/options.js';
import { hookArgv, hookProblem, insideAllowed, targetProblem } from '../../src/policy/backup.js';

const withBackup = (options: Record<string, unknown>) => ({ 'default-options': { pool: 'rbd', size: '1GB', ...options } });

function rejected(value: unknown): PolicyError {
  try {
    validatePolicy(value);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return err as PolicyError;
  }
  throw new Error('policy was accepted');
}

describe('policy backup block', () => {
  it('types the defaults of a directory target and leaves them out of policies without backups', () => {
    const policy = validatePolicy(withBackup({ backups: true, backup: { frequency: '6h', keep: 4, target: { directory: '/var/backups/volplugin' } } }));
    expect(policyDefaults(policy).backup).toEqual({ backups: true, frequency: '6h', keep: 4, target: true });
    expect(policyDefaults(validatePolicy(withBackup({}))).backup).toBeUndefined();
    expect(policyDefaults(validatePolicy(withBackup({ backup: { target: { directory: '/b' } } }))).backup).toEqual({ backups: false, frequency: '24h', keep: 7, target: true });
  });

  it('takes tiers for keep, as a snapshot keep, and refuses tiers that keep nothing or are unknown', () => {
    const keep = { last: 3, daily: 7, weekly: 4, monthly: 6 };
    expect(policyDefaults(validatePolicy(withBackup({ backup: { keep, target: { directory: '/b' } } }))).backup?.keep).toEqual(keep);
    const none = rejected(withBackup({ backup: { keep: { daily: 0 }, target: { directory: '/b' } } }));
    expect(none.field).toBe('default-options.backup.keep');
    expect(none.message).toMatch(/keeps nothing/);
    expect(rejected(withBackup({ backup: { keep: { yearly: 2 }, target: { directory: '/b' } } })).field).toMatch(/backup\.keep/);
  });

  it('accepts a Ceph target and checks its fields', () => {
    validatePolicy(withBackup({ backup: { target: { ceph: { conf: '/etc/ceph/backup.conf', keyring: '/etc/ceph/b.keyring', client: 'backup', pool: 'backups' } } } }));
    expect(rejected(withBackup({ backup: { target: { ceph: { conf: 'backup.conf', pool: 'b' } } } })).field).toBe('default-options.backup.target.ceph.conf');
    expect(rejected(withBackup({ backup: { target: { ceph: { conf: '/etc/ceph/b.conf', client: 'client.x y', pool: 'b' } } } })).field).toBe('default-options.backup.target.ceph.client');
  });

  it('refuses backups without a target, relative or dotted paths, bad frequencies, keep 0', () => {
    const noTarget = rejected(withBackup({ backups: true }));
    expect(noTarget.field).toBe('default-options.backup.target');
    expect(noTarget.message).toMatch(/name a directory/);
    expect(rejected(withBackup({ backup: { target: { directory: 'backups' } } })).message).toMatch(/not an absolute path/);
    expect(rejected(withBackup({ backup: { target: { directory: '/var/../etc' } } })).message).toMatch(/not a plain path/);
    expect(rejected(withBackup({ backup: { frequency: 'daily', target: { directory: '/b' } } })).field).toBe('default-options.backup.frequency');
    expect(rejected(withBackup({ backup: { keep: 0, target: { directory: '/b' } } })).field).toMatch(/backup\.keep/);
    expect(rejected(withBackup({ backup: { target: { nfs: '/b' } } })).field).toMatch(/backup\.target/);
  });

  it('refuses a hook that is not a plain program name or has control characters', () => {
    expect(rejected(withBackup({ backup: { target: { directory: '/b' }, hook: ['/bin/sh', '-c', 'x'] } })).field).toBe('default-options.backup.hook');
    expect(rejected(withBackup({ backup: { target: { directory: '/b' }, hook: ['upload', 'a\nb'] } })).message).toMatch(/control characters/);
    expect(hookProblem(['upload-backup', '--bucket=b1'])).toBeNull();
    expect(hookProblem(['upload-backup'], ['rclone'])).toMatch(/not an allowed program \(--backup-hook-allow: rclone\)/);
  });

  it('appends volume, snapshot and file to the hook argv, never through a shell', () => {
    expect(hookArgv(['upload', '--x=$(id)'], ['upload'], { volume: 't/v', snapshot: 'vb-1', file: '/b/t/v/vb-1.diff' })).toEqual({
      program: 'upload',
      args: ['--x=$(id)', 't/v', 'vb-1', '/b/t/v/vb-1.diff'],
    });
    expect(() => hookArgv(['upload'], [], { volume: 't/v', snapshot: 's', file: 'f' })).toThrow(/not an allowed program/);
  });

  it('knows what lies inside an allowed directory', () => {
    expect(insideAllowed('/var/backups/volplugin/x', ['/var/backups/volplugin'])).toBe(true);
    expect(insideAllowed('/var/backups/volplugin', ['/var/backups/volplugin'])).toBe(true);
    expect(insideAllowed('/var/backups/volplugin2', ['/var/backups/volplugin'])).toBe(false);
    expect(insideAllowed('/etc', [])).toBe(false);
    expect(targetProblem({ directory: '/b//c' })).not.toBeNull();
  });
});

describe('backup driver and runtime options', () => {
  const policy = validatePolicy(withBackup({ backups: false, backup: { frequency: '24h', keep: 7, target: { directory: '/b' } } }));

  it('override the policy per volume and travel into the runtime options', () => {
    const options = resolveVolumeOptions(policy, { backups: 'true', 'backups.frequency': '1h', 'backups.keep': '3' });
    expect(options).toMatchObject({ backups: true, backup: { frequency: '1h', keep: 3 } });
    expect(runtimeOf(options)).toMatchObject({ backups: true, backup: { frequency: '1h', keep: 3 } });
    expect(resolveVolumeOptions(policy, {})).toMatchObject({ backups: false, backup: { frequency: '24h', keep: 7 } });
  });

  it('take tiers as text (backups.keep=last:3,daily:7) or as a JSON object, as snapshots.keep does; limits.snapshots does not bound them', () => {
    const limited = validatePolicy({ ...withBackup({ backup: { keep: 7, target: { directory: '/b' } } }), limits: { snapshots: 2 } });
    const options = resolveVolumeOptions(limited, { 'backups.keep': 'last:3,daily:7' });
    expect(options.backup).toEqual({ frequency: '24h', keep: { last: 3, daily: 7 } });
    expect(resolveVolumeOptions(policy, { 'backups.keep': { weekly: 4 } } as never).backup?.keep).toEqual({ weekly: 4 });
    expect(runtimeAsOptions(runtimeOf(options))['backups.keep']).toBe('last:3,daily:7');
    expect(conflictingOptions(options, { 'backups.keep': 'daily:7,last:3' })).toEqual([]);
    expect(conflictingOptions(options, { 'backups.keep': '3' })).toEqual(['backups.keep']);
    const bad = (() => {
      try {
        resolveVolumeOptions(policy, { 'backups.keep': 'last:3,yearly:2' });
      } catch (err) {
        return err as PolicyError;
      }
      throw new Error('accepted');
    })();
    expect(bad.field).toBe('backups.keep');
    expect(bad.message).toMatch(/unknown tier "yearly"/);
  });

  it('are refused when the tenant names no target, and absent for tenants without backups', () => {
    const plain = validatePolicy(withBackup({}));
    expect(() => resolveVolumeOptions(plain, { backups: 'true' })).toThrow(/names no backup target/);
    expect(resolveVolumeOptions(plain, {}).backups).toBeUndefined();
    expect(() => resolveVolumeOptions(policy, { 'backups.keep': '0' })).toThrow(PolicyError);
    expect(() => resolveVolumeOptions(policy, { 'backups.frequency': 'often' })).toThrow(PolicyError);
  });

  it('change at runtime and print as option keys', () => {
    const runtime = runtimeOf(resolveVolumeOptions(policy, {}));
    const next = applyRuntimeOptions(runtime, { backups: 'true', 'backups.keep': '2' });
    expect(next).toMatchObject({ backups: true, backup: { frequency: '24h', keep: 2 } });
    expect(runtimeAsOptions(next)).toMatchObject({ backups: 'true', 'backups.frequency': '24h', 'backups.keep': '2' });
    expect(applyRuntimeOptions(next, { 'backups.keep': 'hourly:24,daily:7' }).backup).toEqual({ frequency: '24h', keep: { hourly: 24, daily: 7 } });
    expect(runtimeAsOptions(runtimeOf(resolveVolumeOptions(validatePolicy(withBackup({})), {})))).not.toHaveProperty('backups');
  });
});
