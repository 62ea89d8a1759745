// The services a chaos run breaks on purpose: its own one-node Ceph (scripts/sandbox.sh) and its
// own etcd, both under the run's directory and on ports of their own, so that killing etcd or
// restarting the OSD never disturbs another test or another helper's run. etcd is started here
// (not by sandbox.sh, which starts from an empty data dir) so that a restart keeps its data, as a
// real etcd member's restart does.

import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../../src/mapper/exec.js';
import { repoRoot, sandboxScript } from '../helpers/sandbox.js';
import { runBounded } from './proc.js';
import { pidAlive, sleep, waitUntil } from './wait.js';

export interface ChaosPorts {
  monV2: number;
  monV1: number;
  etcd: number;
  etcdPeer: number;
}

/**
 * Ports of a chaos run: `make chaos` (slot 'run') and the short run inside `make test` (slot
 * 'test') use different ranges, both shifted by VOLPLUGIN_TEST_PORT_OFFSET (below 200).
 */
export function chaosPorts(offset: number, slot: 'run' | 'test'): ChaosPorts {
  if (!Number.isInteger(offset) || offset < 0 || offset >= 200) {
    throw new Error(`VOLPLUGIN_TEST_PORT_OFFSET must be a whole number below 200 for the chaos ports, got ${offset}`);
  }
  const base = slot === 'run' ? 25_000 : 26_000;
  return { monV2: base + offset, monV1: base + 200 + offset, etcd: base + 400 + offset, etcdPeer: base + 600 + offset };
}

/** The directory of a chaos run's services: .sandbox-chaos[-N] (make chaos) or .sandbox-test[-N]/chaos. */
export function chaosRoot(offset: number, slot: 'run' | 'test'): string {
  const suffix = offset ? `-${offset}` : '';
  return slot === 'run' ? path.join(repoRoot, `.sandbox-chaos${suffix}`) : path.join(repoRoot, `.sandbox-test${suffix}`, 'chaos');
}

async function sandbox(...args: string[]): Promise<void> {
  const result = await runBounded(sandboxScript, args, 180_000);
  if (process.env.VOLPLUGIN_TEST_VERBOSE) process.stderr.write(result.stderr);
  if (result.code !== 0) {
    throw new Error(`scripts/sandbox.sh ${args.join(' ')} ${result.timedOut ? 'did not finish within 180 s' : `failed (exit ${result.code})`}: ${result.stderr.trim().slice(-1500)}`);
  }
}

export class ChaosServices {
  readonly cephConf: string;
  readonly etcdUrl: string;
  private readonly etcdDir: string;
  private readonly osdPidFile: string;

  constructor(
    readonly root: string,
    readonly ports: ChaosPorts,
  ) {
    this.cephConf = path.join(root, 'ceph', 'ceph.conf');
    this.etcdUrl = `http://127.0.0.1:${ports.etcd}`;
    this.etcdDir = path.join(root, 'etcd');
    this.osdPidFile = path.join(root, 'ceph', 'run', 'osd.0.pid');
  }

  /** Ceph (reused when healthy) and etcd (started fresh). */
  async up(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await sandbox('ceph-up', this.root, String(this.ports.monV2), String(this.ports.monV1));
    // memstore keeps its data in RAM and writes it out only on a full shutdown: without this a
    // restarted OSD comes back empty (Pacific's default is the fast shutdown that skips it).
    await run('ceph', ['-c', this.cephConf, 'config', 'set', 'osd', 'osd_fast_shutdown', 'false'], { timeoutMs: 30_000 });
    await this.stopEtcd();
    await run('rm', ['-rf', path.join(this.etcdDir, 'data')], { timeoutMs: 30_000 });
    await this.startEtcd();
  }

  /** Stops what up() started and unmounts what is left below the root (scripts/sandbox.sh down). */
  async down(): Promise<void> {
    await sandbox('down', this.root);
  }

  // ---- etcd ------------------------------------------------------------------------------------

  private async etcdPid(): Promise<number | null> {
    const text = await readFile(path.join(this.etcdDir, 'etcd.pid'), 'utf8').catch(() => '');
    const pid = Number(text.trim());
    return pid > 0 ? pid : null;
  }

  async etcdHealthy(): Promise<boolean> {
    try {
      const res = await fetch(`${this.etcdUrl}/health`, { signal: AbortSignal.timeout(2_000) });
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    } catch {
      return false;
    }
  }

  /** Starts etcd on its data dir (kept across restarts) and waits until it is healthy. */
  async startEtcd(): Promise<void> {
    await mkdir(this.etcdDir, { recursive: true });
    const peer = `http://127.0.0.1:${this.ports.etcdPeer}`;
    const log = openSync(path.join(this.etcdDir, 'etcd.log'), 'a');
    const child = spawn(
      'etcd',
      [
        '--name', 'chaos',
        '--data-dir', path.join(this.etcdDir, 'data'),
        '--listen-client-urls', this.etcdUrl,
        '--advertise-client-urls', this.etcdUrl,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `chaos=${peer}`,
      ],
      { detached: true, stdio: ['ignore', log, log] },
    );
    closeSync(log);
    child.unref();
    await writeFile(path.join(this.etcdDir, 'etcd.pid'), `${child.pid}\n`);
    await waitUntil('etcd to be healthy', () => this.etcdHealthy(), 30_000);
  }

  /** kill -9 of etcd (a crash: no clean shutdown); waits until the process is gone. */
  async killEtcd(): Promise<void> {
    const pid = await this.etcdPid();
    if (!pid) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    await waitUntil('etcd to die', async () => !(await pidAlive(pid)), 10_000);
  }

  private async stopEtcd(): Promise<void> {
    const pid = await this.etcdPid();
    if (!pid || !(await pidAlive(pid))) return;
    process.kill(pid, 'SIGTERM');
    await waitUntil('etcd to stop', async () => !(await pidAlive(pid)), 15_000).catch(async () => {
      process.kill(pid, 'SIGKILL');
      await sleep(500);
    });
  }

  // ---- the OSD ---------------------------------------------------------------------------------

  /** Stops the OSD (SIGTERM, a full shutdown that keeps memstore's data) and starts it again. */
  async restartOsd(downMs: number): Promise<void> {
    const pid = Number((await readFile(this.osdPidFile, 'utf8')).trim());
    if (pid > 0 && (await pidAlive(pid))) {
      process.kill(pid, 'SIGTERM');
      await waitUntil('ceph-osd to stop', async () => !(await pidAlive(pid)), 60_000);
    }
    await sleep(downMs);
    // ceph-osd daemonizes and writes its pid file itself.
    await run('ceph-osd', ['-c', this.cephConf, '-i', '0'], { timeoutMs: 60_000 });
    await waitUntil('the OSD to serve the rbd pool', () => this.poolAnswers(), 120_000);
  }

  private async poolAnswers(): Promise<boolean> {
    const result = await run('rbd', ['-c', this.cephConf, 'ls', '--pool', 'rbd'], { timeoutMs: 10_000 }).catch(() => null);
    return result !== null;
  }

  /** True when Ceph's mon and OSD processes run (their pid files live below the root). */
  cephRunning(): boolean {
    return existsSync(this.osdPidFile);
  }
}
