// volplugin's command line: its own flags (master, host, mounts, Docker, locks) beside the ones
// every daemon shares (src/common/flags.ts), their environment defaults, and the checked configuration.

import { hostname } from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { addDaemonOptions, collectList, daemonConfig, parseFlags, wholeNumber, type DaemonConfig, type DaemonOptions } from '../common/flags.js';
import type { MapperKind } from '../mapper/types.js';
import { addMetricsOptions, metricsConfig, type MetricsConfig, type MetricsOptions } from '../metrics/flags.js';
import { DEFAULT_MKFS_ALLOW, mkfsProgramProblem } from '../policy/filesystem.js';
import { defaultDockerAddress } from './docker/client.js';

/** What every host agent is configured with (volplugin, and the CSI node service: src/csi/config.ts). */
export interface HostConfig extends DaemonConfig {
  master: string;
  tokenFile: string | null;
  /** CA of the master's TLS certificate (then the master address defaults to https). */
  tlsCa: string | null;
  hostLabel: string;
  mountRoot: string;
  stateDir: string;
  mapper: 'auto' | MapperKind;
  lockTtl: number;
  fenceSeconds: number;
  docker: string | null;
  convergeSeconds: number;
  /** Seconds a volume stays mapped, mounted and locked after its last Unmount (0: none). */
  unmountGrace: number;
  /** The programs a tenant's filesystem command may run on this host. */
  mkfsAllow: string[];
}

/**
 * The grace after the last Unmount, by default: long enough for the two Mount/Unmount pairs of a
 * `docker run` and for containers started one after another, short enough that an idle mapping
 * is not left for long when no one asks for it (anyone who does gets it released at once).
 */
export const DEFAULT_UNMOUNT_GRACE_SECONDS = 10;

/** The longest --unmount-grace: an hour (a larger number is more likely milliseconds by mistake). */
const MAX_UNMOUNT_GRACE_SECONDS = 3600;

function unmountGrace(value: string): number {
  const seconds = wholeNumber('--unmount-grace', 0)(value);
  if (seconds > MAX_UNMOUNT_GRACE_SECONDS) {
    throw new InvalidArgumentError(`--unmount-grace is in seconds, at most ${MAX_UNMOUNT_GRACE_SECONDS}; got ${seconds} (0 disables the grace)`);
  }
  return seconds;
}

/** volplugin's configuration: a host agent serving Docker's volume plugin protocol on a socket. */
export interface PluginConfig extends HostConfig {
  pluginName: string;
  socketDir: string;
  /** The Prometheus endpoint (src/metrics); volplugin's only: `volplugin csi` serves none yet. */
  metrics: MetricsConfig;
}

function pluginName(value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(value)) {
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not a plugin name: use letters, digits, "_", "-" and "." (it names the socket file)`);
  }
  return value;
}

/**
 * The host agent's flags, which volplugin and `volplugin csi` share: the master, this host's name,
 * mount root and state dir, the mapper, the lock TTL, fencing, rate limits and mkfs programs.
 */
export function addHostOptions(command: Command, env: NodeJS.ProcessEnv, defaults: { docker?: string } = {}): Command {
  return command
    .addOption(new Option('--master <host:port>', 'volmaster address [env VOLPLUGIN_MASTER]').default(env.VOLPLUGIN_MASTER || '127.0.0.1:9005'))
    .addOption(new Option('--token-file <path>', "file (mode 600) holding this host's token for the master (volcli token create --role host) [env VOLPLUGIN_TOKEN_FILE]").default(env.VOLPLUGIN_TOKEN_FILE || undefined))
    .addOption(new Option('--tls-ca <path>', "CA that signed the master's TLS certificate; the master address defaults to https [env VOLPLUGIN_TLS_CA]").default(env.VOLPLUGIN_TLS_CA || undefined))
    .addOption(new Option('--host-label <name>', 'this host\'s name in locks and reports [env VOLPLUGIN_HOST_LABEL]').default(env.VOLPLUGIN_HOST_LABEL || hostname()))
    .addOption(new Option('--mount-root <dir>', 'volumes are mounted at <dir>/<tenant>/<volume>').default('/mnt/ceph'))
    .addOption(new Option('--state-dir <dir>', 'host identity, mount table and rbd-fuse mountpoints').default('/var/lib/volplugin'))
    .addOption(new Option('--mapper <kind>', 'how images become block devices').choices(['auto', 'krbd', 'nbd', 'fuse']).default('auto'))
    .addOption(new Option('--lock-ttl <seconds>', 'TTL of the host lease that holds the mount locks').default(30).argParser(wholeNumber('--lock-ttl', 2)))
    .addOption(new Option('--fence-seconds <seconds>', 'how long a fenced Ceph client stays blocklisted').default(3600).argParser(wholeNumber('--fence-seconds', 1)))
    .addOption(new Option('--docker <address>', 'Docker API (unix:///path or tcp://host:port) for rate limits; "none" disables [env DOCKER_HOST]').default(defaults.docker ?? defaultDockerAddress(env)))
    .addOption(new Option('--converge-seconds <seconds>', 'period of the convergence loop').default(10).argParser(wholeNumber('--converge-seconds', 1)))
    .addOption(
      new Option(
        '--mkfs-allow <programs>',
        `programs a tenant's filesystem command may run here, comma-separated or repeated; ` +
          `commands run without a shell [env VOLPLUGIN_MKFS_ALLOW, else ${DEFAULT_MKFS_ALLOW.join(',')}]`,
      ).argParser(collectList),
    );
}

