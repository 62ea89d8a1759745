// volmaster as a Fastify plugin: decorates its dependencies (the etcd StateStore, the Ceph Storage,
// the VolumeService built on both), installs the JSON body parser, the request validator (TypeBox,
// no coercion: validation.ts), who is calling (auth.ts) and what they may do (access.ts), the
// error catalogue and the OpenAPI document, then registers one route file per resource group.
// server.ts only listens; tests register this plugin on an instance made by createApp() and use inject().

import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import type { Logger } from 'pino';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { parseJson } from '../policy/json.js';
import type { StateStore } from '../state/store.js';
import type { Storage } from '../storage/types.js';
import { SnapshotService } from '../snapshots/service.js';
import { BackupService } from '../backups/service.js';
import { backupConfig, type BackupConfig } from '../backups/config.js';
import { recoverDeadRestores } from '../backups/restore.js';
import { installAccess } from './access.js';
import { AUDIT_BOUNDS, installAudit } from './audit.js';
import { installAuth, TokenCache } from './auth.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { failpoint, type Failpoints } from './failpoints.js';
import { installApiMetrics } from './metrics.js';
import { OPERATION_BOUNDS, OperationRunner } from './operations.js';
import { VolumeResizer } from './resize.js';
import { validatorCompiler } from './validation.js';
import { VolumeService } from './volumes.js';
import { timed } from '../storage/timed.js';
import { VERSION } from './version.js';
import healthRoutes from './routes/health.js';
import tenantRoutes from './routes/tenants.js';
import volumeRoutes from './routes/volumes.js';
import runtimeRoutes from './routes/runtime.js';
import mountRoutes from './routes/mounts.js';
import hostRoutes from './routes/hosts.js';
import snapshotRoutes from './routes/snapshots.js';
import groupRoutes from './routes/groups.js';
import tokenRoutes from './routes/tokens.js';
import attachmentRoutes from './routes/attachments.js';
import backupRoutes from './routes/backups.js';
import operationRoutes from './routes/operations.js';
import auditRoutes from './routes/audit.js';

export interface VolmasterOptions {
  store: StateStore;
  storage: Storage;
  /** The bootstrap admin token (--token-file); null or absent: none. */
  token?: string | null;
  /**
   * Whether every request but /v1/health needs a token (the bootstrap one or one from etcd). Default:
   * when `token` is set. False: an open API, every caller is admin (server.ts allows it only on
   * loopback or with --insecure).
   */
  requireAuth?: boolean;
  /** How long a token read from etcd is trusted before it is read again (default 5 s). */
  tokenCacheMs?: number;
  /** How often the janitor resolves creates that died half-way (default 30 s; 0 disables it). */
  janitorIntervalMs?: number;
  /** Operation-lock lease TTL and wait, passed to VolumeService. */
  lockTtlSeconds?: number;
  lockWaitMs?: number;
  failpoints?: Failpoints;
  /** Bound of every Ceph call made for a request (default 30 s). */
  cephTimeoutMs?: number;
  /** Where backup targets may be and which hooks may run (volmaster --backup-*; default: the flags' defaults). */
  backups?: BackupConfig;
  /** Opens a Ceph backup target's connection (tests with the memory twin; default: the storage's backend). */
  openBackupTarget?: ConstructorParameters<typeof BackupService>[2]['openTargetStorage'];
  /** How long a resize waits for the host holding the volume to grow its filesystem (default 60 s). */
  resizeHostTimeoutMs?: number;
  /** Close store and storage when the app closes (server.ts: yes; tests sharing them: no). */
  closeDependencies?: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    store: StateStore;
    storage: Storage;
    volumes: VolumeService;
    snapshots: SnapshotService;
    backups: BackupService;
    /** Long operations (resize, remove, copy) that clients poll (operations.ts). */
    operations: OperationRunner;
    resizer: VolumeResizer;
    /** Tokens read from etcd (null on an open API); the token routes drop what they revoke. */
    tokens: TokenCache | null;
  }
}

export type App = FastifyInstance;

/** The one place the route plugins are listed: a new resource group is one line here. */
export const routeGroups = [healthRoutes, tenantRoutes, volumeRoutes, runtimeRoutes, mountRoutes, hostRoutes, snapshotRoutes, groupRoutes, backupRoutes, tokenRoutes, operationRoutes, auditRoutes, attachmentRoutes];

