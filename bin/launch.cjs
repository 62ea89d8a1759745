// The daemons' bin entries are CommonJS on purpose. libuv reads UV_THREADPOOL_SIZE once, when its
// thread pool first starts, and Node's ESM loader starts it (reading module files asynchronously)
// before any ES module's code runs; a CommonJS entry is loaded synchronously, so setting the
// variable here comes first. Each native librbd call holds one pool thread until Ceph answers:
// with Ceph's default paxos interval a snapshot takes about a second, and libuv's default of 4
// threads would cap a daemon at four Ceph operations in flight (docs/performance.md measures it).
// An explicit UV_THREADPOOL_SIZE in the environment wins.
'use strict';

module.exports = function launch(role) {
  process.env.UV_THREADPOOL_SIZE ??= '16';
  import(`../dist/${role}/main.js`).catch((err) => {
    process.stderr.write(`${role}: cannot start: ${err && err.message}\nRun 'make build' (or pnpm run build) first.\n`);
    process.exit(1);
  });
};
