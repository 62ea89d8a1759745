// The volmaster API as both sides see it: wire schemas, the error catalogue and ApiClient.
export * from './errors.js';
export * from './schemas.js';
export * from './backups.js';
export * from './client.js';
export * from './version.js';