export function buildCommand(env: NodeJS.ProcessEnv = process.env): Command {
  const command = new Command('volplugin')
    .description('Docker volume plugin for Ceph RBD: maps, formats and mounts volumes on this host, one host at a time per volume')
    .addHelpText('after', '\nThe CSI driver (Kubernetes, Nomad, Docker Swarm) is `volplugin csi`: see volplugin csi --help and docs/csi.md.');
  addHostOptions(command, env)
    .addOption(new Option('--plugin-name <name>', 'Docker driver name (socket <socket-dir>/<name>.sock)').default('volplugin').argParser(pluginName))
    .addOption(new Option('--socket-dir <dir>', 'where Docker looks for plugin sockets').default('/run/docker/plugins'))
    .addOption(
      new Option(
        '--unmount-grace <seconds>',
        'keep a volume mapped, mounted and locked this long after its last Unmount, for the next Mount on this host ' +
          '(released at once when another host, a remove or a rollback asks for it); 0 disables',
      )
        .default(DEFAULT_UNMOUNT_GRACE_SECONDS)
        .argParser(unmountGrace),
    );
  addMetricsOptions(command, env, 'volplugin');
  return addDaemonOptions(command, env, 'mount locks and host reports live there');
}

/** The host agent's flags as commander hands them over. */
export interface RawHostOptions extends DaemonOptions {
  master: string;
  tokenFile?: string;
  tlsCa?: string;
  hostLabel: string;
  mountRoot: string;
  stateDir: string;
  mapper: PluginConfig['mapper'];
  lockTtl: number;
  fenceSeconds: number;
  docker: string;
  convergeSeconds: number;
  /** volplugin's only (Docker's Mount/Unmount pairs): the CSI node has no grace, since a CO detaches right after NodeUnstageVolume and the detach is refused while the mount lock is held. */
  unmountGrace?: number;
  mkfsAllow?: string[];
}

export interface RawOptions extends RawHostOptions, MetricsOptions {
  pluginName: string;
  socketDir: string;
}

/** Parses argv (without node and script) into a checked configuration. Throws on bad flags. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): PluginConfig {
  return parseFlags(buildCommand, configFromOptions, argv, env);
}

/** The checked host agent configuration from a parsed command's options. */
export function hostConfigFromOptions(o: RawHostOptions, env: NodeJS.ProcessEnv = process.env): HostConfig {
  return {
    ...daemonConfig(o, env),
    master: o.master,
    tokenFile: o.tokenFile ?? null,
    tlsCa: o.tlsCa ? path.resolve(o.tlsCa) : null,
    hostLabel: o.hostLabel,
    mountRoot: path.resolve(o.mountRoot),
    stateDir: path.resolve(o.stateDir),
    mapper: o.mapper,
    lockTtl: o.lockTtl,
    fenceSeconds: o.fenceSeconds,
    docker: o.docker === 'none' || o.docker === '' ? null : o.docker,
    convergeSeconds: o.convergeSeconds,
    unmountGrace: o.unmountGrace ?? 0,
    mkfsAllow: mkfsAllowFrom(o.mkfsAllow, env),
  };
}

/** The checked configuration from a parsed command's options. */
export function configFromOptions(o: RawOptions, env: NodeJS.ProcessEnv = process.env): PluginConfig {
  return { ...hostConfigFromOptions(o, env), pluginName: o.pluginName, socketDir: path.resolve(o.socketDir), metrics: metricsConfig(o) };
}

/** --mkfs-allow, else VOLPLUGIN_MKFS_ALLOW, else the default list; each a bare program name. */
function mkfsAllowFrom(given: string[] | undefined, env: NodeJS.ProcessEnv): string[] {
  const fromFlag = given !== undefined;
  const list = fromFlag ? given : env.VOLPLUGIN_MKFS_ALLOW ? collectList(env.VOLPLUGIN_MKFS_ALLOW, []) : [...DEFAULT_MKFS_ALLOW];
  if (list.length === 0) throw new InvalidArgumentError(`${fromFlag ? '--mkfs-allow' : 'VOLPLUGIN_MKFS_ALLOW'} names no program; e.g. ${DEFAULT_MKFS_ALLOW.join(',')}`);
  for (const name of list) {
    const problem = mkfsProgramProblem(name);
    if (problem) throw new InvalidArgumentError(`${fromFlag ? '--mkfs-allow' : 'VOLPLUGIN_MKFS_ALLOW'}: ${problem}`);
  }
  return list;
}

export function socketPath(config: Pick<PluginConfig, 'socketDir' | 'pluginName'>): string {
  return path.join(config.socketDir, `${config.pluginName}.sock`);
}
