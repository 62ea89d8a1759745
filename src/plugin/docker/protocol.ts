// Docker's volume plugin protocol (v1: JSON over HTTP on a unix socket), as dockerd 20.10 speaks
// it. Every call is a POST to /<Interface>.<Method> with a JSON body; every answer is HTTP 200 with
// a JSON body, failures carrying `Err` (dockerd shows that text to the user). Each method runs
// under a deadline below dockerd's own (2 min for Mount/Unmount, 1 min otherwise) so that the
// answer is always ours, not dockerd's timeout.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dockerRequestDuration } from '../../metrics/families.js';
import { PluginError, messageOf } from '../errors.js';

export const CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

export interface DockerVolume {
  Name: string;
  Mountpoint?: string;
  CreatedAt?: string;
  Status?: Record<string, unknown>;
}

/** What the protocol server calls; names are Docker's volume names ("tenant/volume"). */
export interface VolumeDriver {
  create(name: string, opts: Record<string, string>, signal: AbortSignal): Promise<void>;
  remove(name: string, signal: AbortSignal): Promise<void>;
  /** Returns the host path Docker bind-mounts into the container. */
  mount(name: string, id: string, signal: AbortSignal): Promise<string>;
  unmount(name: string, id: string, signal: AbortSignal): Promise<void>;
  /** The mountpoint on this host, or "" when not mounted here. */
  path(name: string, signal: AbortSignal): Promise<string>;
  get(name: string, signal: AbortSignal): Promise<DockerVolume>;
  list(signal: AbortSignal): Promise<DockerVolume[]>;
}

export interface ProtocolLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface ProtocolOptions {
  /** Deadline of Mount and Unmount (default 100 s; dockerd gives up after 120 s). */
  longTimeoutMs?: number;
  /** Deadline of every other method (default 50 s; dockerd gives up after 60 s). */
  shortTimeoutMs?: number;
  log?: ProtocolLog;
}

const MAX_BODY = 1 << 20;

type Body = Record<string, unknown>;

function nameOf(body: Body): string {
  const name = body.Name;
  if (typeof name !== 'string' || name === '') {
    throw new PluginError('INVALID_NAME', 'the request has no volume Name; name volplugin volumes TENANT/VOLUME, e.g. tenant1/data');
  }
  return name;
}

function idOf(body: Body): string {
  const id = body.ID;
  if (typeof id !== 'string' || id === '') {
    throw new PluginError('BAD_REQUEST', 'the request has no ID; dockerd sends one with every Mount and Unmount (is this dockerd 1.13 or newer?)');
  }
  return id;
}

/** Driver options: Docker sends `null` when there are none, strings otherwise. */
export function optsOf(body: Body): Record<string, string> {
  const opts = body.Opts;
  if (opts === undefined || opts === null) return {};
  if (typeof opts !== 'object' || Array.isArray(opts)) throw new PluginError('INVALID_OPTION', 'Opts must be an object of key=value options');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new PluginError('INVALID_OPTION', `option ${k}: must be a string, as --opt ${k}=VALUE gives`);
    out[k] = v;
  }
  return out;
}

type Handler = (driver: VolumeDriver, body: Body, signal: AbortSignal) => Promise<Body>;

const routes: Record<string, { long: boolean; handle: Handler }> = {
  '/Plugin.Activate': { long: false, handle: async () => ({ Implements: ['VolumeDriver'] }) },
  '/VolumeDriver.Capabilities': { long: false, handle: async () => ({ Capabilities: { Scope: 'global' } }) },
  '/VolumeDriver.Create': {
    long: true,
    handle: async (d, body, signal) => {
      await d.create(nameOf(body), optsOf(body), signal);
      return { Err: '' };
    },
  },
  '/VolumeDriver.Remove': {
    long: false,
    handle: async (d, body, signal) => {
      await d.remove(nameOf(body), signal);
      return { Err: '' };
    },
  },
  '/VolumeDriver.Mount': {
    long: true,
    handle: async (d, body, signal) => ({ Mountpoint: await d.mount(nameOf(body), idOf(body), signal), Err: '' }),
  },
  '/VolumeDriver.Unmount': {
    long: true,
    handle: async (d, body, signal) => {
      await d.unmount(nameOf(body), idOf(body), signal);
      return { Err: '' };
    },
  },
  '/VolumeDriver.Path': {
    long: false,
    handle: async (d, body, signal) => ({ Mountpoint: await d.path(nameOf(body), signal), Err: '' }),
  },
  '/VolumeDriver.Get': {
    long: false,
    handle: async (d, body, signal) => ({ Volume: await d.get(nameOf(body), signal), Err: '' }),
  },
  '/VolumeDriver.List': {
    long: false,
    handle: async (d, _body, signal) => ({ Volumes: await d.list(signal), Err: '' }),
  },
};

