// Over 400 lines: the ten Controller RPCs share their checks and lookups; each is short.
// The CSI Controller service: a client of the volmaster API (with a token of role provisioner), so
// that every volume it makes lives under the same tenant policies, limits, operation locks and
// records as Docker's, and every change goes through the master's checks. What each RPC maps to:
//
//   CreateVolume      PUT /v1/volumes/<tenant>/<volume> {options, requestName} (the tenant and the
//                     driver options are the request's parameters; the size comes from the capacity
//                     range), or a copy of a snapshot grown to the range (POST .../copy, POST .../resize)
//   DeleteVolume      DELETE /v1/volumes/... (data and volplugin's own snapshots go with it; refused
//                     while it is attached or has snapshots the CO made)
//   ControllerPublish PUT .../attachment {hostId}: the volume is attached to one host; its mount lock
//                     and fencing are taken by that host's NodeStageVolume (docs/csi.md)
//   CreateSnapshot    POST .../snapshots {name: csi-<name>, requestName}
//   ControllerExpand  POST .../resize (an operation; the node grows the filesystem)
//
// ids: ids.ts; capacities: capacity.ts; capabilities: capabilities.ts; errors: errors.ts.

import type { Logger } from 'pino';
import type { ApiClient } from '../api/client.js';
import { ApiError } from '../api/errors.js';
import type { SnapshotEntry } from '../api/schemas.js';
import { conflictingOptions, parseDriverOptions, type OptionValues } from '../policy/options.js';
import { formatSize } from '../policy/units.js';
import { policyDefaults } from '../policy/validate.js';
import type { VolumeRecord } from '../state/records.js';
import { CONTROLLER_CAPABILITIES, capabilityProblem } from './capabilities.js';
import { KiB, fits, parseRange, sizeFor, type Range } from './capacity.js';
import { alreadyExists, apiCode, failedPrecondition, invalidArgument, notFound, outOfRange, requireField } from './errors.js';
import { isCsiSnapshot, pageToken, parsePageToken, parseSnapshotId, parseVolumeId, snapshotId, snapshotNameFor, volumeId, volumeNameFor, type SnapshotRef } from './ids.js';
import type {
  ControllerPublishVolumeRequest,
  CreateVolumeRequest,
  ListSnapshotsRequest,
  Snapshot,
  StringMap,
  ValidateVolumeCapabilitiesRequest,
  Volume,
  VolumeCapability,
} from './proto.js';
import { CsiError, status } from './errors.js';
import { InFlight, type Handlers } from './server.js';

/** Parameter keys the CO's own tooling adds (Kubernetes' external-provisioner and -snapshotter): ignored. */
const CO_PREFIX = 'csi.storage.k8s.io/';

/** The tenant and driver options named by CreateVolume's parameters. */
export interface VolumeParameters {
  tenant: string;
  options: OptionValues;
}

/** Reads CreateVolume's (or ValidateVolumeCapabilities') parameters: `tenant` and driver options, checked; size comes from the capacity range. */
export function parseParameters(parameters: StringMap): VolumeParameters {
  const options: OptionValues = {};
  let tenant: string | undefined;
  for (const [key, value] of Object.entries(parameters)) {
    if (key.startsWith(CO_PREFIX)) continue;
    if (key === 'tenant') tenant = value;
    else if (key === 'size') throw invalidArgument('parameters.size: a volume\'s size comes from capacity_range (the claim\'s request), not from a parameter');
    else options[key] = value;
  }
  if (!tenant) throw invalidArgument('parameters.tenant is required: name the volplugin tenant whose policy the volume follows (a StorageClass parameter)');
  try {
    parseDriverOptions(options);
  } catch (err) {
    throw invalidArgument(`parameters: ${(err as Error).message}`);
  }
  return { tenant, options };
}

/** The filesystem the capabilities ask for ('' for none); INVALID_ARGUMENT when they disagree with each other or the parameters. */
function filesystemOf(capabilities: VolumeCapability[], options: OptionValues): string {
  const asked = new Set(capabilities.map((c) => c.mount?.fs_type ?? '').filter(Boolean));
  if (asked.size > 1) throw invalidArgument(`volume_capabilities ask for several filesystems (${[...asked].join(', ')}); a volume has one`);
  const fs = [...asked][0] ?? '';
  if (fs && options.filesystem !== undefined && String(options.filesystem) !== fs) {
    throw invalidArgument(`fs_type ${fs} and parameters.filesystem ${String(options.filesystem)} disagree`);
  }
  return fs;
}

