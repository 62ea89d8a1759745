// The metrics (src/metrics/): the catalogue follows Prometheus' conventions and docs/metrics.md,
// the alert rules and the dashboard name only families that exist; the API hook labels routes by
// pattern; the storage decorator counts calls and errors; the endpoint's tokens and errors; and the
// metrics flags of the three daemons.
import { readFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { once } from 'node:events';
import path from 'node:path';
import pino from 'pino';
import type { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/master/app.js';
import { metricsAuthorizer } from '../../src/master/metrics.js';
import { TokenCache } from '../../src/master/auth.js';
import * as masterConfig from '../../src/master/config.js';
import { daemonRegistry, registries } from '../../src/metrics/families.js';
import { startMetricsServer, type MetricsServer } from '../../src/metrics/server.js';
import * as pluginConfig from '../../src/plugin/config.js';
import { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import { MemoryStorage, memoryStorage } from '../../src/storage/memory.js';
import { metered } from '../../src/storage/metered.js';
import * as supervisorConfig from '../../src/supervisor/config.js';
import { parseMetrics, valueOf } from '../helpers/metrics.js';
import { repoRoot } from '../helpers/sandbox.js';

const log = pino({ level: 'silent' });

async function samples(registry: Registry) {
  return parseMetrics(await registry.metrics());
}

/** Every family of the catalogue: name, type, labels, help. */
async function families() {
  const all = await Promise.all(Object.values(registries).map((r) => r.getMetricsAsJSON()));
  return all.flat().map((m) => ({ name: m.name, type: String(m.type), help: m.help, labels: [...new Set(m.values.flatMap((v) => Object.keys(v.labels)))] }));
}

const catalogue = () =>
  Object.values(registries).flatMap((r) => r.getMetricsAsArray()).map((m) => ({ name: (m as unknown as { name: string }).name, labels: (m as unknown as { labelNames: string[] }).labelNames }));

describe('the catalogue of families (src/metrics/families.ts)', () => {
  it('follows Prometheus conventions: a volplugin_ prefix, _total on counters only, units in names, bounded labels', async () => {
    const all = await families();
    expect(all.length).toBeGreaterThan(25);
    for (const f of all) {
      expect(f.name, f.name).toMatch(/^volplugin_[a-z_]+$/);
      expect(f.help.length, `${f.name} has help`).toBeGreaterThan(20);
      expect(f.name.endsWith('_total'), `${f.name}: _total is for counters (and only them)`).toBe(f.type === 'counter');
      if (f.type === 'histogram') expect(f.name, `${f.name}: a histogram of durations in seconds`).toMatch(/_duration_seconds$/);
    }
    for (const f of catalogue()) {
      for (const label of f.labels) expect(['id', 'container', 'request', 'url', 'path', 'device', 'mountpoint', 'host'], `${f.name}{${label}}`).not.toContain(label);
    }
    // Per-object labels only where one series per scheduled volume is the point.
    const perVolume = catalogue().filter((f) => f.labels.includes('volume')).map((f) => f.name);
    expect(perVolume.sort()).toEqual(['volplugin_snapshot_age_seconds', 'volplugin_snapshot_interval_seconds']);
  });

  it('docs/metrics.md describes every family; the alert rules and the dashboard use only families that exist', () => {
    const names = new Set(catalogue().map((f) => f.name));
    const doc = readFileSync(path.join(repoRoot, 'docs/metrics.md'), 'utf8');
    for (const name of names) expect(doc, `docs/metrics.md mentions ${name}`).toContain(`\`${name}\``);
    const used = (file: string) =>
      [...readFileSync(path.join(repoRoot, file), 'utf8').matchAll(/volplugin_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, ''));
    for (const file of ['docs/metrics.md', 'docs/prometheus/alerts.yml', 'docs/grafana/volplugin.json']) {
      const unknown = used(file).filter((n) => !names.has(n) && !n.startsWith('volplugin_test'));
      expect(unknown, `${file} names families that do not exist`).toEqual([]);
    }
    // The dashboard shows every family (build info is only a label source).
    const onDashboard = new Set(used('docs/grafana/volplugin.json'));
    expect([...names].filter((n) => !onDashboard.has(n) && n !== 'volplugin_build_info'), 'families missing from the dashboard').toEqual([]);
  });

  it("each daemon's registry shows its concerns and the process metrics, with build info naming it", async () => {
    const names = async (daemon: 'volmaster' | 'volplugin' | 'volsupervisor') => new Set((await daemonRegistry(daemon).getMetricsAsJSON()).map((m) => m.name));
    const plugin = await names('volplugin');
    expect(plugin.has('volplugin_mount_step_duration_seconds')).toBe(true);
    expect(plugin.has('volplugin_api_request_duration_seconds')).toBe(false);
    expect(plugin.has('process_cpu_seconds_total')).toBe(true);
    expect(plugin.has('nodejs_active_handles_total')).toBe(false); // a gauge named like a counter: promtool refuses it
    const master = await names('volmaster');
    expect(master.has('volplugin_api_request_duration_seconds') && master.has('volplugin_snapshots_taken_total') && !master.has('volplugin_mounts')).toBe(true);
    const supervisor = await names('volsupervisor');
    expect(supervisor.has('volplugin_snapshot_age_seconds') && supervisor.has('volplugin_ceph_call_errors_total')).toBe(true);
    expect(valueOf(await samples(daemonRegistry('volsupervisor')), 'volplugin_build_info', { daemon: 'volsupervisor' })).toBe(1);
  });
});

describe('volmaster API requests', () => {
  let app: App;
  beforeEach(async () => {
    app = await createApp({ store: new StateStore(new MemoryKV()), storage: memoryStorage(), janitorIntervalMs: 0 });
    await app.ready();
  });
  afterEach(async () => {
    await app.close();
  });

  it('are counted by method, route pattern and status, never by the raw URL', async () => {
    const count = async (labels: Record<string, string>) => valueOf(await samples(registries.api), 'volplugin_api_request_duration_seconds_count', labels);
    const route = { method: 'GET', route: '/v1/volumes/:tenant/:volume', status: '404' };
    const before = { known: await count(route), unmatched: await count({ route: 'unmatched', status: '404' }) };
    expect((await app.inject({ method: 'GET', url: '/v1/volumes/secret-tenant/secret-volume' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/v1/secret-tenant/nothing' })).statusCode).toBe(404);
    expect(await count(route)).toBe(before.known + 1);
    expect(await count({ route: 'unmatched', status: '404' })).toBe(before.unmatched + 1);
    expect(await registries.api.metrics()).not.toContain('secret');
  });
});

describe('Ceph calls (storage/metered.ts)', () => {
  it('observes every call and counts failures by call and errno name; running calls are in the gauge while open', async () => {
    const backend = new MemoryStorage();
    const storage = metered(backend);
    const count = async (name: string, labels: Record<string, string>) => valueOf(await samples(registries.common), name, labels);
    const before = {
      calls: await count('volplugin_ceph_call_duration_seconds_count', { call: 'imageInfo' }),
      errors: await count('volplugin_ceph_call_errors_total', { call: 'imageInfo', code: 'ENOENT' }),
      eio: await count('volplugin_ceph_call_errors_total', { call: 'listImages', code: 'EIO' }),
    };
    await expect(storage.imageInfo('rbd', 'missing')).rejects.toMatchObject({ code: 'ENOENT' });
    backend.failNext('listImages', 'EIO');
    await expect(storage.listImages('rbd')).rejects.toMatchObject({ code: 'EIO' });
    expect(await count('volplugin_ceph_call_duration_seconds_count', { call: 'imageInfo' })).toBe(before.calls + 1);
    expect(await count('volplugin_ceph_call_errors_total', { call: 'imageInfo', code: 'ENOENT' })).toBe(before.errors + 1);
    expect(await count('volplugin_ceph_call_errors_total', { call: 'listImages', code: 'EIO' })).toBe(before.eio + 1);

    const hang = backend.hang('listImages');
    const pending = storage.listImages('rbd');
    await hang.reached;
    expect(await count('volplugin_ceph_calls_running', {})).toBeGreaterThanOrEqual(1);
    await hang.release();
    await pending;
    await storage.close();
    expect(await count('volplugin_ceph_calls_running', {})).toBe(0);
  });
});

describe('the metrics endpoint (metrics/server.ts)', () => {
  let server: MetricsServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  const get = (url: string, options: { token?: string; method?: string } = {}) =>
    new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
      const req = request(url, { method: options.method ?? 'GET', headers: options.token ? { authorization: `Bearer ${options.token}` } : {} }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      });
      req.on('error', reject);
      req.end();
    });

  it('serves GET /metrics to the right token only: 401 with WWW-Authenticate otherwise, 503 when the token cannot be checked', async () => {
    let unavailable = false;
    server = await startMetricsServer({
      daemon: 'volplugin',
      listen: { host: '127.0.0.1', port: 0 },
      log,
      authorize: async (token) => {
        if (unavailable) throw new Error('etcd is away');
        return token === 'scrape-me';
      },
    });
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const ok = await get(server.url, { token: 'scrape-me' });
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(ok.body).toContain('# TYPE volplugin_mounts gauge');
    const refused = await get(server.url);
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toBe('Bearer');
    expect((await get(server.url, { token: 'wrong' })).status).toBe(401);
    unavailable = true;
    expect((await get(server.url, { token: 'scrape-me' })).status).toBe(503);
    expect((await get(server.url.replace('/metrics', '/'))).status).toBe(404);
    expect((await get(server.url, { method: 'POST' })).status).toBe(405);
  });

  it('a port in use fails the start, saying what to do', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as { port: number }).port;
    try {
      await expect(startMetricsServer({ daemon: 'volmaster', listen: { host: '127.0.0.1', port }, log })).rejects.toThrow(
        `--metrics-listen 127.0.0.1:${port}: the port is in use (another volmaster, or another program); choose another with --metrics-listen HOST:PORT, or turn the endpoint off with --metrics-listen none`,
      );
    } finally {
      taken.close();
    }
  });
});

describe("who may scrape volmaster (master/metrics.ts)", () => {
  it('with tokens: the bootstrap token, the scrape token, and any API token of etcd; an open API without a scrape token: anyone', async () => {
    const store = new StateStore(new MemoryKV());
    await store.createToken('read-only-token', { name: 'prometheus', role: 'read-only', createdBy: 'test' });
    const tokens = new TokenCache(store);
    const authorize = metricsAuthorizer({ bootstrapToken: 'boot', scrapeToken: async (t) => t === 'scrape', tokens: () => tokens })!;
    expect(await authorize('boot')).toBe(true);
    expect(await authorize('scrape')).toBe(true);
    expect(await authorize('read-only-token')).toBe(true);
    expect(await authorize('unknown')).toBe(false);
    expect(await authorize(null)).toBe(false);
    const starting = metricsAuthorizer({ bootstrapToken: 'boot', scrapeToken: null, tokens: () => null })!;
    await expect(starting('read-only-token')).rejects.toThrow(/starting/);
    expect(metricsAuthorizer({ bootstrapToken: null, scrapeToken: null, tokens: () => null })).toBeNull();
    const scrapeOnly = metricsAuthorizer({ bootstrapToken: null, scrapeToken: async (t) => t === 'scrape', tokens: () => null })!;
    expect(await scrapeOnly('read-only-token')).toBe(false);
  });
});

describe('metrics flags', () => {
  const daemons = [
    { name: 'volmaster', parse: masterConfig.parseConfig, listen: '127.0.0.1:9006', env: 'VOLMASTER_METRICS_LISTEN' },
    { name: 'volplugin', parse: pluginConfig.parseConfig, listen: '127.0.0.1:9008', env: 'VOLPLUGIN_METRICS_LISTEN' },
    { name: 'volsupervisor', parse: supervisorConfig.parseConfig, listen: '127.0.0.1:9007', env: 'VOLSUPERVISOR_METRICS_LISTEN' },
  ];

  it.each(daemons)('$name: on by default on loopback; the environment replaces the default; none turns it off', ({ parse, listen, env }) => {
    const [host, port] = listen.split(':');
    expect(parse([], {}).metrics).toEqual({ listen: { host, port: Number(port) }, tokenFile: null });
    expect(parse([], { [env]: '127.0.0.1:1234' }).metrics.listen).toEqual({ host: '127.0.0.1', port: 1234 });
    expect(parse(['--metrics-listen', 'none'], {}).metrics).toEqual({ listen: null, tokenFile: null });
    expect(parse(['--metrics-listen', '[::1]:9100', '--metrics-token-file', 'tok'], {}).metrics).toEqual({ listen: { host: '::1', port: 9100 }, tokenFile: path.resolve('tok') });
  });

  it.each(daemons)('$name: a bad address, or one beyond loopback without a token, is refused naming the flag', ({ parse }) => {
    expect(() => parse(['--metrics-listen', 'nine'], {})).toThrow('--metrics-listen "nine" is not HOST:PORT');
    expect(() => parse(['--metrics-listen', '127.0.0.1:70000'], {})).toThrow(/--metrics-listen "127.0.0.1:70000" is not HOST:PORT/);
    expect(() => parse(['--metrics-listen', '0.0.0.0:9100'], {})).toThrow(/--metrics-listen 0.0.0.0:9100 reaches beyond this machine and no --metrics-token-file is given/);
    expect(parse(['--metrics-listen', '0.0.0.0:9100', '--metrics-token-file', 'tok'], {}).metrics.listen).toEqual({ host: '0.0.0.0', port: 9100 });
    expect(() => parse(['--metrics-listen', 'none', '--metrics-token-file', 'tok'], {})).toThrow(/which --metrics-listen none turns off/);
  });

  it("volmaster beyond loopback may rely on its API tokens (--token-file) or --insecure", () => {
    expect(masterConfig.parseConfig(['--metrics-listen', '0.0.0.0:9006', '--token-file', 't'], {}).metrics.listen).toEqual({ host: '0.0.0.0', port: 9006 });
    expect(masterConfig.parseConfig(['--metrics-listen', '0.0.0.0:9006', '--listen', '0.0.0.0:9005', '--insecure'], {}).metrics.listen).toEqual({ host: '0.0.0.0', port: 9006 });
  });
});
