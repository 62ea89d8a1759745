// The daemon shell (src/common/): the flags volmaster, volplugin and volsupervisor share are parsed,
// defaulted and checked the same in all three, and the shutdown on SIGTERM/SIGINT runs its steps in
// order, is bounded, and exits at once on a second signal.
import { EventEmitter } from 'node:events';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { stopOnSignals, type StopStep } from '../../src/common/daemon.js';
import type { DaemonConfig } from '../../src/common/flags.js';
import * as master from '../../src/master/config.js';
import * as plugin from '../../src/plugin/config.js';
import * as supervisor from '../../src/supervisor/config.js';

const daemons = [
  { name: 'volmaster', parse: master.parseConfig, command: master.buildCommand },
  { name: 'volplugin', parse: plugin.parseConfig, command: plugin.buildCommand },
  { name: 'volsupervisor', parse: supervisor.parseConfig, command: supervisor.buildCommand },
];

const shared = (c: DaemonConfig): DaemonConfig => ({
  etcd: c.etcd,
  etcdSecurity: c.etcdSecurity,
  prefix: c.prefix,
  backend: c.backend,
  cephConf: c.cephConf,
  cephKeyring: c.cephKeyring,
  cephId: c.cephId,
  debug: c.debug,
});

describe('shared flags', () => {
  it.each(daemons)('$name: defaults', ({ parse }) => {
    expect(shared(parse([], {}))).toEqual({
      etcd: ['http://127.0.0.1:2379'],
      etcdSecurity: { ca: null, cert: null, key: null, user: null, passwordFile: null },
      prefix: '/volplugin',
      backend: 'native',
      cephConf: null,
      cephKeyring: null,
      cephId: 'admin',
      debug: false,
    });
  });

  it.each(daemons)('$name: environment defaults (VOLPLUGIN_ETCD, VOLPLUGIN_PREFIX, CEPH_CONF, VOLPLUGIN_CEPH_ID, VOLPLUGIN_CEPH_KEYRING)', ({ parse }) => {
    const env = { VOLPLUGIN_ETCD: 'http://a:1,http://b:2', VOLPLUGIN_PREFIX: '/other', CEPH_CONF: '/c.conf', VOLPLUGIN_CEPH_ID: 'volplugin', VOLPLUGIN_CEPH_KEYRING: '/k.keyring' };
    expect(shared(parse([], env))).toMatchObject({ etcd: ['http://a:1', 'http://b:2'], prefix: '/other', cephConf: '/c.conf', cephId: 'volplugin', cephKeyring: '/k.keyring' });
    // Flags win over the environment; --etcd replaces the default instead of adding to it.
    expect(shared(parse(['--etcd', 'http://x:1', '--prefix', '/p', '--ceph-conf', '/d.conf', '--ceph-id', 'other', '--ceph-keyring', '/o.keyring'], env))).toMatchObject({
      etcd: ['http://x:1'],
      prefix: '/p',
      cephConf: '/d.conf',
      cephId: 'other',
      cephKeyring: '/o.keyring',
    });
  });

  it('the same command line gives the same shared config in all three', () => {
    const argv = [
      '--etcd', 'http://e1:2379,http://e2:2379', '--etcd', 'http://e3:2379/', '--prefix', '/t1', '--backend', 'cli',
      '--ceph-conf', 'rel/ceph.conf', '--ceph-keyring', 'k/keyring', '--ceph-id', 'volplugin', '--debug',
    ].map((a) => a.replaceAll('http://', 'https://'));
    argv.push('--etcd-ca', 'pki/ca.pem', '--etcd-cert', 'pki/client.pem', '--etcd-key', 'pki/client-key.pem', '--etcd-user', 'volplugin', '--etcd-password-file', 'pki/pw');
    const configs = daemons.map(({ parse }) => shared(parse(argv, {})));
    expect(configs[0]).toEqual({
      etcd: ['https://e1:2379', 'https://e2:2379', 'https://e3:2379/'],
      etcdSecurity: {
        ca: path.resolve('pki/ca.pem'),
        cert: path.resolve('pki/client.pem'),
        key: path.resolve('pki/client-key.pem'),
        user: 'volplugin',
        passwordFile: path.resolve('pki/pw'),
      },
      prefix: '/t1',
      backend: 'cli',
      cephConf: path.resolve('rel/ceph.conf'),
      cephKeyring: path.resolve('k/keyring'),
      cephId: 'volplugin',
      debug: true,
    });
    expect(configs[1]).toEqual(configs[0]);
    expect(configs[2]).toEqual(configs[0]);
  });

  it.each(daemons)('$name: refuses bad shared values with the same reason', ({ parse }) => {
    expect(() => parse(['--etcd', '127.0.0.1:2379'], {})).toThrow(/^--etcd "127.0.0.1:2379" is not a URL like http:\/\/127.0.0.1:2379$/);
    expect(() => parse(['--etcd', 'http://h:1/path'], {})).toThrow(/not a URL/);
    expect(() => parse([], { VOLPLUGIN_ETCD: 'h:1' })).toThrow(/^VOLPLUGIN_ETCD "h:1" is not a URL/);
    expect(() => parse(['--prefix', 'volplugin'], {})).toThrow(/^--prefix "volplugin" must start with "\/"$/);
    expect(() => parse(['--backend', 'memory'], {})).toThrow(/Allowed choices are native, cli/);
  });

  it.each(daemons)('$name: etcd TLS and user come from flags or the environment, and go together', ({ parse }) => {
    const env = {
      VOLPLUGIN_ETCD: 'https://e:2379',
      VOLPLUGIN_ETCD_CA: '/p/ca.pem',
      VOLPLUGIN_ETCD_CERT: '/p/c.pem',
      VOLPLUGIN_ETCD_KEY: '/p/k.pem',
      VOLPLUGIN_ETCD_USER: 'u',
      VOLPLUGIN_ETCD_PASSWORD_FILE: '/p/pw',
    };
    expect(parse([], env).etcdSecurity).toEqual({ ca: '/p/ca.pem', cert: '/p/c.pem', key: '/p/k.pem', user: 'u', passwordFile: '/p/pw' });
    expect(parse(['--etcd-user', 'v', '--etcd-password-file', '/q'], env).etcdSecurity).toMatchObject({ user: 'v', passwordFile: '/q' });
    const https = ['--etcd', 'https://e:2379'];
    expect(() => parse([...https, '--etcd-cert', '/c.pem'], {})).toThrow(/^--etcd-cert needs --etcd-key/);
    expect(() => parse([...https, '--etcd-key', '/k.pem'], {})).toThrow(/^--etcd-key needs --etcd-cert/);
    expect(() => parse([...https, '--etcd-user', 'u'], {})).toThrow(/^--etcd-user needs --etcd-password-file \(the password is read from a file, never given on the command line\)/);
    expect(() => parse([...https, '--etcd-password-file', '/pw'], {})).toThrow(/^--etcd-password-file needs --etcd-user/);
    expect(() => parse(['--etcd', 'http://e:2379', '--etcd-ca', '/ca.pem'], {})).toThrow(/^--etcd-ca \(or its VOLPLUGIN_ETCD_\* variable\) is for TLS, but http:\/\/e:2379 is plain http: write https:\/\//);
    expect(() => parse(['--etcd', 'http://e:2379', '--etcd-user', 'u', '--etcd-password-file', '/pw'], {})).toThrow(/password would cross the network in clear to http:\/\/e:2379/);
    // On loopback a password over plain http stays on this machine.
    expect(parse(['--etcd', 'http://127.0.0.1:2379', '--etcd-user', 'u', '--etcd-password-file', '/pw'], {}).etcdSecurity.user).toBe('u');
  });

  it.each(daemons)('$name: --help lists every shared flag with its environment variable', ({ command }) => {
    const help = command({}).helpInformation();
    const flags = ['--etcd <url>', '--etcd-ca <path>', '--etcd-cert <path>', '--etcd-key <path>', '--etcd-user <name>', '--etcd-password-file <path>'];
    for (const flag of [...flags, '--prefix <key>', '--backend <kind>', '--ceph-conf <path>', '--ceph-keyring <path>', '--ceph-id <id>', '--debug']) {
      expect(help).toContain(flag);
    }
    const variables = ['VOLPLUGIN_ETCD', 'VOLPLUGIN_ETCD_CA', 'VOLPLUGIN_ETCD_CERT', 'VOLPLUGIN_ETCD_KEY', 'VOLPLUGIN_ETCD_USER', 'VOLPLUGIN_ETCD_PASSWORD_FILE'];
    for (const variable of [...variables, 'VOLPLUGIN_PREFIX', 'CEPH_CONF', 'VOLPLUGIN_CEPH_ID', 'VOLPLUGIN_CEPH_KEYRING']) expect(help).toContain(variable);
  });
});

describe('stopOnSignals', () => {
  function harness(steps: StopStep[], timeoutMs = 1000) {
    const lines: Array<{ level: number; msg: string }> = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
    const signals = new EventEmitter();
    const exits: number[] = [];
    let exited: (code: number) => void = () => undefined;
    const exit = new Promise<number>((resolve) => (exited = resolve));
    stopOnSignals({ log, steps, timeoutMs, signals, exit: (code) => (exits.push(code), exited(code)) });
    return { signals, exits, exit, messages: () => lines.map((l) => l.msg) };
  }

  it('runs the steps in order on SIGTERM, logs "stopped" and exits 0', async () => {
    const order: string[] = [];
    const step = (what: string): StopStep => ({ what, run: async () => void order.push(what) });
    const h = harness([step('closing a'), step('closing b')]);
    h.signals.emit('SIGTERM');
    expect(await h.exit).toBe(0);
    expect(order).toEqual(['closing a', 'closing b']);
    expect(h.messages()).toEqual(['stopping: closing a, then closing b', 'stopped']);
  });

  it('a failing step is logged, the later ones still run, and the exit code is 1', async () => {
    let closed = false;
    const h = harness([
      { what: 'stopping the server', run: () => Promise.reject(new Error('boom')) },
      { what: 'closing Ceph', run: async () => void (closed = true) },
    ]);
    h.signals.emit('SIGINT');
    expect(await h.exit).toBe(1);
    expect(closed).toBe(true);
    expect(h.messages()).toContain('stopping the server failed');
  });

  it('is bounded: a step that never ends makes it exit 1 after the bound, naming the step', async () => {
    const started = Date.now();
    const h = harness([{ what: 'closing etcd', run: () => new Promise(() => undefined) }], 100);
    h.signals.emit('SIGTERM');
    expect(await h.exit).toBe(1);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(h.messages()).toContain('closing etcd did not finish within 0.1 s: exiting anyway');
    expect(h.exits).toEqual([1]);
  });

  it("a step's own bound fails that step only", async () => {
    let closed = false;
    const h = harness([
      { what: 'closing Ceph', run: () => new Promise(() => undefined), timeoutMs: 50 },
      { what: 'closing etcd', run: async () => void (closed = true) },
    ]);
    h.signals.emit('SIGTERM');
    expect(await h.exit).toBe(1);
    expect(closed).toBe(true);
    expect(h.messages()).toContain('closing Ceph failed');
  });

  it('a second signal exits 1 at once', async () => {
    const h = harness([{ what: 'finishing requests', run: () => new Promise(() => undefined) }], 2000);
    h.signals.emit('SIGTERM');
    h.signals.emit('SIGTERM');
    expect(await h.exit).toBe(1);
    expect(h.messages()).toContain('second signal: exiting now');
  });
});

describe('volmaster: no open API beyond loopback', () => {
  it('listens on loopback by default, open to this machine only', () => {
    expect(master.parseConfig([], {})).toMatchObject({ host: '127.0.0.1', port: 9005, tokenFile: null, insecure: false, tlsCert: null });
  });

  it('refuses to listen beyond loopback without --token-file, naming both ways out', () => {
    expect(() => master.parseConfig(['--listen', '0.0.0.0:9005'], {})).toThrow(/--listen 0.0.0.0:9005 reaches beyond this machine and no --token-file is given.*--token-file FILE.*--insecure/);
    expect(() => master.parseConfig(['--listen', ':9005'], {})).toThrow(/no --token-file/);
    expect(master.parseConfig(['--listen', '0.0.0.0:9005', '--token-file', 'tok'], {})).toMatchObject({ host: '0.0.0.0', tokenFile: expect.stringMatching(/\/tok$/) });
    expect(master.parseConfig(['--listen', '0.0.0.0:9005', '--insecure'], {})).toMatchObject({ host: '0.0.0.0', insecure: true });
    expect(() => master.parseConfig(['--insecure', '--token-file', 'tok'], {})).toThrow(/exclude each other/);
  });

  it('takes a TLS certificate and key together, or neither', () => {
    expect(() => master.parseConfig(['--tls-cert', 'c.pem'], {})).toThrow(/give both --tls-cert and --tls-key \(only --tls-cert was given\)/);
    expect(() => master.parseConfig(['--tls-key', 'k.pem'], {})).toThrow(/only --tls-key/);
    expect(master.parseConfig(['--tls-cert', 'c.pem', '--tls-key', 'k.pem'], {})).toMatchObject({ tlsCert: expect.stringMatching(/\/c\.pem$/), tlsKey: expect.stringMatching(/\/k\.pem$/) });
  });
});

describe('volplugin --mkfs-allow', () => {
  it('defaults to the three mkfs programs; the flag, else VOLPLUGIN_MKFS_ALLOW, replaces them', () => {
    expect(plugin.parseConfig([], {}).mkfsAllow).toEqual(['mkfs.ext4', 'mkfs.xfs', 'mkfs.btrfs']);
    expect(plugin.parseConfig([], { VOLPLUGIN_MKFS_ALLOW: 'mkfs.ext4' }).mkfsAllow).toEqual(['mkfs.ext4']);
    expect(plugin.parseConfig(['--mkfs-allow', 'mkfs.xfs,mkfs.f2fs', '--mkfs-allow', 'mkfs.ext4'], { VOLPLUGIN_MKFS_ALLOW: 'x' }).mkfsAllow).toEqual([
      'mkfs.xfs',
      'mkfs.f2fs',
      'mkfs.ext4',
    ]);
  });

  it('takes program names only, never paths', () => {
    expect(() => plugin.parseConfig(['--mkfs-allow', '/sbin/mkfs.ext4'], {})).toThrow(/^--mkfs-allow: "\/sbin\/mkfs.ext4" is not a program name/);
    expect(() => plugin.parseConfig([], { VOLPLUGIN_MKFS_ALLOW: 'sh -c' })).toThrow(/^VOLPLUGIN_MKFS_ALLOW: "sh -c" is not a program name/);
    expect(() => plugin.parseConfig(['--mkfs-allow', ','], {})).toThrow(/^--mkfs-allow names no program/);
  });
});

describe('volsupervisor --concurrency', () => {
  it('defaults to many jobs at once with the addon (snapshots wait on monitor commits), few with the CLI; the flag wins', () => {
    expect(supervisor.parseConfig([], {}).concurrency).toBe(supervisor.DEFAULT_SUPERVISOR_CONCURRENCY);
    expect(supervisor.DEFAULT_SUPERVISOR_CONCURRENCY).toBeGreaterThanOrEqual(64);
    expect(supervisor.parseConfig(['--backend', 'cli'], {}).concurrency).toBe(8);
    expect(supervisor.parseConfig(['--backend', 'cli', '--concurrency', '3'], {}).concurrency).toBe(3);
    expect(() => supervisor.parseConfig(['--concurrency', '0'], {})).toThrow(/--concurrency/);
  });
});
