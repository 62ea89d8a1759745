// Snapshot operations raise ApiError with codes of the API's error catalogue (src/api/errors.ts),
// always before anything changed, so that the master answers them as they are and volcli prints
// them.

import { ApiError } from '../api/errors.js';

export { ApiError };
