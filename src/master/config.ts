// volmaster's command line: its own flags (--listen, --token-file, --insecure, --tls-cert,
// --tls-key, --janitor-seconds, --resize-host-seconds, the metrics flags of src/metrics/flags.ts) beside the ones every daemon shares (src/common/flags.ts), and the
// checked configuration.

import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { isLoopback, parseListen } from '../common/listen.js';
import { addDaemonOptions, daemonConfig, parseFlags, wholeNumber, type DaemonConfig, type DaemonOptions } from '../common/flags.js';
import { addMetricsOptions, metricsConfig, type MetricsConfig, type MetricsOptions } from '../metrics/flags.js';
import { VERSION } from './version.js';
import { addBackupOptions, backupConfig, type BackupConfig, type BackupOptions } from '../backups/config.js';

export interface MasterConfig extends DaemonConfig {
  host: string;
  port: number;
  tokenFile: string | null;
  /** Run an open API (no token) even beyond loopback. */
  insecure: boolean;
  /** TLS certificate and key (PEM files); both or neither. */
  tlsCert: string | null;
  tlsKey: string | null;
  janitorSeconds: number;
  backups: BackupConfig;
  /** The Prometheus endpoint (src/metrics). */
  metrics: MetricsConfig;
  /** How long a resize waits for the host holding the volume to grow its filesystem. */
  resizeHostSeconds: number;
}

/**
 * Loopback: only this machine can reach the API unless --listen says otherwise (the seed listened
 * on 0.0.0.0; an API that can delete data is not opened to the network by default).
 */
export const DEFAULT_LISTEN = '127.0.0.1:9005';

export { isLoopback, parseListen };

export function buildCommand(env: NodeJS.ProcessEnv = process.env): Command {
  const command = new Command('volmaster')
    .description('volplugin control plane: tenant policies, volumes and mounts over a REST API; stateless (everything lives in etcd)')
    .version(VERSION, '--version')
    .addOption(new Option('--listen <host:port>', 'address of the REST API; beyond loopback it needs --token-file (or --insecure)').default(DEFAULT_LISTEN))
    .addOption(
      new Option('--token-file <path>', 'file (mode 600) holding the bootstrap admin token; with it every request but /v1/health needs a token (this one or one from volcli token create)'),
    )
    .addOption(new Option('--insecure', 'allow an open API (no token: anyone who can connect is admin) beyond loopback; warns at every start').default(false))
    .addOption(new Option('--tls-cert <path>', 'serve HTTPS with this certificate (PEM; give --tls-key too)'))
    .addOption(new Option('--tls-key <path>', 'private key of --tls-cert (PEM, not readable by others)'))
    .addOption(
      new Option('--janitor-seconds <n>', 'period in seconds of the clean-up of creates that died half-way (0: off)').default(30).argParser(wholeNumber('--janitor-seconds', 0)),
    )
    .addOption(
      new Option('--resize-host-seconds <n>', "how long a resize waits for the host holding the volume to grow its filesystem; past it the filesystem grows at the volume's next mount")
        .default(60)
        .argParser(wholeNumber('--resize-host-seconds', 1)),
    );
  addBackupOptions(command, env);
  addMetricsOptions(command, env, 'volmaster', ' (besides any API token when --token-file is given)');
  return addDaemonOptions(command, env, 'every record lives there');
}

interface RawOptions extends DaemonOptions, BackupOptions, MetricsOptions {
  listen: string;
  tokenFile?: string;
  insecure: boolean;
  tlsCert?: string;
  tlsKey?: string;
  janitorSeconds: number;
  resizeHostSeconds: number;
}

export function configFromOptions(raw: RawOptions, env: NodeJS.ProcessEnv = process.env): MasterConfig {
  const { host, port } = parseListen(raw.listen);
  if (Boolean(raw.tlsCert) !== Boolean(raw.tlsKey)) {
    throw new InvalidArgumentError(`give both --tls-cert and --tls-key (only ${raw.tlsCert ? '--tls-cert' : '--tls-key'} was given)`);
  }
  if (raw.insecure && raw.tokenFile) throw new InvalidArgumentError('--insecure and --token-file exclude each other: --insecure opens the API, --token-file closes it');
  if (!raw.insecure && !raw.tokenFile && !isLoopback(host)) {
    throw new InvalidArgumentError(
      `--listen ${raw.listen} reaches beyond this machine and no --token-file is given: anyone who could connect could delete every volume. ` +
        'Give --token-file FILE (the bootstrap admin token; create host tokens with volcli token create), or --insecure to run an open API anyway',
    );
  }
  return {
    ...daemonConfig(raw, env),
    host,
    port,
    tokenFile: raw.tokenFile ? path.resolve(raw.tokenFile) : null,
    insecure: raw.insecure,
    tlsCert: raw.tlsCert ? path.resolve(raw.tlsCert) : null,
    tlsKey: raw.tlsKey ? path.resolve(raw.tlsKey) : null,
    janitorSeconds: raw.janitorSeconds,
    backups: backupConfig(raw, env),
    metrics: metricsConfig(raw, { has: Boolean(raw.tokenFile) || raw.insecure, flags: ' or --token-file (then any API token works, e.g. of role read-only)' }),
    resizeHostSeconds: raw.resizeHostSeconds,
  };
}

/** Parses argv (without node and script) into a checked configuration. Throws on bad flags. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): MasterConfig {
  return parseFlags(buildCommand, configFromOptions, argv, env);
}