/** INVALID_ARGUMENT unless every capability is given and can be met. */
function checkCapabilities(capabilities: VolumeCapability[], field: string): void {
  if (capabilities.length === 0) throw invalidArgument(`${field} is required`);
  capabilities.forEach((c, i) => {
    const problem = capabilityProblem(c, `${field}[${i}]`);
    if (problem) throw invalidArgument(problem.message);
  });
}

function volumeOf(record: VolumeRecord): Volume {
  return {
    capacity_bytes: String(record.options.sizeBytes),
    volume_id: volumeId(record.tenant, record.volume),
    volume_context: { tenant: record.tenant, volume: record.volume, pool: record.pool, filesystem: record.options.filesystem },
    ...(record.source ? { content_source: { snapshot: { snapshot_id: snapshotId(record.source) } } } : {}),
  };
}

function snapshotOf(ref: SnapshotRef, entry: SnapshotEntry): Snapshot {
  const at = entry.createdAt ? Date.parse(entry.createdAt) : Date.now();
  return {
    size_bytes: String(entry.sizeBytes),
    snapshot_id: snapshotId(ref),
    source_volume_id: volumeId(ref.tenant, ref.volume),
    creation_time: { seconds: String(Math.floor(at / 1000)), nanos: (at % 1000) * 1_000_000 },
    ready_to_use: true,
  };
}

/** Only the CO's own keys may be in CreateSnapshot's parameters. */
function checkSnapshotParameters(parameters: StringMap): void {
  const key = Object.keys(parameters).find((k) => !k.startsWith(CO_PREFIX));
  if (key !== undefined) throw invalidArgument(`parameters.${key}: CreateSnapshot takes no parameters`);
}

export interface ControllerDeps {
  api: ApiClient;
  log: Logger;
}

export class CsiController {
  private readonly busy = new InFlight();

  constructor(private readonly deps: ControllerDeps) {}

  /** The volume's record, or null when it does not exist. */
  private async record(tenant: string, volume: string): Promise<VolumeRecord | null> {
    try {
      return await this.deps.api.getVolume(tenant, volume);
    } catch (err) {
      if (apiCode(err) === 'VOLUME_NOT_FOUND') return null;
      throw err;
    }
  }

  private async requireVolume(id: string): Promise<VolumeRecord> {
    const ref = parseVolumeId(id);
    const record = ref && (await this.record(ref.tenant, ref.volume));
    if (!record) throw notFound(`volume ${id} does not exist`);
    return record;
  }

  /** The volume's snapshots; [] when the volume does not exist. */
  private async snapshotsOf(tenant: string, volume: string): Promise<SnapshotEntry[]> {
    try {
      return await this.deps.api.listSnapshots(tenant, volume);
    } catch (err) {
      if (apiCode(err) === 'VOLUME_NOT_FOUND') return [];
      throw err;
    }
  }

  // ---- volumes ---------------------------------------------------------------------------------

  async createVolume(req: CreateVolumeRequest): Promise<{ volume: Volume }> {
    const name = requireField(req.name, 'name');
    checkCapabilities(req.volume_capabilities, 'volume_capabilities');
    if (Object.keys(req.mutable_parameters).length > 0) throw invalidArgument('mutable_parameters: volplugin has no MODIFY_VOLUME capability; give them as parameters');
    if (req.accessibility_requirements) throw invalidArgument('accessibility_requirements: volplugin reports no topology (no VOLUME_ACCESSIBILITY_CONSTRAINTS); a volume is reachable from every node');
    const { tenant, options } = parseParameters(req.parameters);
    const fs = filesystemOf(req.volume_capabilities, options);
    if (fs) options.filesystem = fs;
    const range = parseRange(req.capacity_range);
    const source = this.sourceOf(req);
    const volume = volumeNameFor(name);
    return this.busy.run(`create:${name}`, `volume ${JSON.stringify(name)}`, async () => {
      const existing = await this.record(tenant, volume);
      if (existing) return { volume: volumeOf(await this.sameRequest(existing, name, range, options, source)) };
      const record = source ? await this.fromSnapshot(tenant, volume, name, source, range, options) : await this.fresh(tenant, volume, name, range, options);
      return { volume: volumeOf(record) };
    });
  }

