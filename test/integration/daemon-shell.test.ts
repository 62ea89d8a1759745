// The three daemons as users start them (dist/<role>/main.js), for what their shared shell
// (src/common/) decides: a bad flag exits 2 with one line, and a start that fails (here: no
// ceph.conf) exits 1 with one line naming the daemon.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/sandbox.js';

const exec = promisify(execFile);

const daemons = [
  { name: 'volmaster', bin: path.join(repoRoot, 'dist/master/main.js') },
  { name: 'volplugin', bin: path.join(repoRoot, 'dist/plugin/main.js') },
  { name: 'volsupervisor', bin: path.join(repoRoot, 'dist/supervisor/main.js') },
];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function start(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const clean = { ...process.env, VOLPLUGIN_ETCD: undefined, VOLPLUGIN_PREFIX: undefined, ...env };
  try {
    const { stdout, stderr } = await exec(process.execPath, [bin, ...args], { timeout: 30_000, env: clean });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

beforeAll(() => {
  for (const d of daemons) if (!existsSync(d.bin)) throw new Error(`${d.bin} is missing: run make build`);
});

// The parsing itself is test/unit/daemon-shell.test.ts; here only what the process does with it.
describe.concurrent.each(daemons)('$name', ({ name, bin }) => {
  it('exits 2 with one line on a bad flag', async () => {
    const run = await start(bin, ['--etcd', '127.0.0.1:2379']);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`${name}: --etcd "127.0.0.1:2379" is not a URL like http://127.0.0.1:2379\n`);
    expect(run.stdout).toBe('');
  });

  it('exits 1 with one line naming the daemon when it cannot start', async () => {
    const args = ['--backend', 'native', '--ceph-conf', '/nonexistent/ceph.conf', '--etcd', 'http://127.0.0.1:9'];
    if (name === 'volplugin') args.push('--state-dir', '/nonexistent/state', '--socket-dir', '/nonexistent/sockets');
    const run = await start(bin, args);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^${name}: [^\\n]*ceph\\.conf[^\\n]*\\n$`));
  });
});
