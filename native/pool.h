// The addon's own worker threads: every librbd/librados call of a Cluster runs on them, never on
// libuv's pool (which Node also uses for files, DNS and crypto, 4 threads unless UV_THREADPOOL_SIZE
// says otherwise).
//
// Why a pool of its own, and why so many threads: a snapshot create or remove waits for a monitor
// commit. With Ceph's default `paxos propose interval` (1 s) each such call takes about 1 s however
// little it computes, and the monitor commits whatever is in flight together, so throughput is the
// number of calls in flight divided by that second (the C program: 15, 67 and 125 creates/s with
// 16, 64 and 256 threads). A thread that waits costs no CPU and, being mostly untouched stack, a few
// tens of KiB of memory; librados itself runs dozens per connection. So the default is generous
// (kDefaultMaxThreads = 256, the most in flight the benchmarks measure), the threads start only when
// calls are queued and no thread is idle, and an idle thread ends after kIdleTimeout: a process that
// makes one call at a time keeps one thread. Threads wake (or start) each other as a burst of calls
// comes in, so that queueing a call costs the JS thread no system call in the common case.
//
// Plain C++ (no Node-API): tasks are closures; what they do with their results is theirs to arrange
// (cluster.cc posts them to the JS thread through a JsChannel).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace volplugin {

class WorkPool {
 public:
  static constexpr unsigned kDefaultMaxThreads = 256;
  static constexpr unsigned kMaxThreadsLimit = 4096;
  static constexpr std::chrono::seconds kIdleTimeout{60};

  struct Stats {
    unsigned threads;     // started and not yet ended
    unsigned busy;        // running a task
    unsigned queued;      // waiting for a thread
    unsigned maxThreads;  // the limit
  };

  explicit WorkPool(unsigned maxThreads);
  // Stop(0): idle threads end, a thread still inside a task ends when that task returns.
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues `task`, starting a thread when none is idle and the limit allows. Returns false (and
  // drops the task) when stopped, or when no thread runs and none could be started.
  bool Submit(std::function<void()> task);

  // Refuses further tasks, drops queued ones (without running them), lets idle threads end, and
  // waits at most `wait` for threads still inside a task. True when every thread has ended.
  // Threads are detached and share the pool's state, so giving up is safe: a straggler ends on
  // its own when its task returns.
  bool Stop(std::chrono::milliseconds wait);

  Stats stats() const;

 private:
  struct State;
  static void Loop(std::shared_ptr<State> state);
  // Carries out State::NextWake()'s answer outside the mutex; false when no thread runs and
  // none could be started.
  static bool Wake(const std::shared_ptr<State>& state, int wake);
  std::shared_ptr<State> state_;
};

}  // namespace volplugin
