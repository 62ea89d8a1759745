// Volume capabilities: what a CO may ask of a volplugin volume. A volume is a filesystem (mount
// access type; raw block is not offered) used on one node at a time (the single-node access modes;
// the cross-host mount lock forbids the multi-node ones), its filesystem is the one its tenant's
// policy gave it, and a bind mount of it may carry only mount-point flags that keep nosuid and
// nodev (src/mapper/fs.ts BIND_FLAGS). The capabilities this driver reports are here too.

import { BIND_FLAGS } from '../mapper/fs.js';
import type { AccessModeName, VolumeCapability } from './proto.js';

export const SINGLE_NODE_MODES: readonly AccessModeName[] = ['SINGLE_NODE_WRITER', 'SINGLE_NODE_READER_ONLY', 'SINGLE_NODE_SINGLE_WRITER', 'SINGLE_NODE_MULTI_WRITER'];

/** Why a capability cannot be met: a required part is missing, or it asks what volplugin does not offer. */
export type CapabilityProblem = { kind: 'missing' | 'unsupported'; message: string };

/**
 * Whether `cap` (field `field` of the request) can be met by a volume with filesystem `fs` (when
 * known); null when it can.
 */
export function capabilityProblem(cap: VolumeCapability | null | undefined, field: string, fs?: string): CapabilityProblem | null {
  if (!cap) return { kind: 'missing', message: `${field} is required` };
  const mode = cap.access_mode?.mode;
  if (!cap.access_mode || mode === 'UNKNOWN' || mode === 0) return { kind: 'missing', message: `${field}.access_mode is required` };
  if (!cap.access_type) return { kind: 'missing', message: `${field} needs an access type: mount (block is not offered)` };
  if (cap.access_type === 'block') {
    return { kind: 'unsupported', message: `${field}: block access is not offered: a volplugin volume is a filesystem; ask for a mount access type` };
  }
  if (typeof mode !== 'string' || !SINGLE_NODE_MODES.includes(mode)) {
    return {
      kind: 'unsupported',
      message: `${field}: access mode ${String(mode)} is not offered: a volplugin volume is used on one node at a time (${SINGLE_NODE_MODES.join(', ')})`,
    };
  }
  const mount = cap.mount;
  if (mount?.fs_type && fs !== undefined && mount.fs_type !== fs) {
    return { kind: 'unsupported', message: `${field}: fs_type ${JSON.stringify(mount.fs_type)} asked for, but the volume's filesystem is ${fs}` };
  }
  const flag = mount?.mount_flags.find((f) => !BIND_FLAGS.includes(f));
  if (flag !== undefined) {
    return { kind: 'unsupported', message: `${field}: mount flag ${JSON.stringify(flag)} is not offered; a volume's mount may have ${BIND_FLAGS.join(', ')} (always nosuid, nodev)` };
  }
  if (mount?.volume_mount_group) return { kind: 'unsupported', message: `${field}: volume_mount_group is not offered (no VOLUME_MOUNT_GROUP capability)` };
  return null;
}

/** The access mode's name (numbers for values this build does not know). */
export function modeOf(cap: VolumeCapability): string {
  return String(cap.access_mode?.mode ?? 'UNKNOWN');
}

/** Whether the access mode lets the volume be published at several target paths of one node. */
export function allowsSeveralTargets(cap: VolumeCapability): boolean {
  return cap.access_mode?.mode === 'SINGLE_NODE_MULTI_WRITER';
}

/** Whether the access mode makes every publish read-only. */
export function readOnlyMode(cap: VolumeCapability): boolean {
  return cap.access_mode?.mode === 'SINGLE_NODE_READER_ONLY';
}

// ---- what this driver reports -----------------------------------------------------------------

export const PLUGIN_CAPABILITIES = [{ service: { type: 'CONTROLLER_SERVICE' } }, { volume_expansion: { type: 'ONLINE' } }];

export const CONTROLLER_CAPABILITIES = [
  'CREATE_DELETE_VOLUME',
  'PUBLISH_UNPUBLISH_VOLUME',
  'CREATE_DELETE_SNAPSHOT',
  'LIST_SNAPSHOTS',
  'EXPAND_VOLUME',
  'SINGLE_NODE_MULTI_WRITER',
].map((type) => ({ rpc: { type } }));

export const NODE_CAPABILITIES = ['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'EXPAND_VOLUME', 'SINGLE_NODE_MULTI_WRITER'].map((type) => ({ rpc: { type } }));
