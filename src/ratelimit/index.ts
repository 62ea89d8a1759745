// Rate limits, in one place: the limits as values and their librbd QoS form (limits.ts), the blkio
// and io.max lines the kernel takes (blkio.ts), which cgroup a container's limits go into
// (cgroups.ts), and the RateLimiter that applies a mounted volume's limits (limiter.ts).
export * from './limits.js';
export * from './blkio.js';
export * from './cgroups.js';
export * from './limiter.js';
