// `docker run` with a volume, the way users meet volplugin (issue 14, part 1), on the stack `make up`
// runs: the sandbox's Ceph and etcd, volmaster, volsupervisor and volplugin (fuse mapper, its
// default unmount grace) and the sandbox's dockerd. Each round, one after another on the same
// machine load:
//
//   docker_run_none       docker run --rm --network none busybox true
//   docker_run_local      the same with a volume of Docker's own `local` driver (a directory):
//                         what a volume costs Docker itself, the floor for any volume plugin
//   docker_run_warm       the same with an existing volume used moments before (inside the grace)
//   docker_run_cold       the same with an existing, formatted volume not used for longer than the grace
//   docker_volume_create  docker volume create -d volplugin (the create alone)
//   docker_run_fresh      docker volume create + docker run with it (first map, format, mount)
//
// After each round the bench waits out the grace, so that the teardowns of idle volumes do not run
// under the next round's measurements. The step times of every Mount come from volplugin's own log
// ("Docker request done", its `steps`), averaged per kind of Mount into the rows' notes.

import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../lib/cluster.js';
import type { Sizes } from '../lib/context.js';
import type { Measurement, PhaseResult } from '../lib/harness.js';
import { measure, progress, runPhase } from '../lib/harness.js';

const exec = promisify(execFile);
const ROOT = path.join(repoRoot, '.sandbox');
const DOCKER = ['-H', 'unix:///var/run/docker.sock'];
/** volplugin's default --unmount-grace (s), which `make up` keeps, plus a margin for the teardown. */
const GRACE_WAIT_MS = 10_000 + 3_000;

async function docker(...args: string[]): Promise<void> {
  await exec('docker', [...DOCKER, ...args], { timeout: 180_000 });
}

/** The sandbox's environment (.sandbox/env): its `export K=V` lines, PATH left out. */
function sandboxEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path.join(ROOT, 'env'), 'utf8').split('\n')) {
    if (!line.startsWith('export ')) continue;
    for (const pair of line.slice('export '.length).split(' ')) {
      const eq = pair.indexOf('=');
      if (eq > 0 && pair.slice(0, eq) !== 'PATH') out[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return out;
}

async function stackAnswers(): Promise<boolean> {
  if (!existsSync(path.join(ROOT, 'env')) || !existsSync('/run/docker/plugins/volplugin.sock')) return false;
  try {
    await docker('info');
    return true;
  } catch {
    return false;
  }
}

function runScript(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(repoRoot, 'scripts', script)], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`scripts/${script} exited with ${code}:\n${err}`))));
  });
}

async function volcli(env: Record<string, string>, args: string[], input?: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(path.join(ROOT, 'bin', 'volcli'), args, { env: { ...process.env, ...env }, stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`volcli ${args.join(' ')} exited with ${code}: ${err.trim()}`))));
    child.stdin.end(input ?? '');
  });
}

/**
 * volplugin's Docker requests for `volumes` logged since `since`, by kind (mount, reuse, idle, ...):
 * how many, their mean time and each step's mean time, as text for a row's notes
 * ("mount: 4 × 512 ms (map 180, format 20, probe 90, ...)").
 */
function requestSteps(logFile: string, since: number, volumes: ReadonlySet<string>): string {
  const sums = new Map<string, { count: number; ms: number; steps: Map<string, number> }>();
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    let entry: { msg?: string; time?: number | string; volume?: string; op?: string; ms?: number; steps?: Record<string, number> };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    const time = typeof entry.time === 'string' ? Date.parse(entry.time) : (entry.time ?? 0);
    if (entry.msg !== 'Docker request done' || time < since || !entry.volume || !volumes.has(entry.volume) || !entry.op) continue;
    const sum = sums.get(entry.op) ?? { count: 0, ms: 0, steps: new Map<string, number>() };
    sum.count++;
    sum.ms += entry.ms ?? 0;
    for (const [step, ms] of Object.entries(entry.steps ?? {})) sum.steps.set(step, (sum.steps.get(step) ?? 0) + ms);
    sums.set(entry.op, sum);
  }
  return [...sums]
    .map(([op, s]) => `${op}: ${s.count} × ${Math.round(s.ms / s.count)} ms (${[...s.steps].map(([k, v]) => `${k} ${Math.round(v / s.count)}`).join(', ')})`)
    .join('; ');
}

