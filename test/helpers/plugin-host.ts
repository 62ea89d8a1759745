// One volplugin "host" wired as volplugin wires it (assembleHost: mount manager, convergence loop)
// on the fakes of plugin-fakes.ts, the in-memory Ceph twin and MemoryKV, for the plugin's unit tests.
import path from 'node:path';
import pino from 'pino';
import type { DeviceContents } from '../../src/mapper/fs.js';
import type { MountInfo } from '../../src/mapper/mountinfo.js';
import { RateLimiter } from '../../src/ratelimit/index.js';
import type { ContainerEngine } from '../../src/ratelimit/limiter.js';
import type { MemoryKV } from '../../src/state/memory.js';
import { StateStore } from '../../src/state/store.js';
import type { MemoryStorage } from '../../src/storage/memory.js';
import { assembleHost } from '../../src/plugin/app.js';
import { HostLease } from '../../src/plugin/cluster/lease.js';
import type { MasterClient } from '../../src/plugin/cluster/master-client.js';
import { LocalState } from '../../src/plugin/mounts/local-state.js';
import { FakeHost, FakeMapper } from './plugin-fakes.js';

/** What the hosts of one test share: etcd, Ceph, what each image holds, the volume records, a temp dir. */
export interface SharedWorld {
  kv: MemoryKV;
  storage: MemoryStorage;
  images: Map<string, DeviceContents>;
  volumes: Pick<MasterClient, 'getVolume'>;
  dir: string;
}

export interface AssembledFakeHostOptions {
  /** The same table, mapper and host as an earlier instance ("a restart"). */
  reuse?: { local: LocalState; mapper: FakeMapper; ops: FakeHost };
  /** First client number of its mapper (default 0). */
  clientBase?: number;
  /** --unmount-grace in ms (default none). */
  graceMs?: number;
  /** The Docker API its rate limiter asks (default none: librbd QoS only). */
  docker?: ContainerEngine;
}

const log = pino({ level: 'silent' });

/** A host with its own etcd client and lease; its devices are /dev/loop<base>..., its state dir /state<base>. */
export function assembledFakeHost(w: SharedWorld, hostId: string, base: number, o: AssembledFakeHostOptions = {}) {
  const client = w.kv.client();
  const store = new StateStore(client, { owner: `volplugin@${hostId}` });
  const lease = new HostLease(client, 10);
  const local = o.reuse?.local ?? new LocalState(path.join(w.dir, `${hostId}.json`));
  const mapper = o.reuse?.mapper ?? new FakeMapper({ first: base, clientBase: o.clientBase ?? 0, stateDir: `/state${base}` });
  const ops = o.reuse?.ops ?? new FakeHost({ imageOf: mapper.imageOf, images: w.images });
  const readMounts = async (): Promise<MountInfo[]> =>
    [...ops.mounted].map(([mountPoint, source]) => ({ id: 1, parentId: 0, devNumber: '7:0', major: 7, minor: 0, root: '/', mountPoint, options: 'rw', fsType: 'ext4', source, superOptions: 'rw' }));
  const { manager, convergence: loop } = assembleHost({
    host: { id: hostId, label: hostId },
    mountRoot: '/nonexistent/mnt',
    fenceSeconds: 60,
    store,
    lease,
    storage: w.storage,
    mapper,
    volumes: w.volumes,
    local,
    limits: new RateLimiter({ docker: o.docker ?? null, storage: w.storage }),
    docker: null,
    log,
    convergence: { version: 'test', intervalMs: 60_000 },
    hostOps: ops,
    readMounts,
    graceMs: o.graceMs,
  });
  return { store, lease, local, mapper, ops, manager, loop, hostId, client };
}
