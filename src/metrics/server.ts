// A daemon's Prometheus endpoint: GET /metrics on its own port (--metrics-listen), apart from
// anything else the daemon serves, so that a scraper needs no access to the API or the plugin
// socket. It may ask for a bearer token (authorize) and serve HTTPS (volmaster's certificate).
// Each daemon binds it first, before it connects to anything: a port in use ends the start with a
// clear error and nothing done.

import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { readTokenFile } from '../api/client.js';
import { bearerOf, tokenMatches } from '../common/bearer.js';
import { messageOf } from '../common/errors.js';
import { daemonRegistry, type Daemon } from './families.js';
import type { MetricsConfig } from './flags.js';

/** Whether a scrape may read the metrics: given the bearer token it sent (null: none). Throws when it cannot tell now (503). */
export type Authorize = (token: string | null) => Promise<boolean>;

export interface MetricsServerOptions {
  daemon: Daemon;
  listen: { host: string; port: number };
  /** Serve HTTPS with this key and certificate (PEM). */
  https?: { key: string; cert: string } | null;
  /** Null or absent: anyone who can connect may scrape. */
  authorize?: Authorize | null;
  log: Logger;
  /** What to show (default: the daemon's registry). */
  registry?: Registry;
}

export interface MetricsServer {
  /** e.g. http://127.0.0.1:9008/metrics */
  url: string;
  close(): Promise<void>;
}

/** The scrape token of --metrics-token-file, as an Authorize (null without one). */
export async function scrapeTokenAuthorizer(config: MetricsConfig): Promise<Authorize | null> {
  if (!config.tokenFile) return null;
  const expected = await readTokenFile(config.tokenFile, '--metrics-token-file');
  return async (token) => token !== null && tokenMatches(expected, token);
}

function listenError(err: NodeJS.ErrnoException, where: string, daemon: Daemon): Error {
  const fix = 'choose another with --metrics-listen HOST:PORT, or turn the endpoint off with --metrics-listen none';
  switch (err.code) {
    case 'EADDRINUSE':
      return new Error(`--metrics-listen ${where}: the port is in use (another ${daemon}, or another program); ${fix}`, { cause: err });
    case 'EADDRNOTAVAIL':
      return new Error(`--metrics-listen ${where}: the host is not an address of this machine; ${fix}`, { cause: err });
    case 'EACCES':
      return new Error(`--metrics-listen ${where}: not allowed to listen there (a port below 1024 needs root); ${fix}`, { cause: err });
    default:
      return new Error(`--metrics-listen ${where}: cannot listen (${messageOf(err)}); ${fix}`, { cause: err });
  }
}

function send(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
  res.end(text);
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { daemon, listen, log } = options;
  const registry = options.registry ?? daemonRegistry(daemon);
  const authorize = options.authorize ?? null;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = (req.url ?? '/').split('?')[0];
    if (url !== '/metrics') return send(res, 404, `${daemon} serves only GET /metrics here\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'only GET /metrics\n', { Allow: 'GET, HEAD' });
    if (authorize) {
      let allowed: boolean;
      try {
        allowed = await authorize(bearerOf(req.headers.authorization));
      } catch (err) {
        log.warn({ err: messageOf(err) }, 'cannot check a metrics token now');
        return send(res, 503, `cannot check the token now: ${messageOf(err)}\n`);
      }
      if (!allowed) {
        return send(res, 401, 'this endpoint needs a bearer token: the --metrics-token-file token (or, for volmaster, any API token, e.g. of role read-only)\n', {
          'WWW-Authenticate': 'Bearer',
        });
      }
    }
    const text = await registry.metrics();
    res.writeHead(200, { 'Content-Type': registry.contentType });
    res.end(req.method === 'HEAD' ? undefined : text);
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err: messageOf(err) }, 'collecting the metrics failed');
      if (!res.headersSent) send(res, 500, `collecting the metrics failed: ${messageOf(err)}\n`);
      else res.destroy();
    });
  };
  const server: Server = options.https ? createHttps(options.https, onRequest) : createHttp(onRequest);

  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError(err, `${host}:${listen.port}`, daemon)));
    server.listen(listen.port, listen.host, () => resolve());
  });
  server.on('error', (err) => log.error({ err: messageOf(err) }, 'metrics endpoint failed'));
  const address = server.address();
  const port = address && typeof address === 'object' ? address.port : listen.port;
  const url = `${options.https ? 'https' : 'http'}://${host}:${port}/metrics`;
  log.info({ url, auth: authorize ? 'token' : 'none' }, 'metrics endpoint listening');

  let closing: Promise<void> | null = null;
  return {
    url,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

/** The endpoint of a daemon whose only credential is the scrape token (volplugin, volsupervisor); null when turned off. */
export async function startDaemonMetrics(daemon: Daemon, config: MetricsConfig, log: Logger): Promise<MetricsServer | null> {
  if (!config.listen) return null;
  return startMetricsServer({ daemon, listen: config.listen, authorize: await scrapeTokenAuthorizer(config), log });
}
