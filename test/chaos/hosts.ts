// A chaos "host": one real volplugin process (test/helpers/plugin-harness.ts) with its own label,
// socket, state dir, mount root, boot id file and short lease, spoken to over its plugin socket
// exactly as dockerd does (Mount/Unmount with fresh 64-hex IDs). It remembers the references its
// "Docker" holds, so that a scenario can end as Docker would: by unmounting them.

import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { listLoopDevices } from '../../src/mapper/loop.js';
import { readMountInfo } from '../../src/mapper/mountinfo.js';
import { TestPlugin, type DaemonPlacement, type TestMaster } from '../helpers/plugin-harness.js';
import { processesBelow, runBounded } from './proc.js';
import { pidAlive } from './wait.js';

export interface CallResult {
  ok: boolean;
  /** Docker's Err ('' when ok), or why there was no answer. */
  err: string;
  ms: number;
  /** No answer within the deadline. */
  hung: boolean;
}

export interface HostOptions {
  label: string;
  /** The scenario's directory: the host lives in <root>/<label>. */
  root: string;
  master: TestMaster;
  placement: DaemonPlacement;
  lockTtl: number;
  convergeSeconds?: number;
  /** Extra environment for this host only (VOLPLUGIN_FAILPOINTS). */
  env?: Record<string, string>;
  /** Copies of files to put in the state dir before the first start (a cloned host). */
  seedState?: (stateDir: string) => Promise<void>;
}

/** What a host shows for one volume: its mount, and which image the mounted device maps. */
export interface MountView {
  host: string;
  mounted: boolean;
  device: string | null;
  /** The image file behind the loop device (rbd-fuse shows the image as a file named after it). */
  image: string | null;
}

export const CALL_TIMEOUT_MS = 120_000;

export class ChaosHost {
  readonly plugin: TestPlugin;
  readonly bootIdFile: string;
  /** Mount IDs this host's "Docker" holds, per volume (Mount answered ok, no Unmount yet). */
  readonly refs = new Map<string, Set<string>>();
  private paused = false;

  private constructor(readonly options: HostOptions) {
    this.bootIdFile = path.join(options.root, options.label, 'boot_id');
    this.plugin = new TestPlugin({
      label: options.label,
      root: options.root,
      master: options.master,
      lockTtl: options.lockTtl,
      fenceSeconds: 600,
      convergeSeconds: options.convergeSeconds ?? 1,
      ...options.placement,
      env: { ...options.placement.env, VOLPLUGIN_BOOT_ID_FILE: this.bootIdFile, ...options.env },
    });
  }

  static async start(options: HostOptions): Promise<ChaosHost> {
    const host = new ChaosHost(options);
    await mkdir(path.dirname(host.bootIdFile), { recursive: true });
    await host.newBootId();
    if (options.seedState) {
      await mkdir(host.stateDir, { recursive: true });
      await options.seedState(host.stateDir);
    }
    await host.plugin.start();
    return host;
  }

  get label(): string {
    return this.options.label;
  }

  get stateDir(): string {
    return this.plugin.stateDir;
  }

  get mountRoot(): string {
    return this.plugin.mountRoot;
  }

  get dir(): string {
    return path.join(this.options.root, this.options.label);
  }

