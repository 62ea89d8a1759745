// `volplugin csi` assembled: the Identity service, the Controller service (an API client of the
// volmaster) and the Node service (the host agent of src/plugin/app.ts startHost), as --mode says,
// on the CSI endpoint's socket. main.ts only parses flags and handles signals; the tests start the
// real binary.

import type { Logger } from 'pino';
import { ApiClient } from '../api/client.js';
import { messageOf } from '../common/errors.js';
import { startHost, VERSION, type PluginDeps, type RunningHost } from '../plugin/app.js';
import { PLUGIN_CAPABILITIES } from './capabilities.js';
import type { CsiConfig } from './config.js';
import { CsiController } from './controller.js';
import { CsiNode } from './node.js';
import { NodeState } from './node-state.js';
import { serveCsi, type Handlers, type RunningCsiServer } from './server.js';
import { readBootId } from '../plugin/mounts/boot.js';

export interface RunningCsi {
  socket: string;
  /** The host agent (Node service only). */
  agent: RunningHost | null;
  stop(): Promise<void>;
}

/** The Identity service: the driver's name and version, its capabilities, and whether it is ready. */
function identity(config: CsiConfig, ready: () => boolean): Handlers {
  return {
    GetPluginInfo: async () => ({ name: config.driverName, vendor_version: VERSION, manifest: { mode: config.mode } }),
    GetPluginCapabilities: async () => ({ capabilities: config.mode === 'node' ? PLUGIN_CAPABILITIES.filter((c) => !('service' in c)) : PLUGIN_CAPABILITIES }),
    Probe: async () => ({ ready: { value: ready() } }),
  } as Handlers;
}

/** Starts the services of `config.mode`. Deps: those of the host agent (the Node service). */
export async function startCsi(config: CsiConfig, deps: PluginDeps): Promise<RunningCsi> {
  const log: Logger = deps.log;
  let agent: RunningHost | null = null;
  let controller: Handlers | undefined;
  let node: Handlers | undefined;
  if (config.mode !== 'node') {
    const api = await ApiClient.fromOptions({ master: config.master, tokenFile: config.tokenFile, caFile: config.tlsCa, timeoutMs: 60_000, userAgent: `volplugin-csi/${VERSION}` });
    controller = new CsiController({ api, log: log.child({ part: 'csi-controller' }) }).handlers();
  }
  if (config.mode !== 'controller') {
    agent = await startHost(config, deps);
    const { state, problem } = await NodeState.load(config.stateDir, await readBootId(deps.bootIdFile));
    if (problem) log.warn({ problem }, 'the CSI node table was not used');
    node = new CsiNode({ agent, state, log: log.child({ part: 'csi-node' }) }).handlers();
  }
  let server: RunningCsiServer;
  try {
    server = await serveCsi(config.endpoint, { identity: identity(config, () => true), controller, node }, log.child({ part: 'csi' }));
  } catch (err) {
    await agent?.stop();
    throw err;
  }
  log.info({ socket: server.socket, mode: config.mode, driver: config.driverName, hostId: agent?.host.id, master: config.master }, 'volplugin csi serving');
  let stopped: Promise<void> | null = null;
  return {
    socket: server.socket,
    agent,
    stop() {
      stopped ??= (async () => {
        await server.stop().catch((err: unknown) => log.warn({ err: messageOf(err) }, 'stopping the CSI server failed'));
        await agent?.stop();
        log.info({ mounted: agent?.local.all().length ?? 0 }, 'volplugin csi stopped');
      })();
      return stopped;
    },
  };
}