export const PROTOCOL_METHODS = Object.keys(routes).map((r) => r.slice(1));

async function readBody(req: IncomingMessage): Promise<Body> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_BODY) throw new PluginError('BAD_REQUEST', `the request body is larger than ${MAX_BODY} bytes`);
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new PluginError('BAD_REQUEST', `the request body is not JSON (${messageOf(err)})`);
  }
  if (parsed === null) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new PluginError('BAD_REQUEST', 'the request body must be a JSON object');
  return parsed as Body;
}

/** Runs `fn` with a signal that aborts at the deadline, and fails with TIMEOUT if it is not done by then. */
async function withDeadline<T>(ms: number, method: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new PluginError(
        'TIMEOUT',
        `${method} did not finish within ${Math.round(ms / 1000)} s; volplugin undid what it had done. ` +
          'Check that the master, etcd and Ceph answer (volplugin log has the step), then try again',
      );
      controller.abort(err);
      reject(err);
    }, ms);
  });
  const work = fn(controller.signal);
  try {
    return await Promise.race([work, timeout]);
  } catch (err) {
    // Give the work a bounded moment to finish undoing itself before answering, so that a retry
    // does not race it. (The mount manager checks the signal before it commits, so work that ends
    // after the deadline rolls back instead of leaving a mount Docker does not know about.)
    if (controller.signal.aborted) {
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([work.catch(() => undefined), new Promise((resolve) => (grace = setTimeout(resolve, 15_000)))]);
      clearTimeout(grace);
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

export function createProtocolServer(driver: VolumeDriver, options: ProtocolOptions = {}): Server {
  const longMs = options.longTimeoutMs ?? 100_000;
  const shortMs = options.shortTimeoutMs ?? 50_000;
  const log = options.log;

  const answer = (res: ServerResponse, status: number, body: Body) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };

  return createServer((req, res) => {
    const url = (req.url ?? '').split('?')[0] ?? '';
    const route = routes[url];
    const method = url.slice(1);
    if (req.method !== 'POST' || !route) {
      answer(res, 404, { Err: `volplugin does not implement ${req.method ?? '?'} ${url}; it speaks ${PROTOCOL_METHODS.join(', ')}` });
      return;
    }
    const started = Date.now();
    const observe = dockerRequestDuration.startTimer({ method });
    void (async () => {
      let body: Body = {};
      try {
        body = await readBody(req);
        const result = await withDeadline(route.long ? longMs : shortMs, method, (signal) => route.handle(driver, body, signal));
        const level = method === 'VolumeDriver.Get' || method === 'VolumeDriver.List' || method === 'VolumeDriver.Path' ? 'debug' : 'info';
        log?.[level]({ method, name: body.Name, id: body.ID, ms: Date.now() - started }, 'docker request served');
        answer(res, 200, result);
        observe({ result: 'ok' });
      } catch (err) {
        const code = err instanceof PluginError ? err.code : 'INTERNAL';
        const level = method === 'VolumeDriver.Get' && code === 'VOLUME_NOT_FOUND' ? 'debug' : 'warn';
        log?.[level]({ method, name: body.Name, id: body.ID, code, err: messageOf(err), ms: Date.now() - started }, 'docker request failed');
        answer(res, 200, { Err: messageOf(err) });
        observe({ result: 'error' });
      }
    })();
  });
}
