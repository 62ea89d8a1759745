// `volplugin csi`'s command line: the host agent's flags (src/plugin/config.ts addHostOptions) and
// the daemon's (etcd, Ceph), plus the CSI endpoint, the services to serve and the driver's name.

import { Command, InvalidArgumentError, Option } from 'commander';
import { addDaemonOptions, parseFlags } from '../common/flags.js';
import { addHostOptions, hostConfigFromOptions, type HostConfig, type RawHostOptions } from '../plugin/config.js';
import { endpointPath } from './server.js';

export const CSI_MODES = ['all', 'controller', 'node'] as const;
export type CsiMode = (typeof CSI_MODES)[number];

/** The driver name COs know the plugin by (Kubernetes' CSIDriver, Nomad's plugin_id is separate). */
export const DEFAULT_DRIVER_NAME = 'csi.volplugin.io';

export interface CsiConfig extends HostConfig {
  endpoint: string;
  mode: CsiMode;
  driverName: string;
}

export function buildCsiCommand(env: NodeJS.ProcessEnv = process.env): Command {
  const command = new Command('volplugin csi')
    .description(
      'CSI driver (CSI 1.9) for Kubernetes, Nomad and Docker Swarm: the Controller service (a client of the volmaster API, token of role provisioner) ' +
        'and the Node service (the same host agent as volplugin: mount locks, fencing, format once) on the unix socket CSI_ENDPOINT',
    )
    .addHelpText('after', '\nDeployment (Kubernetes, Nomad, Docker Swarm): docs/csi.md.');
  addHostOptions(command, env, { docker: 'none' })
    .addOption(new Option('--endpoint <unix:///path>', 'the CSI socket [env CSI_ENDPOINT]').default(env.CSI_ENDPOINT || 'unix:///csi/csi.sock'))
    .addOption(new Option('--mode <services>', 'the services to serve besides Identity [env VOLPLUGIN_CSI_MODE]').choices(CSI_MODES).default(env.VOLPLUGIN_CSI_MODE || 'all'))
    .addOption(new Option('--driver-name <name>', 'the name the CO knows the driver by (GetPluginInfo) [env VOLPLUGIN_CSI_DRIVER_NAME]').default(env.VOLPLUGIN_CSI_DRIVER_NAME || DEFAULT_DRIVER_NAME));
  return addDaemonOptions(command, env, 'mount locks and host reports live there (Node service)');
}

interface RawCsiOptions extends RawHostOptions {
  endpoint: string;
  mode: CsiMode;
  driverName: string;
}

export function csiConfigFromOptions(o: RawCsiOptions, env: NodeJS.ProcessEnv = process.env): CsiConfig {
  try {
    endpointPath(o.endpoint);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  if (!CSI_MODES.includes(o.mode)) throw new InvalidArgumentError(`--mode ${JSON.stringify(o.mode)}: give one of ${CSI_MODES.join(', ')}`);
  // CSI: at most 63 characters, a domain name's form.
  if (!/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/.test(o.driverName)) {
    throw new InvalidArgumentError(`--driver-name ${JSON.stringify(o.driverName)} is not a CSI driver name: lower-case letters, digits, "." and "-", at most 63, e.g. ${DEFAULT_DRIVER_NAME}`);
  }
  return { ...hostConfigFromOptions(o, env), endpoint: o.endpoint, mode: o.mode, driverName: o.driverName };
}

/** Parses argv (after `csi`) into a checked configuration. Throws on bad flags. */
export function parseCsiConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): CsiConfig {
  return parseFlags(buildCsiCommand, csiConfigFromOptions, argv, env);
}
