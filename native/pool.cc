#include "pool.h"

#include <pthread.h>

#include <system_error>
#include <thread>

namespace volplugin {

struct WorkPool::State {
  explicit State(unsigned max) : maxThreads(max) {}

  mutable std::mutex mutex;
  std::condition_variable work;    // a task was queued, or stop
  std::condition_variable exited;  // a thread ended
  std::deque<std::function<void()>> queue;
  unsigned maxThreads;
  unsigned threads = 0;
  unsigned idle = 0;  // threads waiting on `work`
  bool stopping = false;
};

WorkPool::WorkPool(unsigned maxThreads) : state_(std::make_shared<State>(maxThreads == 0 ? 1 : maxThreads)) {}

WorkPool::~WorkPool() { Stop(std::chrono::milliseconds(0)); }

bool WorkPool::Submit(std::function<void()> task) {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mutex);
  if (s.stopping) return false;
  s.queue.push_back(std::move(task));
  // Every idle thread may already have been woken for an earlier task that it has not taken yet:
  // start one more unless the idle ones outnumber the queue.
  if (s.idle < s.queue.size() && s.threads < s.maxThreads) {
    try {
      std::thread(Loop, state_).detach();
      s.threads++;
    } catch (const std::system_error&) {
      // Out of threads (EAGAIN): the running ones will get to it; with none, give up.
      if (s.threads == 0) {
        s.queue.pop_back();
        return false;
      }
    }
  }
  s.work.notify_one();
  return true;
}

void WorkPool::Loop(std::shared_ptr<State> state) {
  // pthread_setname_np: shows as "rbd-pool" in top, perf and /proc/PID/task/*/comm.
  pthread_setname_np(pthread_self(), "rbd-pool");
  State& s = *state;
  std::unique_lock<std::mutex> lock(s.mutex);
  for (;;) {
    bool timedOut = false;
    while (s.queue.empty() && !s.stopping && !timedOut) {
      s.idle++;
      timedOut = s.work.wait_for(lock, kIdleTimeout) == std::cv_status::timeout;
      s.idle--;
    }
    if (s.queue.empty()) break;  // stopping, or idle for kIdleTimeout
    std::function<void()> task = std::move(s.queue.front());
    s.queue.pop_front();
    lock.unlock();
    task();
    task = nullptr;  // whatever it captured goes before the lock is taken again
    lock.lock();
  }
  s.threads--;
  s.exited.notify_all();
}

bool WorkPool::Stop(std::chrono::milliseconds wait) {
  State& s = *state_;
  std::deque<std::function<void()>> dropped;
  std::unique_lock<std::mutex> lock(s.mutex);
  s.stopping = true;
  dropped.swap(s.queue);
  s.work.notify_all();
  bool done = s.exited.wait_for(lock, wait, [&s] { return s.threads == 0; });
  lock.unlock();
  return done;  // `dropped` is destroyed here, outside the lock
}

WorkPool::Stats WorkPool::stats() const {
  const State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  return Stats{s.threads, s.threads - s.idle, static_cast<unsigned>(s.queue.size()), s.maxThreads};
}

}  // namespace volplugin