  private sourceOf(req: CreateVolumeRequest): SnapshotRef | null {
    const src = req.volume_content_source;
    if (!src) return null;
    if (src.type === 'volume') throw invalidArgument('volume_content_source.volume: cloning a volume is not offered (no CLONE_VOLUME); take a snapshot and create from it');
    const id = requireField(src.snapshot?.snapshot_id, 'volume_content_source.snapshot.snapshot_id');
    const ref = parseSnapshotId(id);
    if (!ref) throw notFound(`snapshot ${id} does not exist`);
    return ref;
  }

  /** A new, empty volume of a size in the range (the tenant's default when it fits). */
  private async fresh(tenant: string, volume: string, name: string, range: Range, options: OptionValues): Promise<VolumeRecord> {
    let policy;
    try {
      policy = (await this.deps.api.getTenant(tenant)).policy;
    } catch (err) {
      if (apiCode(err) === 'TENANT_NOT_FOUND') throw invalidArgument(`parameters.tenant: volplugin has no tenant ${tenant}; upload its policy (volcli tenant upload ${tenant})`);
      throw err;
    }
    const size = sizeFor(range, policyDefaults(policy).sizeBytes);
    try {
      return (await this.deps.api.createVolume(tenant, volume, { ...options, size: formatSize(size) }, { requestName: name })).volume;
    } catch (err) {
      // Created meanwhile (a retry racing the first call): the same request finds its volume.
      if (apiCode(err) !== 'VOLUME_EXISTS') throw err;
      const existing = await this.record(tenant, volume);
      if (!existing) throw err;
      return this.sameRequest(existing, name, range, options, null);
    }
  }

  /** A copy of a snapshot, grown to the range when it asks for more than the snapshot's size. */
  private async fromSnapshot(tenant: string, volume: string, name: string, source: SnapshotRef, range: Range, options: OptionValues): Promise<VolumeRecord> {
    const snap = (await this.snapshotsOf(source.tenant, source.volume)).find((s) => s.name === source.snapshot);
    if (!snap) throw notFound(`snapshot ${snapshotId(source)} does not exist`);
    if (range.limit > 0 && snap.sizeBytes > range.limit) throw outOfRange(`snapshot ${snapshotId(source)} holds ${snap.sizeBytes} bytes, more than limit_bytes ${range.limit}`);
    const sourceRecord = await this.record(source.tenant, source.volume);
    const copyOptions = { ...options };
    if (copyOptions.filesystem !== undefined) {
      if (sourceRecord && String(copyOptions.filesystem) !== sourceRecord.options.filesystem) {
        throw invalidArgument(`the snapshot holds ${sourceRecord.options.filesystem}, not ${String(copyOptions.filesystem)}: a volume made from it has the snapshot's filesystem`);
      }
      delete copyOptions.filesystem; // a copy has its source's filesystem; the master refuses the option
    }
    let record: VolumeRecord;
    try {
      record = await this.deps.api.copySnapshot(source.tenant, source.volume, source.snapshot, { tenant, volume, options: copyOptions, requestName: name });
    } catch (err) {
      if (apiCode(err) === 'SNAPSHOT_NOT_FOUND') throw notFound(`snapshot ${snapshotId(source)} does not exist`);
      if (apiCode(err) === 'VOLUME_NOT_FOUND') throw notFound(`snapshot ${snapshotId(source)} does not exist (its volume is gone)`);
      throw err;
    }
    return this.growToRange(record, range);
  }

  /** Grows a volume made for this request to the range (a copy of a smaller snapshot). */
  private async growToRange(record: VolumeRecord, range: Range): Promise<VolumeRecord> {
    if (range.required <= record.options.sizeBytes) return record;
    return this.resize(record, sizeFor({ required: range.required, limit: range.limit }, null));
  }