  get running(): boolean {
    const proc = this.plugin.proc.proc;
    return !!proc && proc.exitCode === null && proc.signalCode === null;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** A new boot id (what a reboot gives the kernel). */
  async newBootId(): Promise<void> {
    await writeFile(this.bootIdFile, `${randomUUID()}\n`);
  }

  mountpoint(name: string): string {
    return this.plugin.mountpointOf(name);
  }

  private async call(method: string, body: object, timeoutMs: number): Promise<CallResult> {
    const started = Date.now();
    try {
      const answer = await this.plugin.call(method, body, timeoutMs);
      return { ok: answer.Err === '', err: answer.Err ?? '(no Err field)', ms: Date.now() - started, hung: false };
    } catch (err) {
      const message = (err as Error).message;
      return { ok: false, err: message, ms: Date.now() - started, hung: /no answer within/.test(message) };
    }
  }

  async create(name: string, timeoutMs = CALL_TIMEOUT_MS): Promise<CallResult> {
    return this.call('VolumeDriver.Create', { Name: name, Opts: null }, timeoutMs);
  }

  async remove(name: string, timeoutMs = CALL_TIMEOUT_MS): Promise<CallResult> {
    return this.call('VolumeDriver.Remove', { Name: name }, timeoutMs);
  }

  /** Docker's Mount with `id`; an ok answer is remembered as a reference Docker holds. */
  async mount(name: string, id: string, timeoutMs = CALL_TIMEOUT_MS): Promise<CallResult> {
    const result = await this.call('VolumeDriver.Mount', { Name: name, ID: id }, timeoutMs);
    if (result.ok) {
      const set = this.refs.get(name) ?? new Set<string>();
      set.add(id);
      this.refs.set(name, set);
    }
    return result;
  }

  /** Docker's Unmount of `id`; an ok answer forgets the reference. */
  async unmount(name: string, id: string, timeoutMs = CALL_TIMEOUT_MS): Promise<CallResult> {
    const result = await this.call('VolumeDriver.Unmount', { Name: name, ID: id }, timeoutMs);
    if (result.ok) this.refs.get(name)?.delete(id);
    return result;
  }

  /** Every reference this host's Docker holds, as [volume, id]. */
  heldRefs(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (const [name, ids] of this.refs) for (const id of ids) out.push([name, id]);
    return out;
  }

  /** Forgets references a reboot destroyed (the containers that held them are gone). */
  dropRefs(): void {
    this.refs.clear();
  }

  /** What this host shows for `name`: the mount at its mountpoint and the image behind its device. */
  async view(name: string): Promise<MountView> {
    const mp = this.mountpoint(name);
    const mount = (await readMountInfo()).filter((m) => m.mountPoint === mp).pop();
    if (!mount) return { host: this.label, mounted: false, device: null, image: null };
    const loop = (await listLoopDevices()).find((l) => l.device === mount.source);
    return { host: this.label, mounted: true, device: mount.source, image: loop ? path.basename(loop.backingFile) : null };
  }

  /**
   * Why this host's volplugin holds `name` as lost (its lease lapsed, another host took it), from
   * its mount table; null when it does not (or has no entry for it).
   */
  async lostReason(name: string): Promise<string | null> {
    const [tenant, volume] = name.split('/');
    const text = await readFile(path.join(this.stateDir, 'mounts.json'), 'utf8').catch(() => '{"volumes":[]}');
    const table = JSON.parse(text) as { volumes?: Array<{ tenant: string; volume: string; lost?: string | null }> };
    return table.volumes?.find((v) => v.tenant === tenant && v.volume === volume)?.lost ?? null;
  }

  /**
   * One 4k O_DIRECT write through the mountpoint, as a container would write: 'ok' when it reached
   * the device, 'failed' (EIO after fencing, read-only...), 'hung' (blocked: abandoned after
   * `timeoutMs`). No fsync: a flush to a fenced rbd-fuse can block for good, and the probe would
   * then keep the mount busy.
   */
  async probeWrite(name: string, timeoutMs = 8_000): Promise<'ok' | 'failed' | 'hung'> {
    const file = path.join(this.mountpoint(name), `.probe-${this.label}`);
    const result = await runBounded('dd', ['if=/dev/zero', `of=${file}`, 'bs=4k', 'count=1', 'oflag=direct', 'conv=notrunc'], timeoutMs);
    if (result.timedOut) return 'hung';
    return result.code === 0 ? 'ok' : 'failed';
  }

  // ---- what faults do to the process -------------------------------------------------------------

  async kill9(): Promise<void> {
    this.paused = false;
    await this.plugin.kill9();
  }

  pause(): void {
    this.plugin.proc.signal('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    this.plugin.proc.signal('SIGCONT');
    this.paused = false;
  }

  /** Starts volplugin again with the same identity and directories (after a kill or a stop). */
  async restart(): Promise<void> {
    await this.plugin.start();
  }

  /** SIGTERM (after SIGCONT), SIGKILL after 15 s: volplugin keeps mounts and locks, as in production. */
  async stop(): Promise<void> {
    this.paused = false;
    await this.plugin.stop();
  }

  /** The rbd-fuse processes of this host (their mountpoints are below its state dir). */
  rbdFusePids(): Promise<number[]> {
    return processesBelow('rbd-fuse', this.stateDir);
  }

  async alive(): Promise<boolean> {
    return this.running && (await pidAlive(this.plugin.proc.pid));
  }

  /** The end of the current process's log, for evidence. */
  async logTail(chars = 1_500): Promise<string> {
    return (await this.plugin.logs()).slice(-chars);
  }
}
