// Small things several integration tests need: a free loopback port, the pool's image names.
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';

/** A TCP port on 127.0.0.1 that was free a moment ago (for a daemon the test starts). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** `rbd ls` of a pool, as a user would check it. */
export async function rbdLs(cephConf: string, pool: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)('rbd', ['-c', cephConf, 'ls', '--format', 'json', pool], { timeout: 60_000 });
  return JSON.parse(stdout) as string[];
}
