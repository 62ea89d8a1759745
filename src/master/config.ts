// volmaster's command line: flags, environment defaults and the checked configuration.

import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_PREFIX } from '../state/keys.js';
import { VERSION } from './version.js';

export interface MasterConfig {
  host: string;
  port: number;
  etcd: string[];
  prefix: string;
  backend: 'native' | 'cli';
  cephConf: string | null;
  cephKeyring: string | null;
  cephId: string;
  tokenFile: string | null;
  debug: boolean;
  janitorSeconds: number;
}

export const DEFAULT_LISTEN = '0.0.0.0:9005';
export const DEFAULT_ETCD = 'http://127.0.0.1:2379';

/** "0.0.0.0:9005", "127.0.0.1:9005", "[::1]:9005", ":9005" -> host and port. */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not HOST:PORT (e.g. 0.0.0.0:9005, 127.0.0.1:9005, [::1]:9005)`);
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** True when only this machine can connect to `host`. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host) || host === '::ffff:127.0.0.1';
}

function etcdUrl(value: string, previous: string[] | undefined): string[] {
  const urls = value.split(',').map((v) => v.trim()).filter(Boolean);
  for (const url of urls) {
    if (!/^https?:\/\/[^/]+/.test(url)) throw new InvalidArgumentError(`${JSON.stringify(url)} is not an etcd client URL such as http://127.0.0.1:2379`);
  }
  return [...(previous ?? []), ...urls];
}

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number of seconds, got ${JSON.stringify(value)}`);
    return n;
  };
}

export function buildCommand(env: NodeJS.ProcessEnv = process.env): Command {
  return new Command('volmaster')
    .description('volplugin control plane: tenant policies, volumes and mounts over a REST API; stateless (everything lives in etcd)')
    .version(VERSION, '--version')
    .addOption(new Option('--listen <host:port>', 'address of the REST API').default(DEFAULT_LISTEN))
    .addOption(new Option('--etcd <url>', `etcd client URL, repeatable (default ${DEFAULT_ETCD})`).argParser(etcdUrl))
    .addOption(new Option('--prefix <key>', 'etcd key prefix shared by every volplugin component').default(DEFAULT_PREFIX))
    .addOption(new Option('--backend <kind>', 'storage backend: librbd addon (native) or the rbd CLI').choices(['native', 'cli']).default('native'))
    .addOption(new Option('--ceph-conf <path>', 'ceph.conf (default: $CEPH_CONF, else librados\' default)').default(env.CEPH_CONF || undefined))
    .addOption(new Option('--ceph-keyring <path>', 'keyring (default: what ceph.conf says)'))
    .addOption(new Option('--ceph-id <id>', 'cephx client id, without "client."').default('admin'))
    .addOption(new Option('--token-file <path>', 'file holding the bearer token every request but /v1/health must carry'))
    .addOption(new Option('--janitor-seconds <n>', 'period of the clean-up of creates that died half-way (0: off)').default(30).argParser(positiveInt('--janitor-seconds')))
    .option('--debug', 'debug logging (noisy)', false);
}

interface RawOptions {
  listen: string;
  etcd?: string[];
  prefix: string;
  backend: 'native' | 'cli';
  cephConf?: string;
  cephKeyring?: string;
  cephId: string;
  tokenFile?: string;
  janitorSeconds: number;
  debug: boolean;
}

export function configFromOptions(raw: RawOptions): MasterConfig {
  const { host, port } = parseListen(raw.listen);
  if (!raw.prefix.startsWith('/')) throw new InvalidArgumentError(`--prefix must start with "/", got ${JSON.stringify(raw.prefix)}`);
  return {
    host,
    port,
    etcd: raw.etcd && raw.etcd.length > 0 ? raw.etcd : [DEFAULT_ETCD],
    prefix: raw.prefix,
    backend: raw.backend,
    cephConf: raw.cephConf ?? null,
    cephKeyring: raw.cephKeyring ?? null,
    cephId: raw.cephId,
    tokenFile: raw.tokenFile ?? null,
    debug: raw.debug,
    janitorSeconds: raw.janitorSeconds,
  };
}
