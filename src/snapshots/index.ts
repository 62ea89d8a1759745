// Snapshots: naming, schedule, pruning and the operations on a Storage + StateStore that the
// master (on demand) and volsupervisor (on schedule) share.
export * from './clock.js';
export * from './errors.js';
export * from './names.js';
export * from './schedule.js';
export * from './prune.js';
export * from './service.js';
export * from './copy-record.js';
export * from './retention.js';
