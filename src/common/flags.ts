// How every daemon reads its command line. The flags volmaster, volplugin and volsupervisor share
// (etcd and its TLS and user, key prefix, storage backend, Ceph client, debug) are declared and
// checked here, once, with the same environment defaults; each daemon adds its own flags and turns
// the options into its config (volcli takes the etcd security flags from here too). Anything wrong
// is one line on stderr and exit code 2 (usage), as for volcli.

import path from 'node:path';
import { CommanderError, InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_PREFIX } from '../state/keys.js';

export const DEFAULT_ETCD = 'http://127.0.0.1:2379';
export const BACKEND_KINDS = ['native', 'cli'] as const;
export type DaemonBackend = (typeof BACKEND_KINDS)[number];

/** How to prove who we are to etcd and check who it is (absolute paths; null: not used). */
export interface EtcdSecurity {
  /** CA that signed etcd's certificate; null with https URLs: the system's CAs. */
  ca: string | null;
  /** Client certificate and its key (both or neither). */
  cert: string | null;
  key: string | null;
  /** etcd user and the file holding its password (both or neither). */
  user: string | null;
  passwordFile: string | null;
}

/** The etcd security flags as commander hands them over. */
export interface EtcdSecurityOptions {
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
}

/** The part every daemon's config has (MasterConfig, PluginConfig and SupervisorConfig extend it). */
export interface DaemonConfig {
  /** etcd client URLs. */
  etcd: string[];
  etcdSecurity: EtcdSecurity;
  /** etcd key prefix shared by every volplugin component. */
  prefix: string;
  backend: DaemonBackend;
  cephConf: string | null;
  cephKeyring: string | null;
  cephId: string;
  debug: boolean;
}

/** The shared flags as commander hands them over, before daemonConfig checks them. */
export interface DaemonOptions extends EtcdSecurityOptions {
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
  command.addOption(new Option('--etcd <url>', `etcd client URL, repeatable or comma-separated; ${etcdUse} [env VOLPLUGIN_ETCD, else ${DEFAULT_ETCD}]`).argParser(collectList));
  return addEtcdSecurityOptions(command, env)
    .addOption(new Option('--prefix <key>', 'etcd key prefix shared by every volplugin component [env VOLPLUGIN_PREFIX]').default(env.VOLPLUGIN_PREFIX || DEFAULT_PREFIX))
    .addOption(new Option('--backend <kind>', 'storage backend: the librbd addon (native) or the rbd CLI (cli)').choices(BACKEND_KINDS).default('native'))
    .addOption(new Option('--ceph-conf <path>', "ceph.conf [env CEPH_CONF, else librados' default]").default(env.CEPH_CONF || undefined))
    .addOption(new Option('--ceph-keyring <path>', 'keyring (default: what ceph.conf says) [env VOLPLUGIN_CEPH_KEYRING]').default(env.VOLPLUGIN_CEPH_KEYRING || undefined))
    .addOption(new Option('--ceph-id <id>', 'cephx client id, without "client." [env VOLPLUGIN_CEPH_ID]').default(env.VOLPLUGIN_CEPH_ID || 'admin'))
    .option('--debug', 'debug logging (noisy)', false);
}

/**
 * The flags of etcd's TLS and user, with their environment defaults (daemons and volcli). The
 * password only ever comes from a file: a command line is visible to every user of the machine.
 */
export function addEtcdSecurityOptions(command: Command, env: NodeJS.ProcessEnv): Command {
  const fromEnv = (name: string) => env[name] || undefined;
  return command
    .addOption(new Option('--etcd-ca <path>', "CA that signed etcd's certificate, for https:// --etcd URLs (default: the system's CAs) [env VOLPLUGIN_ETCD_CA]").default(fromEnv('VOLPLUGIN_ETCD_CA')))
    .addOption(new Option('--etcd-cert <path>', 'client certificate for etcd, with --etcd-key [env VOLPLUGIN_ETCD_CERT]').default(fromEnv('VOLPLUGIN_ETCD_CERT')))
    .addOption(new Option('--etcd-key <path>', "the client certificate's key; refused when others can read it [env VOLPLUGIN_ETCD_KEY]").default(fromEnv('VOLPLUGIN_ETCD_KEY')))
    .addOption(new Option('--etcd-user <name>', 'etcd user, with --etcd-password-file [env VOLPLUGIN_ETCD_USER]').default(fromEnv('VOLPLUGIN_ETCD_USER')))
    .addOption(
      new Option('--etcd-password-file <path>', "file (mode 600) holding the etcd user's password [env VOLPLUGIN_ETCD_PASSWORD_FILE]").default(fromEnv('VOLPLUGIN_ETCD_PASSWORD_FILE')),
    );
}

const ETCD_URL = /^https?:\/\/[^/]+\/?$/;
const LOOPBACK_URL = /^https?:\/\/(?:localhost|127\.[0-9.]+|\[::1\])(?::\d+)?\/?$/;

/**
 * Checks the etcd security flags against each other and the URLs: certificate and key together,
 * user and password file together, TLS files only with https:// URLs, and no password in clear
 * beyond this machine. Throws InvalidArgumentError naming the flag.
 */
export function etcdSecurity(o: EtcdSecurityOptions, urls: readonly string[]): EtcdSecurity {
  const abs = (p: string | undefined) => (p ? path.resolve(p) : null);
  const sec: EtcdSecurity = { ca: abs(o.etcdCa), cert: abs(o.etcdCert), key: abs(o.etcdKey), user: o.etcdUser || null, passwordFile: abs(o.etcdPasswordFile) };
  if ((sec.cert === null) !== (sec.key === null)) {
    throw new InvalidArgumentError(`${sec.cert ? '--etcd-cert' : '--etcd-key'} needs ${sec.cert ? '--etcd-key' : '--etcd-cert'}: a client certificate goes with its key`);
  }
  if ((sec.user === null) !== (sec.passwordFile === null)) {
    throw new InvalidArgumentError(
      sec.user ? '--etcd-user needs --etcd-password-file (the password is read from a file, never given on the command line)' : '--etcd-password-file needs --etcd-user',
    );
  }
  const plain = urls.filter((url) => url.startsWith('http://'));
  if (plain.length > 0 && (sec.ca || sec.cert)) {
    const flag = sec.ca ? '--etcd-ca' : '--etcd-cert';
    throw new InvalidArgumentError(`${flag} (or its VOLPLUGIN_ETCD_* variable) is for TLS, but ${plain[0]} is plain http: write https://`);
  }
  const remote = plain.filter((url) => !LOOPBACK_URL.test(url));
  if (sec.user && remote.length > 0) {
    throw new InvalidArgumentError(`--etcd-user: the password would cross the network in clear to ${remote[0]}; use https:// URLs (and --etcd-ca)`);
  }
  return sec;
}

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
    etcdSecurity: etcdSecurity(o, etcd),
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
