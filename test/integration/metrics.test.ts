// The Prometheus endpoints of the three daemons, as an operator scrapes them: real volmaster (TLS,
// tokens), two volplugins and a volsupervisor on the real Ceph and etcd. Every scrape passes
// `promtool check metrics`; the values a user checks move as they should (a mount counts in the
// mount histograms for its mapper and steps, a fenced takeover in the fencing and takeover
// counters, a failed snapshot in the failures); bad flags and a port in use stop a daemon at start;
// and a real Prometheus server, started here on loopback, scrapes all three, evaluates the
// dashboard's queries, and checks the example alert rules.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelValues, parseMetrics, promtoolCheckMetrics, fetchMetrics, scrape, valueOf, type Sample } from '../helpers/metrics.js';
import { freePort } from '../helpers/net.js';
import { cleanUpRun, rbd } from '../helpers/plugin-ceph.js';
import { cephArgs, createVolume, startMaster, TestPlugin, testPolicy, testRun, waitFor, type TestMaster } from '../helpers/plugin-harness.js';
import { repoRoot, testBackend as backend } from '../helpers/sandbox.js';
import { makeCertificates, type TestCertificates } from '../helpers/tls.js';

const { run, tenant, root, pool } = testRun('mx', 'metrics');
// Leases long enough that a loaded test machine does not lose them by itself; the takeover waits for one.
const TTL = 10;
const supervisorBin = path.join(repoRoot, 'dist/supervisor/main.js');
const alertsFile = path.join(repoRoot, 'docs/prometheus/alerts.yml');

let certs: TestCertificates;
let master: TestMaster;
let a: TestPlugin;
let b: TestPlugin;
let supervisor: ChildProcess | null = null;
let supervisorLog = '';
let prometheus: ChildProcess | null = null;
let prometheusLog = '';
const urls = { master: '', a: '', b: '', supervisor: '', prometheus: '' };
/** A read-only API token: what a Prometheus server scraping volmaster gets. */
let readOnlyToken = '';
let readOnlyTokenFile = '';
/** The scrape token of the volplugins' --metrics-token-file (one for the job, as docs/metrics.md configures it). */
const scrapeToken = `scrape-${run}`;
let scrapeTokenFile = '';
const fenced: string[] = [];

/** Mounts a test made and has not unmounted yet: afterAll unmounts them if the test failed half-way. */
const mounted = new Set<{ plugin: () => TestPlugin; name: string; id: string }>();

async function mount(plugin: () => TestPlugin, name: string, id: string): Promise<void> {
  const answer = await plugin().mount(name, id);
  expect(answer.Err).toBe('');
  mounted.add({ plugin, name, id });
}

async function unmount(plugin: () => TestPlugin, name: string, id: string): Promise<void> {
  expect((await plugin().unmount(name, id)).Err).toBe('');
  for (const m of mounted) if (m.name === name && m.id === id) mounted.delete(m);
}

const pluginArgs = (port: number) => ['--tls-ca', certs.ca, '--metrics-listen', `127.0.0.1:${port}`, '--metrics-token-file', scrapeTokenFile];

/** Scrapes a daemon, checks the exposition with promtool, and returns its samples. */
async function samplesOf(url: string): Promise<Sample[]> {
  const text = await scrape(url, url === urls.master ? { token: readOnlyToken, ca: certs.ca } : url === urls.supervisor ? {} : { token: scrapeToken });
  const check = await promtoolCheckMetrics(text);
  expect(check.output, `promtool check metrics of ${url}`).toBe('');
  expect(check.code).toBe(0);
  return parseMetrics(text);
}