export async function dockerRunBench(sizes: Sizes, keep: boolean, missing: string[]): Promise<Measurement[]> {
  const wasUp = await stackAnswers();
  if (!wasUp) {
    progress('docker: starting the `make up` stack (scripts/up.sh)');
    await runScript('up.sh');
  }
  const env = sandboxEnv();
  const runId = Date.now().toString(36).slice(-5);
  const tenant = `benchd${runId}`;
  const volume = (name: string) => `${tenant}/${name}`;
  const made: string[] = [];
  let since = Date.now();
  try {
    await volcli(env, ['tenant', 'upload', tenant], readFileSync(path.join(repoRoot, 'examples', 'tenant1.json'), 'utf8'));
    const total = sizes.warmup + sizes.rounds;
    const create = async (name: string) => {
      await docker('volume', 'create', '-d', 'volplugin', '--name', volume(name));
      made.push(volume(name));
    };
    const run = (withVolume: string | null) => docker('run', '--rm', '--network', 'none', ...(withVolume ? ['-v', `${withVolume}:/mnt`] : []), 'busybox', 'true');
    // The volumes the warm and cold runs use, made and formatted before the rounds.
    const local = `benchd${runId}-local`;
    await docker('volume', 'create', '--name', local);
    made.push(local);
    await create('warm');
    await run(volume('warm'));
    for (let r = 0; r < total; r++) {
      await create(`cold${r}`);
      await run(volume(`cold${r}`));
    }
    progress(`docker: ${total + 1} volumes made and formatted; waiting out the grace`);
    await new Promise((r) => setTimeout(r, GRACE_WAIT_MS));
    since = Date.now(); // the step times below are those of the measured rounds only
    const one = async (op: string, fn: () => Promise<void>): Promise<PhaseResult> => runPhase(op, 1, 1, fn);
    const measurements = await measure(
      { bench: 'docker', backend: 'native', concurrency: 1, cluster: 'make-up', warmup: sizes.warmup, rounds: sizes.rounds, notes: { stack: 'make up: fuse mapper, unmount grace 10 s, volmaster over HTTPS with tokens, etcd with TLS' } },
      async (r) => {
        const phases: PhaseResult[] = [];
        phases.push(await one('docker_run_none', () => run(null)));
        phases.push(await one('docker_run_local', () => run(local)));
        await run(volume('warm')); // used moments before the measured run: inside the grace
        phases.push(await one('docker_run_warm', () => run(volume('warm'))));
        phases.push(await one('docker_run_cold', () => run(volume(`cold${r}`))));
        const fresh = `fresh${r}`;
        const t0 = performance.now();
        phases.push(await one('docker_volume_create', () => create(fresh)));
        const runPhaseResult = await one('docker_run_fresh_run', () => run(volume(fresh)));
        phases.push(runPhaseResult, { op: 'docker_run_fresh', latMs: [performance.now() - t0], wallMs: performance.now() - t0 });
        await new Promise((res) => setTimeout(res, GRACE_WAIT_MS));
        return phases;
      },
    );
    // Per kind of Mount, what each step cost on average (volplugin's log).
    const log = path.join(ROOT, 'logs', 'volplugin.log');
    const fresh = new Set(Array.from({ length: total }, (_, r) => volume(`fresh${r}`)));
    const cold = new Set(Array.from({ length: total }, (_, r) => volume(`cold${r}`)));
    const steps: Record<string, string> = {
      fresh: requestSteps(log, since, fresh),
      cold: requestSteps(log, since, cold),
      warm: requestSteps(log, since, new Set([volume('warm')])),
    };
    for (const m of measurements) {
      const kind = m.op.replace(/^docker_run_/, '').replace(/_run$/, '');
      if (steps[kind]) m.notes = { ...m.notes, volplugin_requests: steps[kind] };
    }
    return measurements;
  } catch (err) {
    missing.push(`docker: ${(err as Error).message.split('\n')[0]}`);
    progress(`docker: FAILED: ${(err as Error).message}`);
    return [];
  } finally {
    for (const v of made) await docker('volume', 'rm', v).catch((err: Error) => progress(`docker: could not remove ${v}: ${err.message.split('\n')[0]}`));
    await volcli(env, ['tenant', 'delete', tenant]).catch(() => undefined);
    if (!wasUp && !keep) {
      await runScript('down.sh').catch((err: Error) => progress(`docker: make down: ${err.message}`));
      progress('docker: the `make up` stack stopped');
    }
  }
}
