// volplugin's command line: flags, their environment defaults, and the checked configuration.

import { hostname } from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { MapperKind } from '../mapper/types.js';
import { defaultDockerAddress } from './docker/client.js';

export interface PluginConfig {
  master: string;
  etcd: string[];
  tokenFile: string | null;
  hostLabel: string;
  mountRoot: string;
  stateDir: string;
  mapper: 'auto' | MapperKind;
  pluginName: string;
  socketDir: string;
  cephConf: string | null;
  cephKeyring: string | null;
  cephId: string;
  backend: 'native' | 'cli';
  lockTtl: number;
  fenceSeconds: number;
  docker: string | null;
  convergeSeconds: number;
  /** etcd key prefix shared by every volplugin component. */
  prefix: string;
  debug: boolean;
}

function positiveInt(name: string, min = 1) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be a whole number >= ${min}, got ${JSON.stringify(value)}`);
    return n;
  };
}

function pluginName(value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(value)) {
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not a plugin name: use letters, digits, "_", "-" and "." (it names the socket file)`);
  }
  return value;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

export function buildCommand(env: NodeJS.ProcessEnv = process.env): Command {
  return new Command('volplugin')
    .description('Docker volume plugin for Ceph RBD: maps, formats and mounts volumes on this host, one host at a time per volume')
    .addOption(new Option('--master <host:port>', 'volmaster address').default(env.VOLPLUGIN_MASTER || '127.0.0.1:9005'))
    .addOption(new Option('--etcd <url>', 'etcd client URL (repeatable); mount locks live there').argParser(collect))
    .addOption(new Option('--token-file <path>', "file holding the master's bearer token").default(env.VOLPLUGIN_TOKEN_FILE || undefined))
    .addOption(new Option('--host-label <name>', 'this host\'s name in locks and reports').default(hostname()))
    .addOption(new Option('--mount-root <dir>', 'volumes are mounted at <dir>/<tenant>/<volume>').default('/mnt/ceph'))
    .addOption(new Option('--state-dir <dir>', 'host identity, mount table and rbd-fuse mountpoints').default('/var/lib/volplugin'))
    .addOption(new Option('--mapper <kind>', 'how images become block devices').choices(['auto', 'krbd', 'nbd', 'fuse']).default('auto'))
    .addOption(new Option('--plugin-name <name>', 'Docker driver name (socket <socket-dir>/<name>.sock)').default('volplugin').argParser(pluginName))
    .addOption(new Option('--socket-dir <dir>', 'where Docker looks for plugin sockets').default('/run/docker/plugins'))
    .addOption(new Option('--ceph-conf <path>', 'ceph.conf').default(env.CEPH_CONF || undefined))
    .addOption(new Option('--ceph-keyring <path>', 'keyring (default: what ceph.conf says)'))
    .addOption(new Option('--ceph-id <id>', 'cephx client id, without "client."').default('admin'))
    .addOption(new Option('--backend <kind>', 'storage backend: librbd addon or the rbd CLI').choices(['native', 'cli']).default('native'))
    .addOption(new Option('--lock-ttl <seconds>', 'TTL of the host lease that holds the mount locks').default(30).argParser(positiveInt('--lock-ttl', 2)))
    .addOption(new Option('--fence-seconds <seconds>', 'how long a fenced Ceph client stays blocklisted').default(3600).argParser(positiveInt('--fence-seconds')))
    .addOption(new Option('--docker <address>', 'Docker API (unix:///path or tcp://host:port) for rate limits; "none" disables').default(defaultDockerAddress(env)))
    .addOption(new Option('--prefix <key>', 'etcd key prefix shared by every volplugin component').default('/volplugin'))
    .addOption(new Option('--converge-seconds <seconds>', 'period of the convergence loop').default(10).argParser(positiveInt('--converge-seconds')))
    .option('--debug', 'debug logging', false);
}

export interface RawOptions {
  master: string;
  etcd?: string[];
  tokenFile?: string;
  hostLabel: string;
  mountRoot: string;
  stateDir: string;
  mapper: PluginConfig['mapper'];
  pluginName: string;
  socketDir: string;
  cephConf?: string;
  cephKeyring?: string;
  cephId: string;
  backend: PluginConfig['backend'];
  lockTtl: number;
  fenceSeconds: number;
  docker: string;
  convergeSeconds: number;
  prefix: string;
  debug: boolean;
}

/** Parses argv (without node and script) into a checked configuration. Throws on bad flags. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): PluginConfig {
  const command = buildCommand(env).exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  command.parse(argv, { from: 'user' });
  return configFromOptions(command.opts<RawOptions>(), env);
}

/** The checked configuration from a parsed command's options. */
export function configFromOptions(o: RawOptions, env: NodeJS.ProcessEnv = process.env): PluginConfig {
  const etcd = o.etcd && o.etcd.length > 0 ? o.etcd : collect(env.VOLPLUGIN_ETCD || 'http://127.0.0.1:2379', []);
  for (const url of etcd) {
    if (!/^https?:\/\/[^/]+\/?$/.test(url)) throw new InvalidArgumentError(`--etcd ${JSON.stringify(url)} is not a URL like http://127.0.0.1:2379`);
  }
  return {
    master: o.master,
    etcd,
    tokenFile: o.tokenFile ?? null,
    hostLabel: o.hostLabel,
    mountRoot: path.resolve(o.mountRoot),
    stateDir: path.resolve(o.stateDir),
    mapper: o.mapper,
    pluginName: o.pluginName,
    socketDir: path.resolve(o.socketDir),
    cephConf: o.cephConf ? path.resolve(o.cephConf) : null,
    cephKeyring: o.cephKeyring ? path.resolve(o.cephKeyring) : null,
    cephId: o.cephId,
    backend: o.backend,
    lockTtl: o.lockTtl,
    fenceSeconds: o.fenceSeconds,
    docker: o.docker === 'none' || o.docker === '' ? null : o.docker,
    convergeSeconds: o.convergeSeconds,
    prefix: o.prefix,
    debug: o.debug,
  };
}

export function socketPath(config: Pick<PluginConfig, 'socketDir' | 'pluginName'>): string {
  return path.join(config.socketDir, `${config.pluginName}.sock`);
}
