// The master reports the package version (shared with the other binaries through src/api).
export { VERSION } from '../api/version.js';
