// Imported first by every daemon's main, for its side effect, before anything can touch libuv's
// thread pool (whose size is read once, at its first use).
//
// Each native librbd call occupies one pool thread until Ceph answers. With Ceph's default paxos
// interval a snapshot takes about a second, so libuv's default of 4 threads would cap a daemon at
// four Ceph operations in flight and make Node's own file and DNS work wait behind them. 16 matches
// the concurrency the benchmarks measure; an explicit UV_THREADPOOL_SIZE from the environment wins.
process.env.UV_THREADPOOL_SIZE ??= '16';
export {};
