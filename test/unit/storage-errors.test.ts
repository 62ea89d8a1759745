// How failures become RbdErrors without a cluster: the CLI backend's reading of `rbd`/`ceph`
// stderr and exit status, the addon's load-failure advice, the monitor map, argument checks.

import { describe, expect, it } from 'vitest';
import { cliError } from '../../src/storage/cli-run.js';
import { RbdError, errnoName, isRbdError } from '../../src/storage/errors.js';
import { parseMonDump } from '../../src/storage/monmap.js';
import { AddonLoadError, explainAddonLoadFailure } from '../../src/storage/native.js';
import { checkAddress, checkCreateOptions, featureMask, featureNames, qosFromMetadata } from '../../src/storage/validate.js';

const run = (exitCode: number, stderr: string) => ({ exitCode, stderr, timedOut: false, failed: true });

describe('RbdError', () => {
  it('names the errno, the operation and what it concerned', () => {
    const err = new RbdError({ errno: 2, op: 'rbd_open', pool: 'rbd', image: 'a', snapshot: 's', detail: 'No such file or directory' });
    expect(err).toMatchObject({ code: 'ENOENT', errno: -2, op: 'rbd_open', pool: 'rbd', image: 'a', snapshot: 's' });
    expect(err.message).toBe('rbd_open rbd/a@s: No such file or directory (ENOENT)');
    expect(isRbdError(err, 'ENOENT')).toBe(true);
    expect(errnoName(-16)).toBe('EBUSY');
  });
});

describe('CLI error mapping', () => {
  it('takes the errno from "rbd: ...: (N) text"', () => {
    const err = cliError('rbd', run(2, 'rbd: error opening image nope: (2) No such file or directory\n'), {
      op: 'rbd_stat',
      pool: 'rbd',
      image: 'nope',
    });
    expect(err).toMatchObject({ code: 'ENOENT', op: 'rbd_open', pool: 'rbd', image: 'nope' });
    expect(err.detail).toBe('error opening image nope: (2) No such file or directory');
  });

  it('names the pool when the pool is missing', () => {
    const err = cliError('rbd', run(2, "rbd: error opening pool 'nopool': (2) No such file or directory\n"), {
      op: 'rbd_create4',
      pool: 'nopool',
      image: 'x',
    });
    expect(err).toMatchObject({ code: 'ENOENT', op: 'rados_ioctx_create', pool: 'nopool', image: 'x' });
  });

  it('skips librbd’s timestamped log lines when choosing the message', () => {
    const stderr =
      '2026-11-22T12:25:47.823+0000 7ff8be29b380 -1 librbd::Operations: snapshot is protected\n' +
      "rbd: snapshot 's1' is protected from removal.\n";
    const err = cliError('rbd', run(16, stderr), { op: 'rbd_snap_remove', pool: 'rbd', image: 'a', snapshot: 's1' });
    expect(err).toMatchObject({ code: 'EBUSY', snapshot: 's1', detail: "snapshot 's1' is protected from removal." });
  });

  it('falls back to the exit status, which is the errno', () => {
    expect(cliError('rbd', run(39, 'rbd: image has snapshots\n'), { op: 'rbd_remove' }).code).toBe('ENOTEMPTY');
  });

  it('reads ceph’s "Error EXXX:" and its Python connect errors', () => {
    expect(cliError('ceph', run(22, 'Error EINVAL: invalid command\n'), { op: 'rados_mon_command' }).code).toBe('EINVAL');
    expect(cliError('ceph', run(1, "Error initializing cluster client: ObjectNotFound('RADOS object not found')\n"), { op: 'x' }).code).toBe(
      'ENOENT',
    );
    expect(cliError('ceph', run(1, "PermissionDeniedError('error calling connect')\n"), { op: 'x' }).code).toBe('EACCES');
  });

  it('reports a missing tool and a timeout', () => {
    expect(cliError('rbd', { stderr: '', timedOut: false, failed: true, code: 'ENOENT' }, { op: 'x' })).toMatchObject({
      code: 'ENOENT',
      op: 'spawn',
    });
    expect(cliError('rbd', { stderr: '', timedOut: true, failed: true }, { op: 'rbd_flatten' }).code).toBe('ETIMEDOUT');
  });
});

describe('addon load failures say what to do', () => {
  it('a missing librbd: install it, or use the CLI backend', () => {
    const err = explainAddonLoadFailure(
      '/x/volplugin_rbd.node',
      new Error('librbd.so.1: cannot open shared object file: No such file or directory'),
    );
    expect(err).toBeInstanceOf(AddonLoadError);
    expect(err.message).toMatch(/^librbd\.so\.1 not found: apt-get install librbd1, or run with the CLI backend \(--backend cli\)/);
  });

  it('a missing librados names librados2', () => {
    expect(explainAddonLoadFailure('/x', new Error('librados.so.2: cannot open shared object file: No such file or directory')).message).toMatch(
      /apt-get install librados2/,
    );
  });

  it('an addon built for another Node.js: rebuild', () => {
    expect(
      explainAddonLoadFailure('/x', new Error('was compiled against a different Node.js version using NODE_MODULE_VERSION 127')).message,
    ).toMatch(/pnpm run build:native/);
  });
});

describe('monitor map', () => {
  it('prefers the v1 address of each monitor (what krbd speaks by default)', () => {
    const dump = JSON.stringify({
      fsid: 'f',
      mons: [
        { public_addrs: { addrvec: [{ type: 'v2', addr: '10.0.0.1:3300' }, { type: 'v1', addr: '10.0.0.1:6789' }] } },
        { public_addrs: { addrvec: [{ type: 'v2', addr: '10.0.0.2:3300' }] } },
        { public_addr: '10.0.0.3:6789/0' },
      ],
    });
    expect(parseMonDump(dump)).toEqual({ fsid: 'f', monAddresses: ['10.0.0.1:6789', '10.0.0.2:3300', '10.0.0.3:6789'] });
  });
});

describe('argument checks', () => {
  it('features map to librbd bits and back in bit order', () => {
    expect(featureMask(['exclusive-lock', 'layering'])).toBe(5);
    expect(featureNames(0x3d)).toEqual(['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten']);
    expect(checkCreateOptions({ size: 1, features: ['exclusive-lock', 'layering'] }).features).toEqual(['layering', 'exclusive-lock']);
  });

  it('client addresses as Ceph prints them', () => {
    expect(checkAddress('a', '127.0.0.1:0/3141592653')).toBe('127.0.0.1:0/3141592653');
    expect(checkAddress('a', 'v1:10.1.2.3:6800/42')).toBeTruthy();
    expect(checkAddress('a', '[fd00::1]:0/7')).toBeTruthy();
    expect(() => checkAddress('a', '127.0.0.1')).toThrow(TypeError);
  });

  it('QoS metadata reads back only positive integers', () => {
    expect(qosFromMetadata({ conf_rbd_qos_iops_limit: '5', conf_rbd_qos_bps_limit: '0', conf_rbd_qos_read_iops_limit: 'x', other: '1' })).toEqual({
      iops: 5,
    });
  });
});
