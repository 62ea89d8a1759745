// The CSI service definitions (csi.proto, beside this file in src/ and in dist/) loaded for
// @grpc/grpc-js, and the shapes of the messages as this driver reads and writes them. Messages are
// decoded with the spec's field names (keepCase), 64-bit integers as decimal strings (no
// precision lost: capacities are checked as BigInt), enums as their names, absent scalars as their
// zero values and absent messages as null (so that a missing required field can be told), and the
// name of the oneof member that is set (`access_type`, `type`).

import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';

export const PROTO_FILE = fileURLToPath(new URL('./csi.proto', import.meta.url));

export const LOADER_OPTIONS: Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

export interface CsiServices {
  Identity: ServiceDefinition;
  Controller: ServiceDefinition;
  Node: ServiceDefinition;
}

let loaded: CsiServices | null = null;

/** The three services' definitions (loaded once). */
export function csiServices(): CsiServices {
  if (!loaded) {
    const pkg = loadPackageDefinition(loadSync(PROTO_FILE, LOADER_OPTIONS)) as unknown as { csi: { v1: Record<keyof CsiServices, { service: ServiceDefinition }> } };
    const v1 = pkg.csi.v1;
    loaded = { Identity: v1.Identity.service, Controller: v1.Controller.service, Node: v1.Node.service };
  }
  return loaded;
}

// ---- messages, as decoded ------------------------------------------------------------------

export type AccessModeName =
  | 'UNKNOWN'
  | 'SINGLE_NODE_WRITER'
  | 'SINGLE_NODE_READER_ONLY'
  | 'MULTI_NODE_READER_ONLY'
  | 'MULTI_NODE_SINGLE_WRITER'
  | 'MULTI_NODE_MULTI_WRITER'
  | 'SINGLE_NODE_SINGLE_WRITER'
  | 'SINGLE_NODE_MULTI_WRITER';

export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fs_type: string; mount_flags: string[]; volume_mount_group: string } | null;
  access_mode: { mode: AccessModeName | number } | null;
  /** Which of block/mount is set (oneofs). */
  access_type?: 'block' | 'mount';
}

/** int64 fields arrive as decimal strings. */
export interface CapacityRange {
  required_bytes: string;
  limit_bytes: string;
}

export interface VolumeContentSource {
  snapshot?: { snapshot_id: string } | null;
  volume?: { volume_id: string } | null;
  type?: 'snapshot' | 'volume';
}

export type StringMap = Record<string, string>;

export interface CreateVolumeRequest {
  name: string;
  capacity_range: CapacityRange | null;
  volume_capabilities: VolumeCapability[];
  parameters: StringMap;
  secrets: StringMap;
  volume_content_source: VolumeContentSource | null;
  accessibility_requirements: { requisite: unknown[]; preferred: unknown[] } | null;
  mutable_parameters: StringMap;
}

export interface Volume {
  capacity_bytes: string;
  volume_id: string;
  volume_context: StringMap;
  content_source?: { snapshot: { snapshot_id: string } } | null;
}

export interface ControllerPublishVolumeRequest {
  volume_id: string;
  node_id: string;
  volume_capability: VolumeCapability | null;
  readonly: boolean;
  volume_context: StringMap;
}

export interface ValidateVolumeCapabilitiesRequest {
  volume_id: string;
  volume_context: StringMap;
  volume_capabilities: VolumeCapability[];
  parameters: StringMap;
  mutable_parameters: StringMap;
}

export interface Snapshot {
  size_bytes: string;
  snapshot_id: string;
  source_volume_id: string;
  creation_time: { seconds: string; nanos: number } | null;
  ready_to_use: boolean;
}

export interface ListSnapshotsRequest {
  max_entries: number;
  starting_token: string;
  source_volume_id: string;
  snapshot_id: string;
}

export interface NodeStageVolumeRequest {
  volume_id: string;
  publish_context: StringMap;
  staging_target_path: string;
  volume_capability: VolumeCapability | null;
  volume_context: StringMap;
}

export interface NodePublishVolumeRequest {
  volume_id: string;
  publish_context: StringMap;
  staging_target_path: string;
  target_path: string;
  volume_capability: VolumeCapability | null;
  readonly: boolean;
  volume_context: StringMap;
}

export interface NodeExpandVolumeRequest {
  volume_id: string;
  volume_path: string;
  capacity_range: CapacityRange | null;
  staging_target_path: string;
  volume_capability: VolumeCapability | null;
}
