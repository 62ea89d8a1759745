// The container image (docker/Dockerfile, built by scripts/image.sh exactly as `make image` does)
// against the test services: it builds into the test dockerd; volcli runs in it; the librbd addon
// loads in it and reaches the test Ceph (the native backend, not the CLI one); volmaster from the
// image serves the test etcd and Ceph; and volplugin from the image serves the seed flow to the test
// dockerd (create a volume, one container writes, another reads).
//
// The build runs once per test run. Its base (Debian bookworm + this machine's Node) is cached in
// /var/cache/volplugin and dockerd keeps the layer cache, so a run rebuilds only changed layers
// (the file then takes about a minute). A cold build (new test dockerd after `make clean`) installs
// every package again: 2-4 minutes, plus one debootstrap per machine; the hook allows 10.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, testRoot } from '../helpers/sandbox.js';
import { freePort } from '../helpers/net.js';

const IMAGE = 'volplugin:latest';
// Sockets in /run/docker/plugins are machine-wide: a second checkout (VOLPLUGIN_TEST_PORT_OFFSET)
// gets its own name.
const PLUGIN = process.env.VOLPLUGIN_TEST_PORT_OFFSET ? `volplugin-img-${process.env.VOLPLUGIN_TEST_PORT_OFFSET}` : 'volplugin-img';
const TENANT = 'imgtest';
const SOCKET_DIR = '/run/docker/plugins';
// Its own etcd prefix: the records of this file's stack stay apart from other tests' in the shared etcd.
const PREFIX = '/volplugin-image-e2e';
// Under testRoot: `scripts/sandbox.sh down` cleans up mounts and loop devices there after a crash.
const work = path.join(testRoot, 'image-e2e');
const mountRoot = path.join(work, 'mnt');
const stateDir = path.join(work, 'state');
const tokenFile = path.join(work, 'token');

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: test/helpers/global-setup.ts sets it for the e2e project`);
  return value;
};
const dockerHost = () => env('VOLPLUGIN_TEST_DOCKER');
const cephConf = () => env('CEPH_CONF');
const cephDir = () => path.dirname(cephConf());
const etcdUrl = () => env('VOLPLUGIN_TEST_ETCD');
const pool = () => process.env.VOLPLUGIN_TEST_POOL ?? 'rbd';

/** `docker -H <test dockerd> ARGS`; fails with docker's output in the message. */
async function docker(args: string[], options: { timeout?: number; input?: string } = {}) {
  const result = await execa('docker', ['-H', dockerHost(), ...args], {
    timeout: options.timeout ?? 90_000,
    input: options.input,
    reject: false,
    all: true,
  });
  if (result.exitCode !== 0 || result.timedOut) {
    throw new Error(`docker ${args.join(' ')} failed (${result.timedOut ? 'timed out' : `exit ${result.exitCode}`}):\n${result.all}`);
  }
  return result;
}

/** docker logs of a container, for failure messages. */
async function logsOf(container: string): Promise<string> {
  const r = await execa('docker', ['-H', dockerHost(), 'logs', '--tail', '40', container], { reject: false, all: true });
  return `--- docker logs ${container} ---\n${r.all}`;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, onTimeout: () => Promise<string>) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} within ${timeoutMs / 1000} s\n${await onTimeout()}`);
}


const suffix = `${process.pid}`;
const masterName = `volplugin-img-master-${suffix}`;
const pluginName = `volplugin-img-plugin-${suffix}`;
let masterPort = 0;
let buildSeconds = 0;
let buildOutput = '';
let sharedMountMade = false;

/** Ceph's directory read-only at the same path: ceph.conf names the keyring by its path. */
const cephMount = () => ['-v', `${cephDir()}:${cephDir()}:ro`];
/**
 * A component's own cephx key (scripts/sandbox.sh makes them): the admin keyring is root's only,
 * volmaster's is readable by the image's group 10001.
 */