function startSupervisor(port: number): ChildProcess {
  const child = spawn(
    process.execPath,
    [supervisorBin, '--etcd', process.env.VOLPLUGIN_TEST_ETCD!, '--prefix', master.prefix, '--backend', backend, ...cephArgs('volsupervisor'),
      '--election-ttl', '10', '--tick-ms', '200', '--metrics-listen', `127.0.0.1:${port}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d: Buffer) => (supervisorLog = (supervisorLog + d.toString()).slice(-20_000)));
  child.stderr!.on('data', (d: Buffer) => (supervisorLog = (supervisorLog + d.toString()).slice(-20_000)));
  return child;
}

/** A Prometheus server on loopback scraping the three daemons every two seconds, with the configuration docs/metrics.md shows. */
async function startPrometheus(): Promise<void> {
  const dir = path.join(root, 'prometheus');
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const hostport = (url: string) => new URL(url).host;
  const config = [
    // A timeout as long as the interval: a loaded test machine may answer a scrape slowly.
    'global: { scrape_interval: 2s, scrape_timeout: 2s, evaluation_interval: 2s }',
    'scrape_configs:',
    '  - job_name: volmaster',
    '    scheme: https',
    `    tls_config: { ca_file: ${certs.ca} }`,
    `    authorization: { type: Bearer, credentials_file: ${readOnlyTokenFile} }`,
    `    static_configs: [{ targets: ["${hostport(urls.master)}"] }]`,
    '  - job_name: volplugin',
    `    authorization: { type: Bearer, credentials_file: ${scrapeTokenFile} }`,
    `    static_configs: [{ targets: ["${hostport(urls.a)}", "${hostport(urls.b)}"] }]`,
    '  - job_name: volsupervisor',
    `    static_configs: [{ targets: ["${hostport(urls.supervisor)}"] }]`,
    `rule_files: [${alertsFile}]`,
    '',
  ].join('\n');
  await writeFile(path.join(dir, 'prometheus.yml'), config);
  const child = spawn(
    'prometheus',
    [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d: Buffer) => (prometheusLog = (prometheusLog + d.toString()).slice(-20_000)));
  child.stderr!.on('data', (d: Buffer) => (prometheusLog = (prometheusLog + d.toString()).slice(-20_000)));
  prometheus = child;
  urls.prometheus = `http://127.0.0.1:${port}`;
}

interface PromResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

async function query(expr: string): Promise<PromResult> {
  const res = await fetch(`${urls.prometheus}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await res.json()) as PromResult;
}

beforeAll(async () => {
  await mkdir(root, { recursive: true });
  certs = await makeCertificates(root);
  const [masterPort, aPort, bPort, supervisorPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  master = await startMaster(root, `/volplugin-test-${run}`, {
    extraArgs: ['--tls-cert', certs.cert, '--tls-key', certs.key, '--metrics-listen', `127.0.0.1:${masterPort}`],
    tlsCa: certs.ca,
  });
  urls.master = `https://127.0.0.1:${masterPort}/metrics`;
  readOnlyToken = (await master.api.createToken(`prometheus-${run}`, 'read-only')).token;
  readOnlyTokenFile = path.join(root, 'prometheus-token');
  await writeFile(readOnlyTokenFile, `${readOnlyToken}\n`, { mode: 0o600 });
  scrapeTokenFile = path.join(root, 'scrape-token');
  await writeFile(scrapeTokenFile, `${scrapeToken}\n`, { mode: 0o600 });
  await master.api.uploadTenant(tenant, testPolicy());
  [a, b] = await Promise.all([
    TestPlugin.start({ label: 'hosta', root, master, lockTtl: TTL, convergeSeconds: 1, extraArgs: pluginArgs(aPort) }),
    TestPlugin.start({ label: 'hostb', root, master, lockTtl: TTL, convergeSeconds: 1, extraArgs: pluginArgs(bPort) }),
  ]);
  urls.a = `http://127.0.0.1:${aPort}/metrics`;
  urls.b = `http://127.0.0.1:${bPort}/metrics`;
  supervisor = startSupervisor(supervisorPort);
  urls.supervisor = `http://127.0.0.1:${supervisorPort}/metrics`;
  await waitFor('volsupervisor to serve its metrics', async () => (await fetchMetrics(urls.supervisor)).status === 200, 60_000).catch((err: Error) => {
    throw new Error(`${err.message}; log:\n${supervisorLog.slice(-2000)}`);
  });
  await startPrometheus();
});

afterAll(async () => {
  const stopped = (child: ChildProcess | null) => (child && child.exitCode === null && child.signalCode === null ? once(child, 'exit') : null);
  const exits = [stopped(prometheus), stopped(supervisor)];
  prometheus?.kill('SIGTERM');
  supervisor?.kill('SIGTERM');
  await Promise.all(exits);
  // The scheduled volume has snapshots: its remove takes them (cleanUpRun's rbd rm would not).
  await master?.api.removeVolume(tenant, 'kept').catch(() => undefined);
  for (const m of mounted) await m.plugin().unmount(m.name, m.id).catch(() => undefined);
  await a?.stop();
  await b?.stop();
  await master?.stop();
  const left = await cleanUpRun({ tenant, root, pool, fenced });
  expect(left).toEqual([]);
});

describe('metrics endpoints', () => {
  it('a mount and its unmount count in the histograms of their mapper and steps; every endpoint passes promtool', async () => {
    const name = `${tenant}/first`;
    await createVolume(a, name);
    await mount(() => a, name, 'm1');
    let s = await samplesOf(urls.a);
    for (const step of ['lock', 'fence', 'qos', 'map', 'note', 'format', 'mount', 'record']) {
      expect(valueOf(s, 'volplugin_mount_step_duration_seconds_count', { mapper: 'fuse', step }), step).toBe(1);
    }
    expect(valueOf(s, 'volplugin_mount_duration_seconds_count', { mapper: 'fuse', result: 'ok' })).toBe(1);
    expect(valueOf(s, 'volplugin_mounts', { state: 'held' })).toBe(1);
    expect(valueOf(s, 'volplugin_mount_references')).toBe(1);
    expect(valueOf(s, 'volplugin_docker_request_duration_seconds_count', { method: 'VolumeDriver.Mount', result: 'ok' })).toBe(1);
    expect(valueOf(s, 'volplugin_ceph_call_duration_seconds_count', { call: 'setMetadata' })).toBeGreaterThanOrEqual(1);
    expect(valueOf(s, 'volplugin_etcd_request_duration_seconds_count', { op: 'txn' })).toBeGreaterThanOrEqual(1);
    expect(valueOf(s, 'volplugin_build_info', { daemon: 'volplugin' })).toBe(1);

    await unmount(() => a, name, 'm1');
    s = await samplesOf(urls.a);
    for (const step of ['unmount', 'unmap', 'note', 'record', 'release']) {
      expect(valueOf(s, 'volplugin_unmount_step_duration_seconds_count', { mapper: 'fuse', step }), step).toBe(1);
    }
    expect(valueOf(s, 'volplugin_unmount_duration_seconds_count', { mapper: 'fuse', result: 'ok' })).toBe(1);
    expect(valueOf(s, 'volplugin_mounts', { state: 'held' })).toBe(0);

    // volmaster: requests by route pattern and status, never the raw URL.
    await master.api.listSnapshots(tenant, 'first');
    expect((await fetchMetrics(`https://${master.address}/v1/${tenant}/nothing`, { token: master.token, ca: certs.ca })).status).toBe(404);
    const m = await samplesOf(urls.master);
    expect(valueOf(m, 'volplugin_api_request_duration_seconds_count', { method: 'PUT', route: '/v1/volumes/:tenant/:volume', status: '201' })).toBe(1);
    expect(valueOf(m, 'volplugin_api_request_duration_seconds_count', { method: 'GET', route: '/v1/volumes/:tenant/:volume/snapshots', status: '200' })).toBe(1);
    expect(valueOf(m, 'volplugin_api_request_duration_seconds_count', { method: 'GET', route: 'unmatched', status: '404' })).toBe(1);
    const routes = labelValues(m, 'volplugin_api_request_duration_seconds_count', 'route');
    expect(routes.filter((r) => r.includes(tenant))).toEqual([]);
    expect(valueOf(m, 'volplugin_build_info', { daemon: 'volmaster' })).toBe(1);
    await samplesOf(urls.b);
    await samplesOf(urls.supervisor);
  });

  it("volmaster's endpoint needs a token (any API token) and speaks its TLS; volplugin's its scrape token", async () => {
    expect((await fetchMetrics(urls.master, { ca: certs.ca })).status).toBe(401);
    expect((await fetchMetrics(urls.master, { ca: certs.ca, token: 'not-a-token' })).status).toBe(401);
    expect((await fetchMetrics(urls.master, { ca: certs.ca, token: master.token })).status).toBe(200);
    expect((await fetchMetrics(urls.master, { ca: certs.ca, token: readOnlyToken })).status).toBe(200);
    await expect(fetchMetrics(urls.master, { token: readOnlyToken })).rejects.toThrow(/certificate/);
    // volplugin's asks for its --metrics-token-file token, and takes no API token.
    expect((await fetchMetrics(urls.a)).status).toBe(401);
    expect((await fetchMetrics(urls.a, { token: master.token })).status).toBe(401);
    expect((await fetchMetrics(urls.a, { token: scrapeToken })).status).toBe(200);
  });

  it('a fenced takeover counts in the fencing and takeover counters of the new holder, and the old one counts the volume lost', async () => {
    const name = `${tenant}/taken`;
    await createVolume(a, name);
    await mount(() => a, name, 't1');
    const held = (await master.api.getMount(tenant, 'taken')).clientAddress!;
    await a.kill9();
    await waitFor('hostb to take the volume over after the lock TTL', async () => (await b.mount(name, 't2')).Err === '', (TTL + 20) * 1000, 500);
    mounted.add({ plugin: () => b, name, id: 't2' });
    fenced.push(held);
    const s = await samplesOf(urls.b);
    expect(valueOf(s, 'volplugin_fencing_total', { target: 'previous_holder', result: 'ok' })).toBe(1);
    expect(valueOf(s, 'volplugin_lock_takeovers_total')).toBe(1);

    // hosta comes back: the volume is lost to it, and it says so.
    await a.start();
    await waitFor('hosta to count the volume lost', async () => valueOf(await samplesOf(urls.a), 'volplugin_volumes_lost_total', { reason: 'lock' }) === 1, 60_000);
    const after = await samplesOf(urls.a);
    expect(valueOf(after, 'volplugin_mounts', { state: 'lost' })).toBe(1);
    expect(valueOf(after, 'volplugin_fencing_total', { target: 'self' })).toBe(1);
    await unmount(() => a, name, 't1');
    await unmount(() => b, name, 't2');
    expect(valueOf(await samplesOf(urls.a), 'volplugin_mounts', { state: 'lost' })).toBe(0);
  });

  it("volsupervisor counts scheduled snapshots taken and failed, and each scheduled volume's age", async () => {
    const schedule = { snapshots: 'true', 'snapshots.frequency': '1s', 'snapshots.keep': '2' };
    // The broken volume's image vanishes behind volplugin's back, then it gets a schedule: its snapshots fail.
    await master.api.createVolume(tenant, 'broken');
    await rbd('rm', '--no-progress', `${pool}/${tenant}.broken`);
    await master.api.setRuntime(tenant, 'broken', schedule);
    await master.api.createVolume(tenant, 'kept', schedule);
    await waitFor('a scheduled snapshot taken and one failed', async () => {
      const s = await samplesOf(urls.supervisor);
      return valueOf(s, 'volplugin_snapshots_taken_total', { origin: 'scheduled' }) >= 1 && valueOf(s, 'volplugin_snapshot_failures_total', { origin: 'scheduled' }) >= 1;
    }, 60_000);
    await waitFor("the broken volume's age to exceed the kept one's", async () => {
      const s = await samplesOf(urls.supervisor);
      const age = (volume: string) => s.find((x) => x.name === 'volplugin_snapshot_age_seconds' && x.labels.tenant === tenant && x.labels.volume === volume)?.value;
      return age('kept') !== undefined && age('broken') !== undefined && age('broken')! > age('kept')!;
    }, 60_000);
    const s = await samplesOf(urls.supervisor);
    expect(valueOf(s, 'volplugin_supervisor_leader')).toBe(1);
    expect(valueOf(s, 'volplugin_snapshot_interval_seconds', { tenant, volume: 'kept' })).toBe(1);
    expect(valueOf(s, 'volplugin_supervisor_job_duration_seconds_count', { job: 'snapshot', result: 'error' })).toBeGreaterThanOrEqual(1);

    // On demand through volmaster: one taken; the broken volume's fails at Ceph (its image is gone).
    await master.api.takeSnapshot(tenant, 'kept');
    await expect(master.api.takeSnapshot(tenant, 'broken')).rejects.toThrow();
    const m = await samplesOf(urls.master);
    expect(valueOf(m, 'volplugin_snapshots_taken_total', { origin: 'manual' })).toBe(1);
    expect(valueOf(m, 'volplugin_ceph_call_errors_total', { call: 'listSnapshots', code: 'ENOENT' })).toBe(1);
  });

  it('a real Prometheus scrapes the three daemons: every target up, the series there, the dashboard queries valid', async () => {
    await waitFor('Prometheus to find all four targets up', async () => {
      const up = await query('up');
      return up.data?.result.length === 4 && up.data.result.every((r) => r.value[1] === '1');
    }, 60_000).catch(async (err: Error) => {
      const targets = await fetch(`${urls.prometheus}/api/v1/targets`).then((r) => r.text()).catch(() => '');
      throw new Error(`${err.message}\ntargets: ${targets.slice(0, 3000)}\nlog:\n${prometheusLog.slice(-3000)}`);
    });
    const info = await query('volplugin_build_info');
    expect(info.data!.result.map((r) => r.metric.daemon).sort()).toEqual(['volmaster', 'volplugin', 'volplugin', 'volsupervisor']);
    await waitFor('the mount steps in Prometheus', async () => {
      const steps = await query('sum by (step) (volplugin_mount_step_duration_seconds_count{job="volplugin",mapper="fuse"})');
      return (steps.data?.result.length ?? 0) >= 8;
    }, 60_000);
    await waitFor('the age of both scheduled volumes in Prometheus', async () => {
      const age = await query(`volplugin_snapshot_age_seconds{tenant="${tenant}"}`);
      return JSON.stringify(age.data?.result.map((r) => r.metric.volume).sort()) === JSON.stringify(['broken', 'kept']);
    }, 60_000);

    // The example alert rules are loaded and evaluate without error on the live series.
    await waitFor('Prometheus to evaluate every example alert rule', async () => {
      const res = (await (await fetch(`${urls.prometheus}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> } };
      const rules = res.data.groups.flatMap((g) => g.rules);
      return rules.length > 0 && rules.every((r) => r.health === 'ok');
    }, 60_000);

    // Every query of the dashboard is one Prometheus accepts.
    const dashboard = JSON.parse(readFileSync(path.join(repoRoot, 'docs/grafana/volplugin.json'), 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        const result = await query(target.expr.replaceAll('$__rate_interval', '1m'));
        expect(result.error ?? '', `${panel.title}: ${target.expr}`).toBe('');
        expect(result.status).toBe('success');
      }
    }
  });
});

describe('the example alert rules (docs/prometheus)', () => {
  const promtool = (args: string[]) =>
    new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn('promtool', args, { cwd: path.dirname(alertsFile), stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      child.on('exit', (code) => resolve({ code, output }));
    });

  it('pass promtool check rules, and their own tests (a lost volume fires, an overdue snapshot fires, one on schedule does not)', async () => {
    const check = await promtool(['check', 'rules', 'alerts.yml']);
    expect(check.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(check.code).toBe(0);
    const tests = await promtool(['test', 'rules', 'alerts.test.yml']);
    expect(tests.output).toMatch(/SUCCESS/);
    expect(tests.code).toBe(0);
  });
});

describe('bad metrics flags and ports', () => {
  const bins = { volmaster: 'master', volplugin: 'plugin', volsupervisor: 'supervisor' } as const;
  /** Starts a daemon that must fail at once (its metrics flags are checked, and its port bound, before it connects to anything). */
  const startFails = (daemon: keyof typeof bins, args: string[], dir = root) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const own = daemon === 'volplugin' ? ['--socket-dir', dir, '--state-dir', dir, '--mount-root', dir] : [];
      const child = spawn(
        process.execPath,
        [path.join(repoRoot, `dist/${bins[daemon]}/main.js`), '--etcd', process.env.VOLPLUGIN_TEST_ETCD!, '--prefix', `/volplugin-test-${run}-bad`, ...own, ...args],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('exit', (code) => resolve({ code, stderr }));
    });

  it.each(Object.keys(bins) as Array<keyof typeof bins>)('a port in use stops %s at start (exit 1) with what to do; nothing else is started', async (daemon) => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as { port: number }).port;
    const dir = path.join(root, `in-use-${daemon}`);
    await mkdir(dir, { recursive: true });
    try {
      const result = await startFails(daemon, ['--metrics-listen', `127.0.0.1:${port}`], dir);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `${daemon}: --metrics-listen 127.0.0.1:${port}: the port is in use (another ${daemon}, or another program); choose another with --metrics-listen HOST:PORT, or turn the endpoint off with --metrics-listen none\n`,
      );
      expect(await readdir(dir)).toEqual([]); // volplugin made no socket, identity or mount table
    } finally {
      taken.close();
    }
  });

  it('a bad address, or one beyond loopback without a token, is a usage error (exit 2) naming the flag', async () => {
    const bad = await startFails('volsupervisor', ['--metrics-listen', 'localhost']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^volsupervisor: --metrics-listen "localhost" is not HOST:PORT/);
    const open = await startFails('volplugin', ['--metrics-listen', '0.0.0.0:9999']);
    expect(open.code).toBe(2);
    expect(open.stderr).toMatch(/--metrics-listen 0.0.0.0:9999 reaches beyond this machine and no --metrics-token-file is given/);
  });
});