  /**
   * Grows the volume to `sizeBytes` through the API's resize (POST .../resize, waiting for its
   * operation) and answers the record as it is then. A filesystem the holder could not grow yet
   * ("pending") is fine: NodeExpandVolume, or the next stage, grows it. A volume already larger
   * (SHRINK_REFUSED: another call grew it meanwhile) is taken as it is.
   */
  private async resize(record: VolumeRecord, sizeBytes: number): Promise<VolumeRecord> {
    // Whole KiB (capacity.ts sizeFor): the API's sizes take a unit.
    await this.deps.api.resizeVolume(record.tenant, record.volume, `${sizeBytes / KiB}KB`).catch((err: unknown) => {
      // Larger already (another call grew it), or grown but for the filesystem (NodeExpandVolume grows it).
      if (apiCode(err) === 'SHRINK_REFUSED' || apiCode(err) === 'FILESYSTEM_NOT_GROWN') return;
      if (apiCode(err) === 'LIMIT_EXCEEDED') throw outOfRange((err as ApiError).message);
      throw err;
    });
    return this.deps.api.getVolume(record.tenant, record.volume);
  }

  /** The existing volume when this request made it and it still matches the request; ALREADY_EXISTS otherwise. */
  private async sameRequest(existing: VolumeRecord, name: string, range: Range, options: OptionValues, source: SnapshotRef | null): Promise<VolumeRecord> {
    const id = volumeId(existing.tenant, existing.volume);
    if (existing.requestName !== name) throw alreadyExists(`volume ${id} exists and was not created for the request name ${JSON.stringify(name)}`);
    const sameSource = source === null ? !existing.source : existing.source?.tenant === source.tenant && existing.source.volume === source.volume && existing.source.snapshot === source.snapshot;
    if (!sameSource) throw alreadyExists(`volume ${id} of request ${JSON.stringify(name)} was made from another source`);
    const { filesystem: fs, ...rest } = options;
    const differ = conflictingOptions(existing.options, source ? rest : options);
    if (source && fs !== undefined && String(fs) !== existing.options.filesystem) differ.push('filesystem');
    if (differ.length > 0) throw alreadyExists(`volume ${id} of request ${JSON.stringify(name)} exists with other ${differ.join(', ')}`);
    // A copy that was not grown yet (a call that died in between) is finished now.
    const grown = source ? await this.growToRange(existing, range) : existing;
    if (!fits(grown.options.sizeBytes, range)) {
      throw alreadyExists(`volume ${id} of request ${JSON.stringify(name)} has ${grown.options.sizeBytes} bytes, outside the capacity range asked for now`);
    }
    return grown;
  }

  async deleteVolume(req: { volume_id: string }): Promise<object> {
    const id = requireField(req.volume_id, 'volume_id');
    const ref = parseVolumeId(id);
    if (!ref) return {}; // never made by volplugin: nothing to delete
    return this.busy.run(`volume:${id}`, `volume ${id}`, async () => {
      if (!(await this.record(ref.tenant, ref.volume))) return {};
      const attachment = await this.deps.api.getAttachment(ref.tenant, ref.volume).catch((err: unknown) => {
        if (apiCode(err) === 'ATTACHMENT_NOT_FOUND') return null;
        throw err;
      });
      if (attachment) throw failedPrecondition(`volume ${id} is published to node ${attachment.hostId} (${attachment.host}): unpublish it first`);
      const kept = (await this.snapshotsOf(ref.tenant, ref.volume)).filter((s) => isCsiSnapshot(s.name));
      if (kept.length > 0) {
        throw failedPrecondition(
          `volume ${id} has snapshots made through CSI (${kept.map((s) => s.name).join(', ')}), which would go with it: delete them first`,
        );
      }
      try {
        await this.deps.api.removeVolume(ref.tenant, ref.volume);
      } catch (err) {
        if (apiCode(err) !== 'VOLUME_NOT_FOUND') throw err;
      }
      return {};
    });
  }

  async controllerPublishVolume(req: ControllerPublishVolumeRequest): Promise<object> {
    const id = requireField(req.volume_id, 'volume_id');
    const node = requireField(req.node_id, 'node_id');
    const missing = capabilityProblem(req.volume_capability, 'volume_capability');
    if (missing?.kind === 'missing') throw invalidArgument(missing.message);
    if (req.readonly) throw invalidArgument('readonly: volplugin has no PUBLISH_READONLY capability; publish read-only on the node (NodePublishVolume readonly)');
    return this.busy.run(`volume:${id}`, `volume ${id}`, async () => {
      const record = await this.requireVolume(id);
      const problem = capabilityProblem(req.volume_capability, 'volume_capability', record.options.filesystem);
      if (problem) throw invalidArgument(problem.message);
      try {
        await this.deps.api.attachVolume(record.tenant, record.volume, node, false);
      } catch (err) {
        if (apiCode(err) === 'HOST_NOT_FOUND') throw notFound(`node ${node} does not exist: no live volplugin has that host id`);
        throw err;
      }
      return { publish_context: {} };
    });
  }

