// volmaster's command line: its own flags (--listen, --token-file, --janitor-seconds) beside the
// ones every daemon shares (src/common/flags.ts), and the checked configuration.

import { Command, InvalidArgumentError, Option } from 'commander';
import { addDaemonOptions, daemonConfig, parseFlags, wholeNumber, type DaemonConfig, type DaemonOptions } from '../common/flags.js';
import { VERSION } from './version.js';

export interface MasterConfig extends DaemonConfig {
  host: string;
  port: number;
  tokenFile: string | null;
  janitorSeconds: number;
}

export const DEFAULT_LISTEN = '0.0.0.0:9005';

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

export function buildCommand(env: NodeJS.ProcessEnv = process.env): Command {
  const command = new Command('volmaster')
    .description('volplugin control plane: tenant policies, volumes and mounts over a REST API; stateless (everything lives in etcd)')
    .version(VERSION, '--version')
    .addOption(new Option('--listen <host:port>', 'address of the REST API').default(DEFAULT_LISTEN))
    .addOption(new Option('--token-file <path>', 'file holding the bearer token every request but /v1/health must carry'))
    .addOption(
      new Option('--janitor-seconds <n>', 'period in seconds of the clean-up of creates that died half-way (0: off)').default(30).argParser(wholeNumber('--janitor-seconds', 0)),
    );
  return addDaemonOptions(command, env, 'every record lives there');
}

interface RawOptions extends DaemonOptions {
  listen: string;
  tokenFile?: string;
  janitorSeconds: number;
}

export function configFromOptions(raw: RawOptions, env: NodeJS.ProcessEnv = process.env): MasterConfig {
  const { host, port } = parseListen(raw.listen);
  return {
    ...daemonConfig(raw, env),
    host,
    port,
    tokenFile: raw.tokenFile ?? null,
    janitorSeconds: raw.janitorSeconds,
  };
}

/** Parses argv (without node and script) into a checked configuration. Throws on bad flags. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): MasterConfig {
  return parseFlags(buildCommand, configFromOptions, argv, env);
}
