// The foundation the other integration tests stand on: the services the global setup started
// answer as a user would check them.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('test services', () => {
  it('Ceph is HEALTH_OK and has an rbd pool', async () => {
    const conf = process.env.CEPH_CONF;
    expect(conf, 'CEPH_CONF is set by test/helpers/global-setup.ts').toBeTruthy();
    const { stdout } = await run('ceph', ['-c', conf!, 'health'], { timeout: 20_000 });
    expect(stdout.trim()).toBe('HEALTH_OK');
    const pools = await run('ceph', ['-c', conf!, 'osd', 'pool', 'ls'], { timeout: 20_000 });
    expect(pools.stdout.split('\n')).toContain('rbd');
  });

  it('etcd answers', async () => {
    const url = process.env.VOLPLUGIN_TEST_ETCD!;
    const { stdout, stderr } = await run('etcdctl', ['--endpoints', url, 'endpoint', 'health'], { timeout: 20_000 });
    expect(stdout + stderr).toContain('is healthy');
  });

  it('dockerd answers and has the offline busybox image', async () => {
    const host = process.env.VOLPLUGIN_TEST_DOCKER!;
    const { stdout } = await run('docker', ['-H', host, 'run', '--rm', '--network', 'none', 'busybox', 'echo', 'ok'], {
      timeout: 60_000,
    });
    expect(stdout.trim()).toBe('ok');
  });
});