  async controllerUnpublishVolume(req: { volume_id: string; node_id: string }): Promise<object> {
    const id = requireField(req.volume_id, 'volume_id');
    const ref = parseVolumeId(id);
    if (!ref) return {}; // never made by volplugin: published nowhere
    return this.busy.run(`volume:${id}`, `volume ${id}`, async () => {
      await this.deps.api.detachVolume(ref.tenant, ref.volume, req.node_id || undefined);
      return {};
    });
  }

  async validateVolumeCapabilities(req: ValidateVolumeCapabilitiesRequest): Promise<object> {
    const id = requireField(req.volume_id, 'volume_id');
    if (req.volume_capabilities.length === 0) throw invalidArgument('volume_capabilities is required');
    for (const [i, c] of req.volume_capabilities.entries()) {
      const problem = capabilityProblem(c, `volume_capabilities[${i}]`);
      if (problem?.kind === 'missing') throw invalidArgument(problem.message);
    }
    const record = await this.requireVolume(id);
    const unmet = req.volume_capabilities.map((c, i) => capabilityProblem(c, `volume_capabilities[${i}]`, record.options.filesystem)).find(Boolean);
    if (unmet) return { message: unmet.message };
    if (Object.keys(req.mutable_parameters).length > 0) return { message: 'mutable_parameters: volplugin has no MODIFY_VOLUME capability' };
    if (Object.keys(req.parameters).length > 0) {
      let params: VolumeParameters;
      try {
        params = parseParameters(req.parameters);
      } catch (err) {
        return { message: (err as Error).message };
      }
      const { size: _size, ...given } = params.options;
      const differ = params.tenant !== record.tenant ? ['tenant'] : conflictingOptions(record.options, given);
      if (differ.length > 0) return { message: `the volume has other ${differ.join(', ')} than the parameters ask for` };
    }
    return { confirmed: { volume_context: req.volume_context, volume_capabilities: req.volume_capabilities, parameters: req.parameters } };
  }

  async controllerExpandVolume(req: { volume_id: string; capacity_range: CreateVolumeRequest['capacity_range']; volume_capability: VolumeCapability | null }): Promise<object> {
    const id = requireField(req.volume_id, 'volume_id');
    if (!req.capacity_range) throw invalidArgument('capacity_range is required');
    const range = parseRange(req.capacity_range);
    if (req.volume_capability) {
      const problem = capabilityProblem(req.volume_capability, 'volume_capability');
      if (problem) throw invalidArgument(problem.message);
    }
    return this.busy.run(`volume:${id}`, `volume ${id}`, async () => {
      const record = await this.requireVolume(id);
      const current = record.options.sizeBytes;
      if (range.limit > 0 && current > range.limit) throw outOfRange(`volume ${id} has ${current} bytes already, more than limit_bytes ${range.limit}; volumes do not shrink`);
      let size = current;
      if (range.required > current) {
        size = (await this.resize(record, sizeFor(range, null))).options.sizeBytes;
      }
      return { capacity_bytes: String(size), node_expansion_required: true };
    });
  }

  // ---- snapshots -------------------------------------------------------------------------------

  async createSnapshot(req: { source_volume_id: string; name: string; parameters: StringMap }): Promise<{ snapshot: Snapshot }> {
    const sourceId = requireField(req.source_volume_id, 'source_volume_id');
    const name = requireField(req.name, 'name');
    checkSnapshotParameters(req.parameters);
    const ref = parseVolumeId(sourceId);
    if (!ref) throw notFound(`volume ${sourceId} does not exist`);
    const snapshot = snapshotNameFor(name);
    return this.busy.run(`snapshot:${name}`, `snapshot ${JSON.stringify(name)}`, async () => {
      let entry: SnapshotEntry;
      try {
        entry = await this.deps.api.takeSnapshot(ref.tenant, ref.volume, snapshot, { requestName: name });
      } catch (err) {
        if (apiCode(err) === 'VOLUME_NOT_FOUND') throw notFound(`volume ${sourceId} does not exist`);
        if (apiCode(err) === 'NAME_TAKEN') throw alreadyExists(`snapshot name ${JSON.stringify(name)} was given for another volume: ${(err as ApiError).message}`);
        throw err;
      }
      return { snapshot: snapshotOf({ ...ref, snapshot }, entry) };
    });
  }

