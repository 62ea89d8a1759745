import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { sandboxScript } from '../helpers/sandbox.js';

const run = promisify(execFile);

describe('scripts/sandbox.sh', () => {
  it('prints its usage and exits 2 for an unknown verb', async () => {
    const err = await run(sandboxScript, ['no-such-verb']).catch((e: { code: number; stderr: string }) => e);
    expect(err).toMatchObject({ code: 2 });
    expect((err as { stderr: string }).stderr).toContain('ceph-up');
  });

  it('treats a pid file of a dead process as not alive', async () => {
    const err = await run(sandboxScript, ['pid-alive', '/nonexistent.pid']).catch((e: { code: number }) => e);
    expect(err).toMatchObject({ code: 1 });
  });
});
