// What every benchmark module gets: the cluster, the backends, the run's unique name prefix and
// how many rounds and operations to do (smaller with --quick).

import type { Storage } from '../../src/storage/types.js';
import type { NodeBackend } from './backends.js';
import type { Cluster } from './cluster.js';

export interface Sizes {
  warmup: number;
  rounds: number;
  /** Operations per worker per phase. */
  count: number;
}

export interface BenchContext {
  cluster: Cluster;
  /** The Node backends that could be opened (a missing addon leaves only the CLI, and says so). */
  backends: NodeBackend[];
  storage: Partial<Record<NodeBackend, Storage>>;
  /** Every image and snapshot this run makes starts with it: `bench-<run id>-`. */
  prefix: string;
  quick: boolean;
  /** Leave services this run started running afterwards (--keep). */
  keep: boolean;
}

/** The full size, or a small one for --quick (development runs). */
export function sizes(ctx: BenchContext, full: Sizes, quick: Sizes): Sizes {
  return ctx.quick ? quick : full;
}
