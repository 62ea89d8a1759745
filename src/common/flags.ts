// How every daemon reads its command line. The flags volmaster, volplugin and volsupervisor share
// (etcd, key prefix, storage backend, Ceph client, debug) are declared and checked here, once, with
// the same environment defaults; each daemon adds its own flags and turns the options into its
// config. Anything wrong is one line on stderr and exit code 2 (usage), as for volcli.

import path from 'node:path';
import { CommanderError, InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_PREFIX } from '../state/keys.js';

export const DEFAULT_ETCD = 'http://127.0.0.1:2379';
export const BACKEND_KINDS = ['native', 'cli'] as const;
export type DaemonBackend = (typeof BACKEND_KINDS)[number];

/** The part every daemon's config has (MasterConfig, PluginConfig and SupervisorConfig extend it). */
export interface DaemonConfig {
  /** etcd client URLs. */
  etcd: string[];
  /** etcd key prefix shared by every volplugin component. */
  prefix: string;
  backend: DaemonBackend;
  cephConf: string | null;
  cephKeyring: string | null;
  cephId: string;
  debug: boolean;
}

/** The shared flags as commander hands them over, before daemonConfig checks them. */
export interface DaemonOptions {
  etcd?: string[];
  prefix: string;
  backend: DaemonBackend;
  cephConf?: string;
  cephKeyring?: string;
  cephId: string;
  debug: boolean;
}

/** "a,b" and repeated flags -> one list. */
export function collectList(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

/** A commander argParser for a whole number of at least `min`, naming the flag when it is not one. */
export function wholeNumber(flag: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${flag} must be a whole number >= ${min}, got ${JSON.stringify(value)}`);
    return n;
  };
}

/**
 * Adds the shared flags to a daemon's command. `etcdUse` says what the daemon keeps in etcd (shown
 * in --help). The etcd default is applied by daemonConfig, not here: a commander default would be
 * added to by the first --etcd instead of replaced.
 */
export function addDaemonOptions(command: Command, env: NodeJS.ProcessEnv, etcdUse: string): Command {
  return command
    .addOption(new Option('--etcd <url>', `etcd client URL, repeatable or comma-separated; ${etcdUse} [env VOLPLUGIN_ETCD, else ${DEFAULT_ETCD}]`).argParser(collectList))
    .addOption(new Option('--prefix <key>', 'etcd key prefix shared by every volplugin component [env VOLPLUGIN_PREFIX]').default(env.VOLPLUGIN_PREFIX || DEFAULT_PREFIX))
    .addOption(new Option('--backend <kind>', 'storage backend: the librbd addon (native) or the rbd CLI (cli)').choices(BACKEND_KINDS).default('native'))
    .addOption(new Option('--ceph-conf <path>', "ceph.conf [env CEPH_CONF, else librados' default]").default(env.CEPH_CONF || undefined))
    .addOption(new Option('--ceph-keyring <path>', 'keyring (default: what ceph.conf says)'))
    .addOption(new Option('--ceph-id <id>', 'cephx client id, without "client."').default('admin'))
    .option('--debug', 'debug logging (noisy)', false);
}

const ETCD_URL = /^https?:\/\/[^/]+\/?$/;

/** Checks the shared flags and fills in the etcd default. Throws InvalidArgumentError naming the flag. */
export function daemonConfig(o: DaemonOptions, env: NodeJS.ProcessEnv): DaemonConfig {
  const etcd = o.etcd && o.etcd.length > 0 ? o.etcd : collectList(env.VOLPLUGIN_ETCD || DEFAULT_ETCD, []);
  const given = etcd === o.etcd;
  for (const url of etcd) {
    if (!ETCD_URL.test(url)) throw new InvalidArgumentError(`${given ? '--etcd' : 'VOLPLUGIN_ETCD'} ${JSON.stringify(url)} is not a URL like ${DEFAULT_ETCD}`);
  }
  if (!o.prefix.startsWith('/')) throw new InvalidArgumentError(`--prefix ${JSON.stringify(o.prefix)} must start with "/"`);
  return {
    etcd,
    prefix: o.prefix,
    backend: o.backend,
    cephConf: o.cephConf ? path.resolve(o.cephConf) : null,
    cephKeyring: o.cephKeyring ? path.resolve(o.cephKeyring) : null,
    cephId: o.cephId,
    debug: o.debug,
  };
}

/** Parses argv (without node and script) into a checked config, throwing on bad flags: for tests and tools. */
export function parseFlags<O, T>(
  build: (env: NodeJS.ProcessEnv) => Command,
  toConfig: (options: O, env: NodeJS.ProcessEnv) => T,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): T {
  const command = build(env).exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  command.parse(argv, { from: 'user' });
  return toConfig(command.opts<O & Record<string, unknown>>(), env);
}

/** A daemon's flags from process.argv: --help and --version exit 0, anything wrong exits 2 with one line. */
export function readFlags<T>(name: string, command: Command, toConfig: (options: never) => T): T {
  command.exitOverride((err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') process.exit(0);
    process.exit(2); // commander has printed the message
  });
  command.parse(process.argv);
  try {
    return toConfig(command.opts() as never);
  } catch (err) {
    if (err instanceof InvalidArgumentError || err instanceof CommanderError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
