// The rate limits of a mounted volume, applied two ways:
//
// 1. blkio throttling of the volume's block device in the cgroup of every container that uses the
//    volume. Docker's Mount request names no container, so the Docker API says which containers
//    mount the volume. Throttling is per cgroup and (with cgroup v1 here) not hierarchical: the
//    limit goes into each container's own cgroup. A container that is being started has no cgroup
//    yet; with dockerd's cgroupfs driver its path is known (<parent>/<id>), so volplugin creates it
//    ahead with the limits in place and runc then uses it: the container is throttled from its
//    first I/O. Running containers' cgroups come from /proc/<pid>/cgroup (any cgroup driver).
// 2. librbd QoS on the image (conf_rbd_qos_*_limit metadata), which userspace clients (rbd-fuse,
//    rbd-nbd) enforce for everything that reaches the image.

import { mkdir, readFile, rename, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { RateLimit } from '../policy/types.js';
import type { QosLimits, Storage } from '../storage/types.js';
import { applyBlkioV1, applyIoMax, readBlkioV1, type DeviceNumber } from './blkio.js';
import { cgroupOfProcess, plannedCgroup, type CgroupSetup, type CgroupTarget } from './cgroups.js';
import { qosOf } from './limits.js';

export interface RateLimitLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** The Docker Engine API calls the limiter makes (volplugin's DockerClient). */
export interface ContainerEngine {
  info(): Promise<CgroupSetup>;
  /** Every container (running or not) that mounts the named volume. */
  containersUsingVolume(name: string): Promise<Array<{ Id: string; State?: string }>>;
  inspect(id: string): Promise<{ State?: { Running?: boolean; Pid?: number; Status?: string }; HostConfig?: { CgroupParent?: string } }>;
}

/** cgroup files take one small write each; Node's writeFile makes exactly one write(2) for them. */
const cgroupWrite = (file: string, data: string): Promise<void> => writeFile(file, data);

export interface RateLimiterOptions {
  /** File that remembers the cgroups made ahead, so that a restarted volplugin still sweeps them. */
  aheadFile?: string;
  /** Null when volplugin runs without Docker access: only librbd QoS then. */
  docker: ContainerEngine | null;
  storage: Pick<Storage, 'setQos' | 'getQos'>;
  /** Root of the cgroup mounts (default /sys/fs/cgroup). */
  cgroupRoot?: string;
  log?: RateLimitLog;
}

export interface ApplyResult {
  /** Containers whose cgroup got the limits. */
  containers: string[];
  /** Why some could not (they are retried by the next convergence round). */
  problems: string[];
}

export class RateLimiter {
  private info: CgroupSetup | null = null;
  /** Cgroup directories volplugin made ahead of a container start (removed if the container never ran). */
  private readonly madeAhead = new Map<string, string>();
  /** --cgroup-parent of containers seen being created ('' = dockerd's default). */
  private readonly parents = new Map<string, string>();
  private readonly root: string;

  constructor(private readonly options: RateLimiterOptions) {
    this.root = options.cgroupRoot ?? '/sys/fs/cgroup';
  }

  /** Reads the cgroups made ahead by an earlier run (see aheadFile). */
  async load(): Promise<void> {
    if (!this.options.aheadFile) return;
    try {
      const saved = JSON.parse(await readFile(this.options.aheadFile, 'utf8')) as Record<string, string>;
      for (const [id, dir] of Object.entries(saved)) if (typeof dir === 'string') this.madeAhead.set(id, dir);
    } catch {
      // none yet
    }
  }

  private async saveAhead(): Promise<void> {
    if (!this.options.aheadFile) return;
    const tmp = `${this.options.aheadFile}.tmp`;
    await writeFile(tmp, JSON.stringify(Object.fromEntries(this.madeAhead)));
    await rename(tmp, this.options.aheadFile);
  }

  /**
   * Sets the image's librbd QoS. The master set it when the volume was made or last changed, so
   * it is read first and only what differs is written (each write is a round trip to the OSD).
   */
  async applyQos(pool: string, image: string, limits: RateLimit): Promise<void> {
    const changes = await this.qosChanges(pool, image, limits);
    if (changes) await this.writeQos(pool, image, changes);
  }

  /** The QoS settings of the image that differ from `limits` (null: none). */
  async qosChanges(pool: string, image: string, limits: RateLimit): Promise<QosLimits | null> {
    const current = await this.options.storage.getQos(pool, image);
    const changes: QosLimits = {};
    for (const [field, value] of Object.entries(qosOf(limits)) as Array<[keyof QosLimits, number]>) {
      if ((current[field] ?? 0) !== value) changes[field] = value;
    }
    return Object.keys(changes).length > 0 ? changes : null;
  }

  /** Writes QoS settings (qosChanges) to the image. */
  async writeQos(pool: string, image: string, changes: QosLimits): Promise<void> {
    await this.options.storage.setQos(pool, image, changes);
  }

  async dockerInfo(): Promise<CgroupSetup> {
    if (!this.info) this.info = await this.options.docker!.info();
    return this.info;
  }

  /**
   * The cgroups of the containers that use Docker volume `name`: those about to start (state
   * "created": their cgroup path is planned) and, unless `duringMount`, the running ones (their
   * cgroup read from /proc). During a Mount dockerd holds the starting container's lock, and
   * inspecting any container in transition would wait for it: the Mount path uses the container
   * list only (served without container locks) and leaves running containers to the loop.
   */
  async targetsOf(name: string, options: { duringMount: boolean }): Promise<Array<{ id: string; target: CgroupTarget }>> {
    const docker = this.options.docker;
    if (!docker) return [];
    const containers = await docker.containersUsingVolume(name);
    const out: Array<{ id: string; target: CgroupTarget }> = [];
    for (const c of containers) {
      let target: CgroupTarget | null = null;
      if (c.State === 'created' || c.State === 'restarting') {
        target = plannedCgroup(await this.dockerInfo(), c.Id, this.parents.get(c.Id), this.root);
      } else if (c.State === 'running' && !options.duringMount) {
        target = await this.runningTarget(c.Id);
      }
      if (target) out.push({ id: c.Id, target });
    }
    return out;
  }

  /** Remembers a container's --cgroup-parent (learnt from its create event, when it is not locked). */
  async learnContainer(id: string): Promise<void> {
    const docker = this.options.docker;
    if (!docker) return;
    const details = await docker.inspect(id);
    this.parents.set(id, details.HostConfig?.CgroupParent ?? '');
  }

  forgetContainer(id: string): void {
    this.parents.delete(id);
  }

  /** A running container's cgroup, from its init process. */
  async runningTarget(id: string): Promise<CgroupTarget | null> {
    const docker = this.options.docker;
    if (!docker) return null;
    const details = await docker.inspect(id);
    const pid = details.State?.Pid ?? 0;
    if (!details.State?.Running || pid <= 0) return null;
    const content = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => null);
    return content === null ? null : cgroupOfProcess(content, this.root);
  }

  /** Writes the device's limits into one cgroup (making it first when the container has not started). */
  async writeLimits(target: CgroupTarget, dev: DeviceNumber, limits: RateLimit, containerId?: string): Promise<void> {
    if (target.ahead) {
      const existed = await readFile(path.join(target.dir, 'cgroup.procs'), 'utf8').then(
        () => true,
        () => false,
      );
      if (!existed) {
        await mkdir(target.dir, { recursive: true });
        if (containerId) {
          this.madeAhead.set(containerId, target.dir);
          await this.saveAhead().catch(() => undefined);
        }
      }
    }
    if (target.version === 2) {
      await applyIoMax(target.dir, dev, limits, cgroupWrite);
      return;
    }
    // Only what differs is written (the loop re-applies every round).
    const current = await readBlkioV1(target.dir, dev);
    const changed = Object.fromEntries(
      (Object.keys(current) as Array<keyof RateLimit>).filter((k) => current[k] !== limits[k]).map((k) => [k, limits[k]]),
    );
    await applyBlkioV1(target.dir, dev, changed, cgroupWrite);
  }

  /** Applies `limits` for device `dev` to every container using Docker volume `name` (see targetsOf). */
  async applyToContainers(name: string, dev: DeviceNumber, limits: RateLimit, options: { duringMount: boolean }): Promise<ApplyResult> {
    const result: ApplyResult = { containers: [], problems: [] };
    if (!this.options.docker) return result;
    let targets: Array<{ id: string; target: CgroupTarget }>;
    try {
      targets = await this.targetsOf(name, options);
    } catch (err) {
      result.problems.push(`cannot list the containers of ${name} (${(err as Error).message}): its rate limits wait for the Docker API`);
      return result;
    }
    for (const { id, target } of targets) {
      try {
        await this.writeLimits(target, dev, limits, id);
        result.containers.push(id);
      } catch (err) {
        result.problems.push(`cannot write the rate limits of ${name} into ${target.dir} (${(err as Error).message})`);
      }
    }
    return result;
  }

  /** Removes cgroups made ahead for containers that no longer wait to start (rmdir of an empty cgroup only). */
  async sweepAhead(): Promise<void> {
    const docker = this.options.docker;
    if (!docker || this.madeAhead.size === 0) return;
    const before = this.madeAhead.size;
    for (const [id, dir] of this.madeAhead) {
      let status: string | undefined;
      try {
        status = (await docker.inspect(id)).State?.Status;
      } catch (err) {
        // Gone (404): sweep. Docker busy or away: ask again next round.
        if (!/answered 404/.test((err as Error).message)) continue;
      }
      if (status === 'created' || status === 'restarting') continue;
      if (status === 'running') {
        this.madeAhead.delete(id);
        continue;
      }
      await rmdir(dir).catch(() => undefined);
      this.madeAhead.delete(id);
    }
    if (this.madeAhead.size !== before) await this.saveAhead().catch(() => undefined);
  }
}
