// The metrics flags every daemon has: where its Prometheus endpoint listens (on by default, on
// loopback) and the token a scraper must send. Checked here once; a bad value is a usage error
// (exit 2) naming the flag, like every other flag (src/common/flags.ts).

import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { isLoopback, parseListen } from '../common/listen.js';
import type { Daemon } from './families.js';

/** Each daemon's default address: loopback, beside volmaster's API port (9005). */
export const DEFAULT_METRICS_LISTEN: Record<Daemon, string> = {
  volmaster: '127.0.0.1:9006',
  volsupervisor: '127.0.0.1:9007',
  volplugin: '127.0.0.1:9008',
};

/** The environment variable that replaces the default (the tests set them to none, so that parallel runs never share a port). */
export const METRICS_LISTEN_ENV: Record<Daemon, string> = {
  volmaster: 'VOLMASTER_METRICS_LISTEN',
  volsupervisor: 'VOLSUPERVISOR_METRICS_LISTEN',
  volplugin: 'VOLPLUGIN_METRICS_LISTEN',
};

export interface MetricsConfig {
  /** Where /metrics is served; null: nowhere (--metrics-listen none). */
  listen: { host: string; port: number } | null;
  /** A file holding the token a scraper must send (Authorization: Bearer); null: none. */
  tokenFile: string | null;
}

export interface MetricsOptions {
  metricsListen: string;
  metricsTokenFile?: string;
}

/** Adds --metrics-listen and --metrics-token-file; `otherTokens` says which other tokens the endpoint takes (volmaster's). */
export function addMetricsOptions(command: Command, env: NodeJS.ProcessEnv, daemon: Daemon, otherTokens = ''): Command {
  const variable = METRICS_LISTEN_ENV[daemon];
  return command
    .addOption(
      new Option('--metrics-listen <host:port>', `address of the Prometheus endpoint (GET /metrics); "none" turns it off [env ${variable}]`).default(
        env[variable] || DEFAULT_METRICS_LISTEN[daemon],
      ),
    )
    .addOption(
      new Option(
        '--metrics-token-file <path>',
        `file (mode 600) holding a token Prometheus must send as "Authorization: Bearer"${otherTokens}; needed when --metrics-listen reaches beyond loopback`,
      ),
    );
}

/**
 * The checked metrics flags. Beyond loopback the endpoint needs a credential (it names the tenants
 * and volumes of the cluster): --metrics-token-file, or `otherCredential` (volmaster's tokens, or
 * its --insecure).
 */
export function metricsConfig(o: MetricsOptions, otherCredential: { has: boolean; flags: string } = { has: false, flags: '' }): MetricsConfig {
  const tokenFile = o.metricsTokenFile ? path.resolve(o.metricsTokenFile) : null;
  if (o.metricsListen.trim() === 'none') {
    if (tokenFile) throw new InvalidArgumentError('--metrics-token-file is for the metrics endpoint, which --metrics-listen none turns off; drop one of them');
    return { listen: null, tokenFile: null };
  }
  const listen = parseListen(o.metricsListen, '--metrics-listen');
  if (!isLoopback(listen.host) && !tokenFile && !otherCredential.has) {
    throw new InvalidArgumentError(
      `--metrics-listen ${o.metricsListen} reaches beyond this machine and no --metrics-token-file is given: anyone who could connect would read the names of every tenant and volume. ` +
        `Give --metrics-token-file FILE${otherCredential.flags} (Prometheus sends it: authorization.credentials_file), or listen on loopback`,
    );
  }
  return { listen, tokenFile };
}
