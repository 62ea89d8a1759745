// volsupervisor's command line: flags, their environment defaults, and the checked configuration.

import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_PREFIX } from '../state/keys.js';

export interface SupervisorConfig {
  etcd: string[];
  /** etcd key prefix (default /volplugin): tests run several stacks side by side with their own. */
  prefix: string;
  cephConf: string | null;
  cephKeyring: string | null;
  cephId: string;
  backend: 'native' | 'cli';
  electionTtl: number;
  tickMs: number;
  concurrency: number;
  debug: boolean;
}

function wholeNumber(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be a whole number >= ${min}, got ${JSON.stringify(value)}`);
    return n;
  };
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

export function buildCommand(env: NodeJS.ProcessEnv = process.env): Command {
  return new Command('volsupervisor')
    .description(
      'Scheduled snapshots of volplugin volumes (take every `frequency`, prune to `keep`) and background flattening of copies. ' +
        'Run several for redundancy: they elect one leader in etcd. SIGTERM resigns at once; SIGUSR1 logs what it is doing.',
    )
    .addOption(new Option('--etcd <url>', 'etcd client URL (repeatable or comma-separated) [env VOLPLUGIN_ETCD]').argParser(collect))
    .addOption(new Option('--prefix <path>', 'etcd key prefix [env VOLPLUGIN_PREFIX]').default(env.VOLPLUGIN_PREFIX || DEFAULT_PREFIX))
    .addOption(new Option('--ceph-conf <path>', 'ceph.conf [env CEPH_CONF]').default(env.CEPH_CONF || undefined))
    .addOption(new Option('--ceph-keyring <path>', 'keyring (default: what ceph.conf says)'))
    .addOption(new Option('--ceph-id <id>', 'cephx client id, without "client."').default('admin'))
    .addOption(new Option('--backend <kind>', 'storage backend: librbd addon or the rbd CLI').choices(['native', 'cli']).default('native'))
    .addOption(
      new Option('--election-ttl <seconds>', 'TTL of the leader lease: a dead leader is replaced within it').default(10).argParser(wholeNumber('--election-ttl', 1)),
    )
    .addOption(new Option('--tick-ms <ms>', 'how often volumes are read and checked').default(1000).argParser(wholeNumber('--tick-ms', 50)))
    .addOption(new Option('--concurrency <n>', 'snapshot and flatten jobs at once').default(8).argParser(wholeNumber('--concurrency', 1)))
    .option('--debug', 'debug logging', false);
}

interface RawOptions {
  etcd?: string[];
  prefix: string;
  cephConf?: string;
  cephKeyring?: string;
  cephId: string;
  backend: SupervisorConfig['backend'];
  electionTtl: number;
  tickMs: number;
  concurrency: number;
  debug: boolean;
}

/** Parses argv (without node and script) into a checked configuration. Throws on bad flags. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): SupervisorConfig {
  const command = buildCommand(env).exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  command.parse(argv, { from: 'user' });
  return configFromOptions(command.opts<RawOptions>(), env);
}

export function configFromOptions(o: RawOptions, env: NodeJS.ProcessEnv = process.env): SupervisorConfig {
  const etcd = o.etcd && o.etcd.length > 0 ? o.etcd : collect(env.VOLPLUGIN_ETCD || 'http://127.0.0.1:2379', []);
  for (const url of etcd) {
    if (!/^https?:\/\/[^/]+\/?$/.test(url)) throw new InvalidArgumentError(`--etcd ${JSON.stringify(url)} is not a URL like http://127.0.0.1:2379`);
  }
  if (!o.prefix.startsWith('/')) throw new InvalidArgumentError(`--prefix ${JSON.stringify(o.prefix)} must start with "/"`);
  return {
    etcd,
    prefix: o.prefix,
    cephConf: o.cephConf ? path.resolve(o.cephConf) : null,
    cephKeyring: o.cephKeyring ? path.resolve(o.cephKeyring) : null,
    cephId: o.cephId,
    backend: o.backend,
    electionTtl: o.electionTtl,
    tickMs: o.tickMs,
    concurrency: o.concurrency,
    debug: o.debug,
  };
}
