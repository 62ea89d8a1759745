// volsupervisor's command line: its own flags (election TTL, tick, concurrency) beside the ones
// every daemon shares (src/common/flags.ts), and the checked configuration.

import { Command, Option } from 'commander';
import { addDaemonOptions, daemonConfig, parseFlags, wholeNumber, type DaemonConfig, type DaemonOptions } from '../common/flags.js';
import { addBackupOptions, backupConfig, type BackupConfig, type BackupOptions } from '../backups/config.js';
import { addMetricsOptions, metricsConfig, type MetricsConfig, type MetricsOptions } from '../metrics/flags.js';

export interface SupervisorConfig extends DaemonConfig {
  electionTtl: number;
  tickMs: number;
  concurrency: number;
  backups: BackupConfig;
  backupTickMs: number;
  /** The Prometheus endpoint (src/metrics). */
  metrics: MetricsConfig;
}

/**
 * Snapshot and flatten jobs at once with the native backend. At Ceph's default paxos interval (1 s)
 * every snapshot create and remove waits for a monitor commit, and a commit takes whatever is in
 * flight: throughput is the number in flight per second, so 1,000 volumes need a few hundred at once
 * to be snapshotted in seconds, not minutes (docs/performance.md, "The supervisor's round"). 256 is
 * what the addon runs at once per connection (native/pool.h). The CLI backend keeps 8: each job is
 * an `rbd` process.
 */
export const DEFAULT_SUPERVISOR_CONCURRENCY = 256;
const DEFAULT_CLI_CONCURRENCY = 8;

export function buildCommand(env: NodeJS.ProcessEnv = process.env): Command {
  const command = new Command('volsupervisor')
    .description(
      'Scheduled snapshots of volplugin volumes (take every `frequency`, prune to `keep`), scheduled backups (docs/backups.md) and background flattening of copies. ' +
        'Run several for redundancy: they elect one leader in etcd. SIGTERM resigns at once; SIGUSR1 logs what it is doing.',
    )
    .addOption(
      new Option('--election-ttl <seconds>', 'TTL of the leader lease: a dead leader is replaced within it').default(10).argParser(wholeNumber('--election-ttl', 1)),
    )
    .addOption(new Option('--tick-ms <ms>', 'how often volumes are read and checked').default(1000).argParser(wholeNumber('--tick-ms', 50)))
    .addOption(
      new Option('--concurrency <n>', `snapshot and flatten jobs at once (default: ${DEFAULT_SUPERVISOR_CONCURRENCY} with the native backend, ${DEFAULT_CLI_CONCURRENCY} with the cli one)`).argParser(
        wholeNumber('--concurrency', 1),
      ),
    )
    .addOption(new Option('--backup-tick-ms <ms>', 'how often volumes are checked for due backups').default(5000).argParser(wholeNumber('--backup-tick-ms', 50)));
  addBackupOptions(command, env);
  addMetricsOptions(command, env, 'volsupervisor');
  return addDaemonOptions(command, env, 'the leader election and the schedules live there');
}

interface RawOptions extends DaemonOptions, BackupOptions, MetricsOptions {
  electionTtl: number;
  tickMs: number;
  concurrency?: number;
  backupTickMs: number;
}

export function configFromOptions(o: RawOptions, env: NodeJS.ProcessEnv = process.env): SupervisorConfig {
  const daemon = daemonConfig(o, env);
  return {
    ...daemon,
    electionTtl: o.electionTtl,
    tickMs: o.tickMs,
    concurrency: o.concurrency ?? (daemon.backend === 'cli' ? DEFAULT_CLI_CONCURRENCY : DEFAULT_SUPERVISOR_CONCURRENCY),
    backups: backupConfig(o, env),
    backupTickMs: o.backupTickMs,
    metrics: metricsConfig(o),
  };
}

/** Parses argv (without node and script) into a checked configuration. Throws on bad flags. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): SupervisorConfig {
  return parseFlags(buildCommand, configFromOptions, argv, env);
}
