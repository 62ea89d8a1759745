#!/usr/bin/env node
// volplugin: runs on every container host as root and serves Docker's volume plugin protocol.
//   volplugin --master 127.0.0.1:9005 --etcd http://127.0.0.1:2379 --ceph-conf /etc/ceph/ceph.conf
// SIGTERM/SIGINT: stop serving and exit; mounted volumes stay mounted for their containers, and a
// volplugin started again within --lock-ttl seconds takes their locks and references back.

import { readFlags } from '../common/flags.js';
import pino from 'pino';
import { connectStorage } from '../storage/index.js';
import { startPlugin, VERSION } from './app.js';
import { buildCommand, configFromOptions } from './config.js';
import { messageOf } from './errors.js';

async function main(): Promise<void> {
  const config = readFlags('volplugin', buildCommand().version(VERSION), configFromOptions);
  const log = pino({ name: 'volplugin', level: config.debug ? 'debug' : 'info', base: { pid: process.pid, host: config.hostLabel } });
  log.info({ version: VERSION, config: { ...config } }, 'volplugin starting');

  const storage = await connectStorage(config.backend, {
    confPath: config.cephConf ?? undefined,
    keyring: config.cephKeyring ?? undefined,
    clientId: config.cephId,
  });
  const plugin = await startPlugin(config, { storage, log });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    void (async () => {
      await plugin.stop().catch((err: unknown) => log.error({ err: messageOf(err) }, 'stopping failed'));
      await storage.close().catch((err: unknown) => log.warn({ err: messageOf(err) }, 'closing the Ceph connection failed'));
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`volplugin: ${messageOf(err)}\n`);
  process.exit(1);
});
