// The seed's flow with the real dockerd the test setup started: upload a tenant, `docker volume
// create -d <plugin> --name TENANT/foo`, a container writes a file, a second one reads it back and
// sees the block device in `mount`, --opt size and --opt filesystem are honoured, the write-iops
// limit holds a 4k O_DIRECT write loop near the limit, `volcli volume resize` grows a volume under a
// running container (df in it shows the new size), and `docker volume rm` removes the volume.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanUpRun, leftoversBelow, rbd, testPool } from '../helpers/plugin-ceph.js';
import { startMaster, TestPlugin, uniq, waitFor, type TestMaster } from '../helpers/plugin-harness.js';
import { repoRoot } from '../helpers/sandbox.js';

const exec = promisify(execFile);
const run = uniq();
const tenant = `e2e${run}`;
const root = path.join(process.env.VOLPLUGIN_TEST_ROOT ?? '/tmp', `plugin-e2e-${run}`);
const pool = testPool();
const dockerHost = () => {
  const host = process.env.VOLPLUGIN_TEST_DOCKER;
  if (!host) throw new Error('VOLPLUGIN_TEST_DOCKER is not set: run through vitest (the global setup starts dockerd)');
  return host;
};

let master: TestMaster;
let plugin: TestPlugin;
/** Volumes made and not yet removed (dockerd looks a missing volume up in every plugin it ever saw: slow). */
const live = new Set<string>();

async function volumeCreate(name: string, ...opts: string[]): Promise<string> {
  const out = await docker('volume', 'create', '-d', plugin.pluginName, '--name', name, ...opts.flatMap((o) => ['--opt', o]));
  live.add(name);
  return out;
}

async function docker(...args: string[]): Promise<string> {
  const { stdout } = await exec('docker', ['-H', dockerHost(), ...args], { timeout: 180_000, maxBuffer: 16 << 20 });
  return stdout;
}

/** `docker run --rm` of busybox with the volume at /mnt; returns stdout. */
function runWith(volume: string, script: string, extra: string[] = []): Promise<string> {
  return docker('run', '--rm', '--network', 'none', ...extra, '-v', `${volume}:/mnt`, 'busybox', 'sh', '-c', script);
}

/** Seconds a 4k O_DIRECT write loop of `count` writes takes inside a container, measured there. */
async function ddSeconds(volume: string, count: number): Promise<number> {
  const out = await runWith(
    volume,
    `s=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero of=/mnt/f bs=4k count=${count} oflag=direct 2>/dev/null; e=$(cut -d' ' -f1 /proc/uptime); echo "$s $e"`,
  );
  const [s, e] = out.trim().split(/\s+/).map(Number);
  return e! - s!;
}

beforeAll(async () => {
  master = await startMaster(root, `/volplugin-test-${run}`);
  // The README's example tenant, under a name of its own (plus ext2 to test --opt filesystem).
  const policy = JSON.parse(await readFile(path.join(repoRoot, 'examples/tenant1.json'), 'utf8')) as {
    'default-options': Record<string, unknown>;
    filesystems: Record<string, string>;
  };
  policy.filesystems.ext2 = 'mkfs.ext4 -q -t ext2 %';
  await master.api.uploadTenant(tenant, policy);
  plugin = await TestPlugin.start({ label: 'e2e', root, master, docker: dockerHost(), convergeSeconds: 2 });
});

afterAll(async () => {
  for (const name of live) await docker('volume', 'rm', '-f', name).catch(() => undefined);
  await plugin?.stop();
  await master?.stop();
  expect(await cleanUpRun({ tenant, root, pool: testPool() })).toEqual([]);
});