const cephKeyring = (id: 'volmaster' | 'volplugin') => path.join(cephDir(), `ceph.client.${id}.keyring`);
const cephFlags = (id: 'volmaster' | 'volplugin') => ['--ceph-conf', cephConf(), '--ceph-id', id, '--ceph-keyring', cephKeyring(id)];
const volcli = (args: string[], input?: string) =>
  docker(
    ['run', '--rm', ...(input === undefined ? [] : ['-i']), '--network', 'host', '-v', `${work}:${work}:ro`, IMAGE,
      'volcli', '--master', `127.0.0.1:${masterPort}`, '--token-file', tokenFile, ...args],
    { input },
  );

beforeAll(async () => {
  const started = Date.now();
  const result = await execa(path.join(repoRoot, 'scripts', 'image.sh'), [], {
    env: { DOCKER_HOST: dockerHost(), VOLPLUGIN_IMAGE: IMAGE },
    timeout: 590_000,
    reject: false,
    all: true,
  });
  if (result.exitCode !== 0 || result.timedOut) {
    throw new Error(`scripts/image.sh failed (${result.timedOut ? 'timed out' : `exit ${result.exitCode}`}):\n${result.all}`);
  }
  buildOutput = result.all ?? '';
  buildSeconds = (Date.now() - started) / 1000;

  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(mountRoot, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  // volmaster and volcli run as uid 10001: the token file is theirs, mode 600 (a token file others
  // can read is refused); volplugin runs as root and reads it all the same.
  writeFileSync(tokenFile, `image-e2e-${suffix}-${Date.now()}\n`, { mode: 0o600 });
  chmodSync(tokenFile, 0o600); // the mode above applies only to a new file, not one an earlier run left
  chownSync(tokenFile, 10001, 10001);
}, 600_000);

afterAll(async () => {
  const quiet = (args: string[], timeout = 60_000) =>
    execa('docker', ['-H', dockerHost(), ...args], { reject: false, timeout });
  // Volumes first, while the plugin still answers (dockerd waits 15 s per call on a missing plugin).
  const vols = await quiet(['volume', 'ls', '-q', '--filter', `driver=${PLUGIN}`]);
  for (const v of (vols.stdout ?? '').split('\n').filter(Boolean)) await quiet(['volume', 'rm', '-f', v]);
  await quiet(['stop', '-t', '30', pluginName], 60_000);
  await quiet(['rm', '-f', pluginName]);
  rmSync(path.join(SOCKET_DIR, `${PLUGIN}.sock`), { force: true });
  if (masterPort) {
    // Whatever a failed test left behind in etcd and Ceph.
    for (const v of ['seed', 'from-master']) await volcli(['volume', 'remove', `${TENANT}/${v}`]).catch(() => undefined);
    await volcli(['tenant', 'delete', TENANT]).catch(() => undefined);
  }
  await quiet(['stop', '-t', '30', masterName], 60_000);
  await quiet(['rm', '-f', masterName]);
  if (sharedMountMade) await execa('umount', ['-l', mountRoot], { reject: false });
  // `docker volume rm` keeps the data of a non-ephemeral volume: drop this file's images.
  for (const image of [`${TENANT}.seed`, `${TENANT}.from-master`]) {
    await execa('rbd', ['-c', cephConf(), 'rm', `${pool()}/${image}`], { reject: false, timeout: 60_000 });
  }
}, 240_000);

describe('the volplugin image', () => {
  it('builds and is tagged volplugin:latest, running as uid 10001 by default', async () => {
    const { stdout } = await docker(['image', 'inspect', '-f', '{{.Size}} {{.Config.User}} {{json .Config.Entrypoint}}', IMAGE]);
    const [size, user, entrypoint] = stdout.trim().split(' ');
    console.log(`image: ${IMAGE} built in ${buildSeconds.toFixed(0)} s, ${(Number(size) / 1e6).toFixed(0)} MB\n${buildOutput.trim()}`);
    expect(Number(size)).toBeGreaterThan(0);
    expect(user).toBe('volplugin');
    expect(entrypoint).toContain('volplugin-entrypoint');
    const id = await docker(['run', '--rm', '--network', 'none', IMAGE, 'id', '-u']);
    expect(id.stdout.trim()).toBe('10001');
  });

  it('runs volcli --help with no service around', async () => {
    const { stdout } = await docker(['run', '--rm', '--network', 'none', IMAGE, 'volcli', '--help']);
    expect(stdout).toMatch(/^Usage: volcli/m);
    expect(stdout).toContain('tenant');
    expect(stdout).toContain('volume');
  });

  it('dispatches every component: volmaster, volplugin and volsupervisor --help', async () => {
    const { stdout } = await docker([
      'run', '--rm', '--network', 'none', '--entrypoint', 'sh', IMAGE, '-c',
      'for c in volmaster volplugin volsupervisor; do volplugin-entrypoint $c --help | head -n 1; done',
    ]);
    expect(stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^Usage: volmaster/),
      expect.stringMatching(/^Usage: volplugin/),
      expect.stringMatching(/^Usage: volsupervisor/),
    ]);
  });

  it('has the tools the mappers and filesystems need', async () => {
    const tools = ['rbd', 'ceph', 'rbd-fuse', 'fusermount', 'losetup', 'mount', 'umount', 'blkid', 'mkfs.ext4', 'mkfs.xfs', 'mkfs.btrfs', 'tini'];
    const { stdout } = await docker([
      'run', '--rm', '--network', 'none', IMAGE, 'sh', '-c', `for t in ${tools.join(' ')}; do command -v $t >/dev/null || echo "missing $t"; done; echo checked`,
    ]);
    expect(stdout.trim()).toBe('checked');
  });

  it('loads the librbd addon (native backend) and reaches the test Ceph through it', async () => {
    const script = `
      const { openStorage } = await import('/opt/volplugin/dist/storage/index.js');
      const storage = await openStorage('native', { confPath: ${JSON.stringify(cephConf())}, clientId: 'volmaster', keyring: ${JSON.stringify(cephKeyring('volmaster'))} });
      const info = await storage.clusterInfo();
      const images = await storage.listImages(${JSON.stringify(pool())});
      console.log(JSON.stringify({ kind: storage.kind, fsid: info.fsid, images: Array.isArray(images) }));
      await storage.close();
    `;
    const { stdout } = await docker(['run', '--rm', '--network', 'host', ...cephMount(), IMAGE, 'node', '--input-type=module', '-e', script]);
    const fsid = /^fsid = (\S+)$/m.exec(readFileSync(cephConf(), 'utf8'))?.[1];
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({ kind: 'native', fsid, images: true });
  });

  it('volmaster from the image serves the test etcd and Ceph', async () => {
    masterPort = await freePort();
    const metricsPort = await freePort();
    await docker([
      'run', '-d', '--name', masterName, '--network', 'host', ...cephMount(), '-v', `${work}:${work}:ro`, IMAGE,
      'volmaster', '--listen', `127.0.0.1:${masterPort}`, '--etcd', etcdUrl(), '--prefix', PREFIX, ...cephFlags('volmaster'), '--token-file', tokenFile,
      '--metrics-listen', `127.0.0.1:${metricsPort}`,
    ]);
    const base = `http://127.0.0.1:${masterPort}`;
    await waitFor('volmaster did not answer /v1/health', async () => (await fetch(`${base}/v1/health`)).ok, 60_000, () => logsOf(masterName));
    expect(await (await fetch(`${base}/v1/health`)).json()).toMatchObject({ status: 'ok' });
    const token = readFileSync(tokenFile, 'utf8').trim();
    const ready = await fetch(`${base}/v1/ready`, { headers: { authorization: `Bearer ${token}` } });
    expect(await ready.json()).toMatchObject({ ready: true, checks: { etcd: { ok: true }, ceph: { ok: true } } });
    expect((await fetch(`${base}/v1/ready`)).status).toBe(401);
    const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(await scraped.text()).toContain('volplugin_build_info{daemon="volmaster"');

    // A tenant and a volume through volcli from the image: the RBD image appears in the test Ceph.
    const policy = readFileSync(path.join(repoRoot, 'examples', 'tenant1.json'), 'utf8');
    await volcli(['tenant', 'upload', TENANT], policy);
    const created = await volcli(['volume', 'create', `${TENANT}/from-master`, '--opt', 'size=20MB']);
    expect(created.stdout).toContain(`created ${TENANT}/from-master`);
    const ls = await execa('rbd', ['-c', cephConf(), 'ls', pool()]);
    expect(ls.stdout.split('\n')).toContain(`${TENANT}.from-master`);
    await volcli(['volume', 'remove', `${TENANT}/from-master`]);
    const after = await execa('rbd', ['-c', cephConf(), 'ls', pool()]);
    expect(after.stdout.split('\n')).not.toContain(`${TENANT}.from-master`);
  });

  it('volplugin from the image serves the seed flow to the test dockerd', async () => {
    expect(masterPort, 'the volmaster test runs first').toBeGreaterThan(0);
    // The mount root must be a shared mount: what volplugin mounts in its container then shows on
    // the host at the same path, where dockerd bind-mounts it into the containers.
    const mounted = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mountRoot);
    if (!mounted) {
      await execa('mount', ['--bind', mountRoot, mountRoot]);
      sharedMountMade = true;
    }
    await execa('mount', ['--make-rshared', mountRoot]);

    // docs/image.md's line: --privileged where the engine has every capability; where it has not
    // (this machine's dockerd lacks CAP_SYS_RESOURCE: runc cannot apply the caps), the same rights
    // spelled out.
    const probe = await execa('docker', ['-H', dockerHost(), 'run', '--rm', '--network', 'none', '--user', '0', '--privileged', IMAGE, 'true'], {
      reject: false,
    });
    const privileges =
      probe.exitCode === 0
        ? ['--privileged']
        : ['--cap-add', 'ALL', '--cap-drop', 'SYS_RESOURCE', '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined',
            '--device-cgroup-rule', 'a *:* rwm'];
    const dockerSock = dockerHost().replace(/^unix:\/\//, '');
    await docker([
      'run', '-d', '--name', pluginName, '--user', '0', ...privileges, '--network', 'host', '--pid', 'host',
      '-v', `${SOCKET_DIR}:${SOCKET_DIR}`,
      '-v', `${dockerSock}:/var/run/docker.sock`,
      '-v', '/dev:/dev', '-v', '/sys:/sys', ...(existsSync('/lib/modules') ? ['-v', '/lib/modules:/lib/modules:ro'] : []),
      '-v', `${mountRoot}:${mountRoot}:rshared`,
      '-v', `${stateDir}:${stateDir}`,
      ...cephMount(), '-v', `${tokenFile}:${tokenFile}:ro`,
      IMAGE, 'volplugin',
      '--plugin-name', PLUGIN, '--master', `127.0.0.1:${masterPort}`, '--etcd', etcdUrl(), '--prefix', PREFIX, '--token-file', tokenFile,
      ...cephFlags('volplugin'), '--mount-root', mountRoot, '--state-dir', stateDir, '--metrics-listen', 'none',
    ]);
    const socket = path.join(SOCKET_DIR, `${PLUGIN}.sock`);
    await waitFor(`volplugin did not create ${socket}`, async () => existsSync(socket), 60_000, () => logsOf(pluginName));

    const volume = `${TENANT}/seed`;
    try {
      await docker(['volume', 'create', '-d', PLUGIN, '--name', volume]);
      await docker(['run', '--rm', '--network', 'none', '-v', `${volume}:/mnt`, 'busybox', 'sh', '-c', 'echo hello from the image > /mnt/hello && sync /mnt/hello']);
      const read = await docker(['run', '--rm', '--network', 'none', '-v', `${volume}:/mnt`, 'busybox', 'cat', '/mnt/hello']);
      expect(read.stdout.trim()).toBe('hello from the image');
      const ls = await execa('rbd', ['-c', cephConf(), 'ls', pool()]);
      expect(ls.stdout.split('\n')).toContain(`${TENANT}.seed`);
      // A master may refuse while the host's last report still lists the mount (reports are
      // refreshed every --converge-seconds): retry for a while.
      await waitFor(
        `docker volume rm ${volume} did not succeed`,
        async () => (await execa('docker', ['-H', dockerHost(), 'volume', 'rm', volume], { reject: false })).exitCode === 0,
        30_000,
        () => logsOf(pluginName),
      );
      const left = await docker(['volume', 'ls', '-q', '--filter', `driver=${PLUGIN}`]);
      expect(left.stdout.split('\n')).not.toContain(volume);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await logsOf(pluginName)}`);
    }
  });
});
