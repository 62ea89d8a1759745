// How volplugin marks the RBD images it makes for volumes, so that any part (the master creating
// or adopting an image, a snapshot restore writing it back) reads and writes the same marks.
// The holder note on a mounted image belongs to fencing (src/fencing: HOLDER_KEY).

import type { ImageFeature } from './types.js';

/**
 * Features of the images volumes get. object-map and fast-diff let librbd remove an image by
 * deleting only the objects that were written (about 30 ms instead of 300 ms for an unused 10 GiB
 * image, docs/performance.md) and make snapshots' diffs cheap; they need exclusive-lock, and krbd
 * maps them from Linux 5.3 on.
 */
export const VOLUME_IMAGE_FEATURES: ImageFeature[] = ['layering', 'exclusive-lock', 'object-map', 'fast-diff'];

/** Image metadata key naming the volume an image was created for ("tenant/volume"). */
export const IMAGE_OWNER_KEY = 'volplugin.volume';
