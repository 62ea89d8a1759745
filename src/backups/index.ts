// Backups of volumes to a directory or a second Ceph cluster (docs/backups.md): the service the
// master (on demand) and volsupervisor (on schedule) share, its scheduler, restores and checks.
export * from './config.js';
export * from './manifest.js';
export * from './names.js';
export * from './restore.js';
export * from './scheduler.js';
export * from './service.js';
export * from './target.js';
export * from './verify.js';