describe('volplugin with the real dockerd', () => {
  const foo = () => `${tenant}/foo`;

  it('docker volume create -d <plugin> --name TENANT/foo', async () => {
    expect((await volumeCreate(foo())).trim()).toBe(foo());
    // (inspect, not ls: ls asks every plugin dockerd ever saw, and a stopped one costs it 15 s)
    expect((await docker('volume', 'inspect', '--format', '{{.Driver}} {{.Name}}', foo())).trim()).toBe(`${plugin.pluginName} ${foo()}`);
    expect((await master.api.getVolume(tenant, 'foo')).options.sizeBytes).toBe(100 * 1024 * 1024);
  });

  it('a container writes a file; a second container reads it back and sees the block device mounted', async () => {
    await runWith(foo(), 'echo hello > /mnt/hello');
    const out = await runWith(foo(), 'cat /mnt/hello; mount | grep " /mnt "');
    const [line1, line2] = out.trim().split('\n');
    expect(line1).toBe('hello');
    expect(line2).toMatch(/^\/dev\/loop\d+ on \/mnt type ext4 /);
    // After the containers are gone nothing stays mounted or locked.
    expect(await leftoversBelow(root)).toEqual([]);
  });

  it('the volume is mounted nosuid,nodev in the container: a device node made on it does not open', async () => {
    // The container may mknod (Docker's default capabilities) and use c 1:3 (/dev/null): only nodev stops it.
    const out = await runWith(foo(), 'mount | grep " /mnt "; mknod /mnt/null c 1 3 && { (echo x > /mnt/null) 2>/dev/null && echo opened || echo refused; }; rm -f /mnt/null');
    const [mount, verdict] = out.trim().split('\n');
    expect(mount).toMatch(/ on \/mnt type ext4 \(/);
    expect(mount!.replace(/.*\((.*)\)$/, '$1').split(',')).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
    expect(verdict).toBe('refused');
  });

  it('while a container runs, the lock and volcli mount list name this host', async () => {
    const id = (await docker('run', '-d', '--network', 'none', '-v', `${foo()}:/mnt`, 'busybox', 'sleep', '60')).trim();
    try {
      const lock = await master.api.getMount(tenant, 'foo');
      expect(lock).toMatchObject({ host: 'e2e', mountpoint: plugin.mountpointOf(foo()) });
      const { stdout } = await exec(process.execPath, [path.join(repoRoot, 'dist/cli/main.js'), '--master', master.address, '--token-file', master.tokenFile, 'mount', 'list'], {
        timeout: 60_000,
      });
      expect(stdout).toContain(foo());
      expect(stdout).toContain('e2e');
      // docker volume rm is refused while a container uses it.
      await expect(docker('volume', 'rm', foo())).rejects.toThrow(/in use/);
    } finally {
      await docker('rm', '-f', id);
    }
  });

  it('--opt size and --opt filesystem are honoured', async () => {
    await volumeCreate(`${tenant}/sized`, 'size=64MB');
    const info = JSON.parse(await rbd('info', '--format', 'json', `${pool}/${tenant}.sized`)) as { size: number };
    expect(info.size).toBe(64 * 1024 * 1024);
    const df = await runWith(`${tenant}/sized`, "df -k /mnt | tail -1 | awk '{print $2}'");
    const kb = Number(df.trim());
    expect(kb).toBeGreaterThan(40 * 1024);
    expect(kb).toBeLessThanOrEqual(64 * 1024);

    await volumeCreate(`${tenant}/ext2`, 'filesystem=ext2', 'size=32MB');
    expect(await runWith(`${tenant}/ext2`, 'mount | grep " /mnt "')).toMatch(/ on \/mnt type ext2 /);
  });

  it('write-iops 100 holds a 4k O_DIRECT write loop near the limit (control: unlimited is much faster)', async () => {
    await volumeCreate(`${tenant}/slow`, 'rate-limit.write.iops=100', 'size=32MB');
    await volumeCreate(`${tenant}/fast`, 'rate-limit.write.iops=0', 'size=32MB');
    // First use formats; measure on the second container of each.
    await runWith(`${tenant}/slow`, 'true');
    await runWith(`${tenant}/fast`, 'true');
    const slow = await ddSeconds(`${tenant}/slow`, 300);
    const fast = await ddSeconds(`${tenant}/fast`, 300);
    // 300 writes at <= 200 IOPS take at least 1.5 s; at the limit they take 3 s.
    expect(slow, `throttled loop took ${slow} s (unthrottled ${fast} s)`).toBeGreaterThan(1.5);
    expect(slow).toBeLessThan(10);
    expect(fast, `unthrottled loop took ${fast} s (throttled ${slow} s)`).toBeLessThan(slow / 2);
  });

  it('the limit sits in the container\'s own blkio cgroup for the volume\'s device, and follows a runtime change', async () => {
    const id = (await docker('run', '-d', '--network', 'none', '-v', `${tenant}/slow:/mnt`, 'busybox', 'sleep', '60')).trim();
    try {
      const lock = await master.api.getMount(tenant, 'slow');
      const dev = (await readFile(`/sys/class/block/${path.basename(lock.device)}/dev`, 'utf8')).trim();
      const pid = (await docker('inspect', '--format', '{{.State.Pid}}', id)).trim();
      const cgroup = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').find((l) => /:blkio:/.test(l))!.split(':')[2]!;
      const file = path.join('/sys/fs/cgroup/blkio', cgroup, 'blkio.throttle.write_iops_device');
      await waitFor('the write-iops limit in the container cgroup', async () => (await readFile(file, 'utf8')).includes(`${dev} 100`), 10_000);
      // Changed at run time (volcli volume runtime set): re-applied without a remount.
      await master.api.setRuntime(tenant, 'slow', { 'rate-limit.write.iops': 50 });
      await waitFor('the new write-iops limit in the container cgroup', async () => (await readFile(file, 'utf8')).includes(`${dev} 50`), 15_000);
      const meta = JSON.parse(await rbd('image-meta', 'list', '--format', 'json', `${pool}/${tenant}.slow`)) as Record<string, string>;
      expect(meta.conf_rbd_qos_write_iops_limit).toBe('50');
    } finally {
      await docker('rm', '-f', id);
    }
  });

  it('volcli volume resize grows an xfs volume under a running container: df in the container shows the new size, its files stay', async () => {
    // xfs: it grows online on any host; ext4 grows online only where volplugin has CAP_SYS_RESOURCE
    // (this machine is a container without it: ext4 then grows at the next mount, integration/resize.test.ts).
    const name = `${tenant}/grow`;
    await volumeCreate(name, 'size=320MB', 'filesystem=xfs');
    const id = (await docker('run', '-d', '--network', 'none', '-v', `${name}:/mnt`, 'busybox', 'sh', '-c', 'echo before > /mnt/kept; sleep 300')).trim();
    try {
      /** The size of /mnt in KiB as df in the running container shows it. */
      const dfKiB = async () => Number((await docker('exec', id, 'df', '-k', '/mnt')).trim().split('\n')[1]!.trim().split(/\s+/)[1]);
      await waitFor('the container to have written its file', async () => (await docker('exec', id, 'cat', '/mnt/kept').catch(() => '')).trim() === 'before', 30_000);
      const before = await dfKiB();
      expect(before).toBeLessThan(320 * 1024);
      const { stdout, stderr } = await exec(
        process.execPath,
        [path.join(repoRoot, 'dist/cli/main.js'), '--master', master.address, '--token-file', master.tokenFile, 'volume', 'resize', name, '512MB'],
        { timeout: 180_000 },
      );
      expect(stdout).toBe(`${name} is 512MB; its filesystem on host e2e grew with it (df shows it now)\n`);
      expect(stderr).toMatch(new RegExp(`^resize ${name}: `)); // progress lines (stderr is no terminal here)
      const after = await dfKiB();
      expect(after).toBeGreaterThan(before + 180 * 1024);
      expect((await docker('exec', id, 'cat', '/mnt/kept')).trim()).toBe('before');
      await docker('exec', id, 'sh', '-c', 'echo after >> /mnt/kept');
      expect((await docker('exec', id, 'cat', '/mnt/kept')).trim()).toBe('before\nafter');
      // The audit trail names the token that did it.
      const audit = await master.api.listAudit({ tenant });
      expect(audit.filter((e) => e.route === '/v1/volumes/:tenant/:volume/resize').at(-1)).toMatchObject({ who: { name: 'bootstrap' }, outcome: 'ok', body: { size: '512MB' } });
    } finally {
      await docker('rm', '-f', id);
    }
    expect(await rbd('info', '--format', 'json', `${testPool()}/${tenant}.grow`).then((t) => (JSON.parse(t) as { size: number }).size)).toBe(512 * 1024 * 1024);
  });

  it('docker volume rm removes the volume (records; the image stays unless ephemeral)', async () => {
    await docker('volume', 'rm', foo());
    live.delete(foo());
    await expect(master.api.getVolume(tenant, 'foo')).rejects.toMatchObject({ code: 'VOLUME_NOT_FOUND' });
    expect((await rbd('ls', pool)).split('\n')).toContain(`${tenant}.foo`);
  });
});
