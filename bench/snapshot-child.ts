// One round of the snapshot benchmark with the native backend in a process of its own, so that it
// can run with another libuv thread pool size than the bench itself (UV_THREADPOOL_SIZE is read
// once, when the pool starts, which in an ES module entry point is before any of its code runs).
//
//   UV_THREADPOOL_SIZE=16 node --import tsx bench/snapshot-child.ts '{"confPath":..,"pool":..,
//     "images":[..],"count":4,"prefix":"bench-x-"}'
// prints {"phases":[{"op":"snap_create","latMs":[..],"wallMs":..},{"op":"snap_remove",..}],
//         "threads":N,"maxPending":N}

import { readdirSync } from 'node:fs';
import { openStorage } from '../src/storage/index.js';
import { runPhase } from './lib/harness.js';

interface ChildArgs {
  confPath: string;
  pool: string;
  images: string[];
  count: number;
  prefix: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as ChildArgs;
const storage = await openStorage('native', { confPath: args.confPath, clientId: 'admin' });
let maxPending = 0;
let threads = 0;
const sampler = setInterval(() => {
  maxPending = Math.max(maxPending, storage.stats().pending);
  threads = Math.max(threads, readdirSync('/proc/self/task').length);
}, 5);
try {
  const n = args.images.length;
  const snap = (w: number, i: number) => `${args.prefix}${w}-${i}`;
  const create = await runPhase('snap_create', n, args.count, (w, i) => storage.createSnapshot(args.pool, args.images[w]!, snap(w, i)));
  const remove = await runPhase('snap_remove', n, args.count, (w, i) => storage.removeSnapshot(args.pool, args.images[w]!, snap(w, i)));
  process.stdout.write(`${JSON.stringify({ phases: [create, remove], threads, maxPending })}\n`);
} finally {
  clearInterval(sampler);
  await storage.close();
}