async function volmaster(app: FastifyInstance, options: VolmasterOptions): Promise<void> {
  const { store, storage } = options;
  app.decorate('store', store);
  app.decorate('storage', storage);
  app.decorate(
    'volumes',
    new VolumeService({
      store,
      storage,
      log: app.log,
      lockTtlSeconds: options.lockTtlSeconds,
      lockWaitMs: options.lockWaitMs,
      failpoints: options.failpoints,
      cephTimeoutMs: options.cephTimeoutMs,
    }),
  );
  app.decorate(
    'snapshots',
    new SnapshotService(storage, store, {
      logger: app.log as unknown as Logger,
      lockWaitMs: options.lockWaitMs ?? 30_000,
      callTimeoutMs: options.cephTimeoutMs,
      freeze: { afterFreeze: () => failpoint(options.failpoints, 'after-freeze') },
      beforeGroupRollback: () => failpoint(options.failpoints, 'before-group-rollback'),
    }),
  );
  const backups = new BackupService(storage, store, {
    config: options.backups ?? backupConfig({ backupHookTimeout: 600 }, {}),
    logger: app.log as unknown as Logger,
    lockWaitMs: options.lockWaitMs ?? 30_000,
    lockTtlSeconds: options.lockTtlSeconds,
    callTimeoutMs: options.cephTimeoutMs,
    openTargetStorage: options.openBackupTarget,
    ...(options.failpoints?.['backup-after-export'] !== undefined ? { afterExport: () => failpoint(options.failpoints, 'backup-after-export') } : {}),
  });
  app.decorate('backups', backups);
  app.decorate('operations', new OperationRunner({ store, log: app.log }));
  app.decorate(
    'resizer',
    new VolumeResizer({
      store,
      storage: timed(storage, options.cephTimeoutMs ?? 30_000),
      longStorage: timed(storage, 3_600_000),
      log: app.log,
      lockTtlSeconds: options.lockTtlSeconds ?? 10,
      lockWaitMs: options.lockWaitMs ?? 30_000,
      hostTimeoutMs: options.resizeHostTimeoutMs,
    }),
  );

  // JSON bodies with errors that name line and column (Fastify's own parser gives an offset at best).
  // Only JSON is accepted: other types (text/plain included) are answered 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, parseJson(text, 'the request body'));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  app.setValidatorCompiler(validatorCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  const required = options.requireAuth ?? Boolean(options.token);
  const tokens = required ? new TokenCache(store, options.tokenCacheMs) : null;
  app.decorate('tokens', tokens);
  installAuth(app, { bootstrapToken: options.token ?? null, required, tokens });
  installAccess(app);
  installApiMetrics(app);
  // Every change at info; reads at debug (at thousands a second their log lines cost more CPU than
  // answering them: docs/performance.md), unless they failed on our side.
  app.addHook('onResponse', async (request, reply) => {
    const read = request.method === 'GET' || request.method === 'HEAD';
    const level = reply.statusCode >= 500 ? 'warn' : read ? 'debug' : 'info';
    request.log[level]({ method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, by: request.caller?.name }, 'request completed');
  });
  installAudit(app);

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'volmaster',
        version: VERSION,
        description:
          'Cluster-wide Ceph RBD volume management for Docker. Errors are {code, message, field?}; see docs/api.md for the catalogue.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'service', description: 'Health, readiness, this document' },
        { name: 'tenants', description: 'Tenant policies and their history' },
        { name: 'volumes', description: 'Volumes (RBD images and their records)' },
        { name: 'mounts', description: 'Which host has which volume mounted' },
        { name: 'hosts', description: 'What each volplugin reports about itself' },
        { name: 'snapshots', description: 'Snapshots of a volume' },
        { name: 'backups', description: "Backups of a volume to its tenant's target (docs/backups.md)" },
        { name: 'tokens', description: 'API tokens and their roles (admin only)' },
        { name: 'attachments', description: 'Which host a CSI CO has published each volume to' },
        { name: 'operations', description: 'Long operations (resize, remove, copy) and their progress' },
        { name: 'audit', description: 'The audit trail: every change made through the API (admin only)' },
      ],
    },
  });

  for (const routes of routeGroups) await app.register(routes);

  // The janitor, on every master: resolves creates (src/state/intents.ts), resizes (resize.ts)
  // and restores into a volume (src/backups/restore.ts) that died half-way, and keeps the
  // operations' and the audit trail's histories within their bounds.
  const interval = options.janitorIntervalMs ?? 30_000;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  const pass = async () => {
    const creates = await app.volumes.reconcile();
    const resizes = await app.resizer.reconcile();
    const restores = await recoverDeadRestores(backups, options.lockTtlSeconds ?? 10);
    const pruned = (await store.pruneOperations(OPERATION_BOUNDS)) + (await store.pruneAudit(AUDIT_BOUNDS));
    if (creates + resizes + restores > 0) app.log.info({ creates, resizes, restores }, 'janitor resolved unfinished creates, resizes and restores');
    if (pruned > 0) app.log.debug({ pruned }, 'janitor pruned old operations and audit entries');
  };
  const sweep = () => {
    if (running) return;
    running = pass()
      .catch((err: unknown) => app.log.warn({ err }, 'janitor pass failed; will retry'))
      .finally(() => {
        running = null;
      });
  };
  if (interval > 0) {
    app.addHook('onReady', async () => {
      sweep();
      timer = setInterval(sweep, interval);
      timer.unref();
    });
  }

  app.addHook('onClose', async () => {
    if (timer) clearInterval(timer);
    if (running) await running;
    await backups.close();
    await app.operations.close();
    if (options.closeDependencies) {
      await storage.close();
      await store.close();
    }
  });
}

/** The volmaster plugin (fastify-plugin: its decorators and hooks apply to the instance it is registered on). */
export const volmasterApp = fp(volmaster, { name: 'volmaster', fastify: '5.x' });

export interface CreateAppOptions extends VolmasterOptions {
  logger?: FastifyServerOptions['logger'] | FastifyBaseLogger;
  /** Serve HTTPS with this key and certificate (PEM). */
  https?: { key: string; cert: string } | null;
}

/** A Fastify instance with volmaster registered: what server.ts listens with and tests inject into. */
export async function createApp(options: CreateAppOptions): Promise<App> {
  const { logger, https, ...rest } = options;
  const loggerOptions =
    logger && typeof logger === 'object' && 'child' in logger && typeof logger.child === 'function'
      ? { loggerInstance: logger as FastifyBaseLogger }
      : { logger: (logger as FastifyServerOptions['logger']) ?? false };
  const app = Fastify({
    ...loggerOptions,
    ...(https ? { https } : {}),
    bodyLimit: 1 << 20,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // One line per request, written by the onResponse hook below (Fastify's own are two, at info).
    disableRequestLogging: true,
    // Requests are validated by TypeBox (validation.ts); ajv is set never to coerce or fill in either.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  await app.register(volmasterApp, rest);
  return app as unknown as App;
}
