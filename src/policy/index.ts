// Tenant policies and volume options: parsing, validation, units, names and merging. Pure
// functions only; no I/O. Every error is a PolicyError with a stable code and the field it names.
export * from './types.js';
export * from './errors.js';
export * from './json.js';
export * from './units.js';
export * from './names.js';
export * from './validate.js';
export * from './options.js';
export * from './filesystem.js';