  async deleteSnapshot(req: { snapshot_id: string }): Promise<object> {
    const id = requireField(req.snapshot_id, 'snapshot_id');
    const ref = parseSnapshotId(id);
    if (!ref) return {}; // never made by volplugin: nothing to delete
    return this.busy.run(`snapshot-id:${id}`, `snapshot ${id}`, async () => {
      try {
        await this.deps.api.removeSnapshot(ref.tenant, ref.volume, ref.snapshot);
      } catch (err) {
        const code = apiCode(err);
        if (code === 'SNAPSHOT_NOT_FOUND' || code === 'VOLUME_NOT_FOUND') return {};
        if (code === 'VOLUME_HAS_CLONES') throw failedPrecondition(`snapshot ${id} is in use: ${(err as ApiError).message}`);
        throw err;
      }
      return {};
    });
  }

  async listSnapshots(req: ListSnapshotsRequest): Promise<object> {
    if (req.max_entries < 0) throw invalidArgument(`max_entries is negative (${req.max_entries})`);
    const after = req.starting_token ? parsePageToken(req.starting_token) : null;
    if (req.starting_token && after === null) throw new CsiError(status.ABORTED, `starting_token ${JSON.stringify(req.starting_token)} is not one this driver gave; list again from the start`);
    let all: Snapshot[];
    if (req.snapshot_id) {
      const ref = parseSnapshotId(req.snapshot_id);
      const match = ref && (!req.source_volume_id || req.source_volume_id === volumeId(ref.tenant, ref.volume));
      all = match ? await this.listOf(ref, (s) => s.name === ref.snapshot) : [];
    } else if (req.source_volume_id) {
      const ref = parseVolumeId(req.source_volume_id);
      all = ref ? await this.listOf(ref) : [];
    } else {
      all = [];
      const volumes = await this.deps.api.listVolumes();
      // A few volumes at a time: each is one request to the master.
      for (let i = 0; i < volumes.length; i += 8) {
        const batch = await Promise.all(volumes.slice(i, i + 8).map((v) => this.listOf(v)));
        all.push(...batch.flat());
      }
    }
    all.sort((a, b) => (a.snapshot_id < b.snapshot_id ? -1 : a.snapshot_id > b.snapshot_id ? 1 : 0));
    const rest = after === null ? all : all.filter((s) => s.snapshot_id > after);
    const page = req.max_entries > 0 ? rest.slice(0, req.max_entries) : rest;
    const more = page.length < rest.length;
    return { entries: page.map((snapshot) => ({ snapshot })), next_token: more ? pageToken(page[page.length - 1]!.snapshot_id) : '' };
  }

  private async listOf(ref: { tenant: string; volume: string }, keep: (s: SnapshotEntry) => boolean = () => true): Promise<Snapshot[]> {
    return (await this.snapshotsOf(ref.tenant, ref.volume)).filter(keep).map((s) => snapshotOf({ ...ref, snapshot: s.name }, s));
  }

  /** The RPC handlers, by method name. */
  handlers(): Handlers {
    return {
      CreateVolume: (r: CreateVolumeRequest) => this.createVolume(r),
      DeleteVolume: (r: { volume_id: string }) => this.deleteVolume(r),
      ControllerPublishVolume: (r: ControllerPublishVolumeRequest) => this.controllerPublishVolume(r),
      ControllerUnpublishVolume: (r: { volume_id: string; node_id: string }) => this.controllerUnpublishVolume(r),
      ValidateVolumeCapabilities: (r: ValidateVolumeCapabilitiesRequest) => this.validateVolumeCapabilities(r),
      ControllerGetCapabilities: async () => ({ capabilities: CONTROLLER_CAPABILITIES }),
      CreateSnapshot: (r: { source_volume_id: string; name: string; parameters: StringMap }) => this.createSnapshot(r),
      DeleteSnapshot: (r: { snapshot_id: string }) => this.deleteSnapshot(r),
      ListSnapshots: (r: ListSnapshotsRequest) => this.listSnapshots(r),
      ControllerExpandVolume: (r: Parameters<CsiController['controllerExpandVolume']>[0]) => this.controllerExpandVolume(r),
    } as Handlers;
  }
}
