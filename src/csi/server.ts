// The gRPC server of the CSI driver on the unix socket CSI_ENDPOINT names: the Identity service
// always, Controller and Node as the mode says (a service not served answers UNIMPLEMENTED, as
// gRPC does for any unknown method). Every call is logged without its secrets, its error becomes
// the CSI status (errors.ts), and its cancellation (the CO gave up) aborts the work's signal.

import { chmod, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { messageOf } from '../common/errors.js';
import { claimSocket, SOCKET_MODE } from '../plugin/app.js';
import { CsiError, status, toCsiError } from './errors.js';
import { csiServices } from './proto.js';

/** One RPC: the decoded request and a signal that aborts when the CO cancels the call. */
export type Handler = (request: never, signal: AbortSignal) => Promise<object>;
export type Handlers = Record<string, Handler>;

/**
 * The socket path of a CSI endpoint: `unix:///path.sock` (the spec's form), `unix:/path.sock`, or
 * a bare absolute path (what Docker Swarm sets). Anything else is refused: CSI is served on unix
 * sockets only.
 */
export function endpointPath(endpoint: string): string {
  const text = endpoint.trim();
  const file = text.startsWith('unix://') ? text.slice('unix://'.length) : text.startsWith('unix:') ? text.slice('unix:'.length) : text;
  if (!file.startsWith('/') || /^[a-z][a-z0-9+.-]*:/i.test(file)) {
    throw new Error(`CSI endpoint ${JSON.stringify(endpoint)} is not a unix socket: give unix:///path/to/csi.sock (CSI_ENDPOINT or --endpoint)`);
  }
  return path.normalize(file);
}

/** The request's fields worth a log line: ids and paths, never secrets or contexts. */
function about(request: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ['name', 'volume_id', 'node_id', 'snapshot_id', 'source_volume_id', 'staging_target_path', 'target_path', 'volume_path']) {
    const value = request[key];
    if (typeof value === 'string' && value !== '') out[key] = value;
  }
  return out;
}

/** Refuses a second operation on one key while the first runs (CSI's ABORTED: "an operation is pending for the volume"). */
export class InFlight {
  private readonly keys = new Set<string>();

  async run<T>(key: string, what: string, fn: () => Promise<T>): Promise<T> {
    if (this.keys.has(key)) throw new CsiError(status.ABORTED, `another operation on ${what} is in progress; try again when it is done`);
    this.keys.add(key);
    try {
      return await fn();
    } finally {
      this.keys.delete(key);
    }
  }
}

function implement(service: string, handlers: Handlers, log: Logger): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  for (const [method, handler] of Object.entries(handlers)) {
    out[method] = (call: ServerUnaryCall<Record<string, unknown>, object>, callback: sendUnaryData<object>) => {
      const started = Date.now();
      const controller = new AbortController();
      call.on('cancelled', () => controller.abort(new CsiError(status.CANCELLED, `${method} was cancelled by the caller`)));
      const fields = { rpc: `${service}.${method}`, ...about(call.request) };
      handler(call.request as never, controller.signal).then(
        (response) => {
          log.debug({ ...fields, ms: Date.now() - started }, 'csi call done');
          callback(null, response);
        },
        (err: unknown) => {
          const failure = toCsiError(err);
          const entry = { ...fields, code: status[failure.code], err: failure.message, ms: Date.now() - started };
          if (failure.code === status.INTERNAL || failure.code === status.UNAVAILABLE) log.warn({ ...entry, cause: messageOf(failure.cause ?? failure) }, 'csi call failed');
          else log.info(entry, 'csi call refused');
          callback({ code: failure.code, details: failure.message });
        },
      );
    };
  }
  return out;
}

export interface CsiServices {
  identity: Handlers;
  controller?: Handlers;
  node?: Handlers;
}

export interface RunningCsiServer {
  socket: string;
  /** Stops taking calls, lets running ones finish for up to `graceMs`, and removes the socket. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Serves the services on the endpoint's socket, mode 0600: whoever can connect can mount, format
 * and delete volumes (the CO's plugin directory is root's). A socket another process serves is
 * refused; a stale one replaced.
 */
export async function serveCsi(endpoint: string, services: CsiServices, log: Logger): Promise<RunningCsiServer> {
  const socket = endpointPath(endpoint);
  await mkdir(path.dirname(socket), { recursive: true });
  await claimSocket(socket);
  const definitions = csiServices();
  const server = new Server({ 'grpc.max_receive_message_length': 4 << 20 });
  server.addService(definitions.Identity, implement('Identity', services.identity, log));
  if (services.controller) server.addService(definitions.Controller, implement('Controller', services.controller, log));
  if (services.node) server.addService(definitions.Node, implement('Node', services.node, log));
  // bind() gives the socket file the mode the umask leaves: narrowed for the bind, it is never
  // open to others; chmod makes it exact. Nothing else of this process runs meanwhile (it is bound
  // before the host agent starts).
  const umask = process.umask(0o777 & ~SOCKET_MODE);
  try {
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    });
  } finally {
    process.umask(umask);
  }
  await chmod(socket, SOCKET_MODE);
  log.info({ socket, services: ['Identity', ...(services.controller ? ['Controller'] : []), ...(services.node ? ['Node'] : [])] }, 'serving CSI');
  return {
    socket,
    async stop(graceMs = 10_000) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await rm(socket, { force: true });
    },
  };
}
