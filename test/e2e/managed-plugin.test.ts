// volplugin as a Docker managed plugin (docs/managed-plugin.md) on the test dockerd: scripts/plugin.sh
// (what `make plugin` runs) builds it from the image and `docker plugin create`s it; it is configured
// with `docker plugin set` (master, etcd, token, Ceph config), enabled, serves the README's first
// session (tenant upload, `docker volume create`, a container writes, another reads it back), and is
// disabled and removed with nothing left behind: no plugin, no mount, no loop device, no rbd-fuse
// client (no watcher on the image), no mount lock.
//
// Cost: the image is built by scripts/image.sh as in image.test.ts (the layer cache makes the second
// of the two builds in a run a few seconds). The plugin's directory (the image's file system, 427
// MiB) is kept under the test root and exported again only when the image's layers change; `docker
// plugin create` from it, enable, the session, disable and remove take the rest: about 90 s under
// load with the directory cached (docs/managed-plugin.md has the numbers).
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanUpRun, leftoversBelow, rbd, testPool, watchers } from '../helpers/plugin-ceph.js';
import { startMaster, uniq, waitFor, type TestMaster } from '../helpers/plugin-harness.js';
import { repoRoot, testRoot } from '../helpers/sandbox.js';

const exec = promisify(execFile);
const run = uniq();
const tenant = `mp${run}`;
const volume = `${tenant}/foo`;
const pool = testPool();
// Plugin names are the engine's (the test dockerd is this run's own); the offset keeps two
// checkouts' names apart in logs.
const offset = process.env.VOLPLUGIN_TEST_PORT_OFFSET;
const PLUGIN = `volplugin-e2e${offset ? `-${offset}` : ''}:latest`;
const root = path.join(process.env.VOLPLUGIN_TEST_ROOT ?? testRoot, `managed-plugin-${run}`);
/** The host side of the plugin's settable mounts. */
const hostDirs = { ceph: path.join(root, 'ceph'), config: path.join(root, 'config'), state: path.join(root, 'state') };

const dockerHost = () => {
  const host = process.env.VOLPLUGIN_TEST_DOCKER;
  if (!host) throw new Error('VOLPLUGIN_TEST_DOCKER is not set: run through vitest (the global setup starts dockerd)');
  return host;
};

