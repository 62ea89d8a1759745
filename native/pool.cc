#include "pool.h"

#include <pthread.h>

#include <system_error>
#include <thread>

namespace volplugin {

struct WorkPool::State {
  explicit State(unsigned max) : maxThreads(max) {}

  // What a caller must do once it has let go of the mutex: wake an idle thread, or start one.
  enum class Wake { None, Notify, Start };

  // Under the mutex. The JS thread (`fromPool` false) wakes a thread only when none is on its way
  // (signalled or started, not yet at the queue); a thread that has just taken a task wakes
  // two more while more tasks wait than threads are on their way. So a burst of calls costs the JS
  // thread one wake-up at most, instead of a futex call and a preemption by the woken thread per
  // call, and the threads wake each other in a tree: 256 are running after about 8 generations.
  Wake NextWake(bool fromPool) {
    if (stopping || queue.size() <= waking || (!fromPool && waking > 0)) return Wake::None;
    if (idle > waking) {
      waking++;
      return Wake::Notify;
    }
    if (threads < maxThreads) {
      waking++;
      threads++;
      return Wake::Start;
    }
    return Wake::None;
  }

  // Under the mutex: a thread has arrived (started, or back from waiting).
  void Arrived() {
    if (waking > 0) waking--;
  }

  mutable std::mutex mutex;
  std::condition_variable work;    // a task was queued, or stop
  std::condition_variable exited;  // a thread ended
  std::deque<std::function<void()>> queue;
  unsigned maxThreads;
  unsigned threads = 0;
  unsigned idle = 0;    // threads waiting on `work`
  unsigned waking = 0;  // threads on their way to the queue
  bool stopping = false;
};

WorkPool::WorkPool(unsigned maxThreads) : state_(std::make_shared<State>(maxThreads == 0 ? 1 : maxThreads)) {}

WorkPool::~WorkPool() { Stop(std::chrono::milliseconds(0)); }

// Outside the mutex: notify_one, or start a thread (undoing the reservation if that fails).
bool WorkPool::Wake(const std::shared_ptr<State>& state, int wake) {
  State& s = *state;
  if (static_cast<State::Wake>(wake) == State::Wake::Notify) {
    s.work.notify_one();
    return true;
  }
  if (static_cast<State::Wake>(wake) != State::Wake::Start) return true;
  try {
    std::thread(Loop, state).detach();
    return true;
  } catch (const std::system_error&) {
    // Out of threads (EAGAIN): the running ones will get to the queue.
    std::lock_guard<std::mutex> lock(s.mutex);
    s.threads--;
    s.Arrived();
    s.exited.notify_all();
    return s.threads > 0;
  }
}

bool WorkPool::Submit(std::function<void()> task) {
  State& s = *state_;
  State::Wake wake;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.stopping) return false;
    s.queue.push_back(std::move(task));
    wake = s.NextWake(false);
  }
  if (Wake(state_, static_cast<int>(wake))) return true;
  // No thread runs and none could be started: take the task back (only this thread submits).
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.threads == 0 && !s.queue.empty()) {
    s.queue.pop_back();
    return false;
  }
  return true;
}

void WorkPool::Loop(std::shared_ptr<State> state) {
  // pthread_setname_np: shows as "rbd-pool" in top, perf and /proc/PID/task/*/comm.
  pthread_setname_np(pthread_self(), "rbd-pool");
  State& s = *state;
  std::unique_lock<std::mutex> lock(s.mutex);
  s.Arrived();  // started
  for (;;) {
    bool timedOut = false;
    while (s.queue.empty() && !s.stopping && !timedOut) {
      s.idle++;
      timedOut = s.work.wait_for(lock, kIdleTimeout) == std::cv_status::timeout;
      s.idle--;
      // Back, for whatever reason: a notify that raced with the timeout reports a timeout, and
      // its slot must not stay taken (the JS thread would wake no one). At worst one more thread
      // is woken than needed.
      s.Arrived();
    }
    if (s.queue.empty()) break;  // stopping, or idle for kIdleTimeout
    std::function<void()> task = std::move(s.queue.front());
    s.queue.pop_front();
    // More queued: two more threads (a tree, not a chain).
    State::Wake first = s.NextWake(true);
    State::Wake second = s.NextWake(true);
    lock.unlock();
    Wake(state, static_cast<int>(first));
    Wake(state, static_cast<int>(second));
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