async function docker(...args: string[]): Promise<string> {
  try {
    const { stdout } = await exec('docker', ['-H', dockerHost(), ...args], { timeout: 180_000, maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`docker ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}
const quietly = (...args: string[]) => docker(...args).catch(() => '');

/** The plugin's own log lines, which dockerd writes into its log (for failure messages). */
async function pluginLog(id: string): Promise<string> {
  const log = await readFile(path.join(testRoot, 'docker', 'dockerd.log'), 'utf8').catch(() => '');
  return `--- dockerd log of plugin ${id.slice(0, 12)} ---\n${log.split('\n').filter((l) => l.includes(id)).slice(-30).join('\n')}`;
}

let master: TestMaster;
let pluginId = '';
let buildSeconds = 0;
let buildOutput = '';

beforeAll(async () => {
  const started = Date.now();
  // What `make plugin` runs, into the test dockerd; the directory is cached under the test root.
  try {
    const { stderr } = await exec(path.join(repoRoot, 'scripts', 'plugin.sh'), [], {
      env: { ...process.env, DOCKER_HOST: dockerHost(), VOLPLUGIN_PLUGIN: PLUGIN, VOLPLUGIN_PLUGIN_DIR: path.join(testRoot, 'managed-plugin-dir') },
      timeout: 590_000,
      maxBuffer: 16 << 20,
    });
    buildOutput = stderr;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`scripts/plugin.sh failed:\n${e.stderr || e.message}`);
  }
  buildSeconds = (Date.now() - started) / 1000;
  pluginId = (await docker('plugin', 'inspect', '-f', '{{.Id}}', PLUGIN)).trim();

  master = await startMaster(root, `/volplugin-managed-${run}`);
  // The host's side of the plugin's mounts, as a Docker host has them in /etc/ceph, /etc/volplugin
  // and /var/lib/volplugin: a client ceph.conf and the volplugin key; the host's own token.
  await mkdir(hostDirs.ceph, { recursive: true });
  await mkdir(hostDirs.config, { recursive: true });
  await mkdir(hostDirs.state, { recursive: true });
  const testConf = await readFile(process.env.CEPH_CONF!, 'utf8');
  const monHost = /^mon host = (.+)$/m.exec(testConf)?.[1];
  if (!monHost) throw new Error(`no "mon host" in ${process.env.CEPH_CONF}`);
  await writeFile(path.join(hostDirs.ceph, 'ceph.conf'), `[global]\nmon host = ${monHost}\nauth client required = cephx\n`);
  await copyFile(path.join(path.dirname(process.env.CEPH_CONF!), 'ceph.client.volplugin.keyring'), path.join(hostDirs.ceph, 'ceph.client.volplugin.keyring'));
  const hostToken = await master.api.createToken(`host-${run}`, 'host');
  await writeFile(path.join(hostDirs.config, 'host-token'), `${hostToken.token}\n`, { mode: 0o600 });
}, 600_000);

afterAll(async () => {
  // Whatever a failed test left: the volume while the plugin still answers, then the plugin. (Only
  // then: dockerd looks a volume of an unknown driver up in every socket in /run/docker/plugins,
  // 15 s for each dead one that other checkouts left there.)
  if (await docker('plugin', 'inspect', PLUGIN).then(() => true, () => false)) {
    await quietly('volume', 'rm', '-f', volume);
    await quietly('plugin', 'disable', '-f', PLUGIN);
    await quietly('plugin', 'rm', '-f', PLUGIN);
  }
  await master?.api.removeVolume(tenant, 'foo').catch(() => undefined);
  await master?.stop();
  expect(await cleanUpRun({ tenant, root, pool })).toEqual([]);
}, 240_000);

describe('the managed plugin on the real dockerd', () => {
  it('make plugin (scripts/plugin.sh) creates it, disabled, with the config it ships', async () => {
    console.log(`managed plugin: scripts/plugin.sh took ${buildSeconds.toFixed(0)} s\n${buildOutput.trim()}`);
    const inspect = JSON.parse(await docker('plugin', 'inspect', PLUGIN)) as Array<{
      Enabled: boolean;
      Config: { Interface: { Types: string[]; Socket: string }; Network: { Type: string }; PropagatedMount: string; Linux: { Capabilities: string[] } };
    }>;
    const shipped = JSON.parse(await readFile(path.join(repoRoot, 'docker', 'plugin', 'config.json'), 'utf8')) as { propagatedMount: string };
    expect(inspect[0]).toMatchObject({
      Enabled: false,
      Config: {
        Interface: { Types: ['docker.volumedriver/1.0'], Socket: 'volplugin.sock' },
        Network: { Type: 'host' },
        PropagatedMount: shipped.propagatedMount,
        Linux: { Capabilities: expect.arrayContaining(['CAP_SYS_ADMIN']) },
      },
    });
  });

  it('docker plugin set: master, etcd, token and Ceph config; then enable', async () => {
    await docker(
      'plugin', 'set', PLUGIN,
      `VOLPLUGIN_MASTER=${master.address}`,
      `VOLPLUGIN_ETCD=${process.env.VOLPLUGIN_TEST_ETCD}`,
      `VOLPLUGIN_PREFIX=${master.prefix}`,
      'VOLPLUGIN_TOKEN_FILE=/etc/volplugin/host-token',
      'CEPH_CONF=/etc/ceph/ceph.conf',
      'VOLPLUGIN_CEPH_ID=volplugin',
      `ceph.source=${hostDirs.ceph}`,
      `config.source=${hostDirs.config}`,
      `state.source=${hostDirs.state}`,
      `docker-socket.source=${dockerHost().replace(/^unix:\/\//, '')}`,
      'args=--host-label managed-e2e --converge-seconds 2',
    );
    const env = await docker('plugin', 'inspect', '-f', '{{json .Settings.Env}}', PLUGIN);
    expect(JSON.parse(env)).toContain(`VOLPLUGIN_MASTER=${master.address}`);
    try {
      await docker('plugin', 'enable', PLUGIN);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await pluginLog(pluginId)}`);
    }
    expect((await docker('plugin', 'inspect', '-f', '{{.Enabled}}', PLUGIN)).trim()).toBe('true');
    // It registered with the cluster under the label it was given.
    await waitFor('the plugin to report its host', async () => (await master.api.listHosts()).some((h) => h.host === 'managed-e2e'), 30_000);
  });

  it("serves the README's first session: create a volume, a container writes, another reads it back", async () => {
    const policy = await readFile(path.join(repoRoot, 'examples', 'tenant1.json'), 'utf8');
    await master.api.uploadTenant(tenant, policy);
    try {
      expect((await docker('volume', 'create', '-d', PLUGIN, '--name', volume)).trim()).toBe(volume);
      const wrote = await docker('run', '--rm', '--network', 'none', '-v', `${volume}:/mnt`, 'busybox', 'sh', '-c', 'echo hello > /mnt/hello; mount | grep " /mnt "');
      expect(wrote).toMatch(/^\/dev\/loop\d+ on \/mnt type ext4/m);
      expect((await docker('run', '--rm', '--network', 'none', '-v', `${volume}:/mnt`, 'busybox', 'cat', '/mnt/hello')).trim()).toBe('hello');
      expect((await rbd('ls', pool)).split('\n')).toContain(`${tenant}.foo`);
      expect((await docker('volume', 'rm', volume)).trim()).toBe(volume);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await pluginLog(pluginId)}`);
    }
  });

  it('disable and remove leave nothing behind: no plugin, no mount, no mapping, no lock', async () => {
    await docker('plugin', 'disable', PLUGIN);
    await docker('plugin', 'rm', PLUGIN);
    expect((await docker('plugin', 'ls', '--format', '{{.Name}}')).split('\n')).not.toContain(PLUGIN);
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    expect(mountinfo.split('\n').filter((l) => l.includes(pluginId))).toEqual([]);
    expect(await leftoversBelow(root)).toEqual([]);
    const { stdout: loops } = await exec('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE']);
    expect(loops.split('\n').filter((l) => l.includes(`${tenant}.foo`))).toEqual([]);
    const { stdout: procs } = await exec('ps', ['-eo', 'args']);
    expect(procs.split('\n').filter((l) => l.startsWith('rbd-fuse') && l.includes(hostDirs.state))).toEqual([]);
    expect(await watchers(pool, `${tenant}.foo`)).toEqual([]);
    expect(await master.api.listMounts()).toEqual([]);
  });
});
