// A baton: the plain C++ state of one operation. Run() does the blocking librbd/librados work on one
// of the Cluster's threads (pool.h; no Node-API there); Result() builds the JS value on the JS
// thread once Run() succeeded. Errors are recorded in `error` and turned into an RbdError on the JS
// thread (cluster.cc, Job::Deliver). A long operation reports progress through `progress`.
#pragma once

#include <napi.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "core.h"

namespace volplugin {

// Bytes (or whatever unit the operation names) done out of a total, written by Run() and read on
// the JS thread by the operation's onProgress callback. Report() wakes the JS thread at most every
// kInterval, and never while an earlier report is still on its way (the callback always reads the
// latest counters, so nothing is lost by skipping).
struct Progress {
  static constexpr std::chrono::milliseconds kInterval{100};

  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> total{0};
  std::atomic<bool> queued{false};     // a report is on its way to the JS thread
  std::atomic<bool> cancelled{false};  // the callback returned false
  std::function<void()> notify;        // set by the worker when there is a callback
  std::chrono::steady_clock::time_point last{};

  // On the baton's thread. `force`: report even within kInterval (the last report).
  void Report(uint64_t doneNow, uint64_t totalNow, bool force = false) {
    done.store(doneNow);
    total.store(totalNow);
    if (!notify) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last < kInterval) return;
    if (queued.exchange(true)) return;
    last = now;
    notify();
  }
};

class Baton {
 public:
  enum class Kind { Operation, Connect, Close };

  virtual ~Baton() = default;

  // The C function an operation starts with: named in its error if the cluster is closed.
  virtual const char* Name() const = 0;
  virtual Kind kind() const { return Kind::Operation; }
  // Off the JS thread; the worker holds ClusterCore::lifecycle (shared for operations).
  virtual void Run(ClusterCore& core) = 0;
  // On the JS thread, only when Run() recorded no error.
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }

  OpError error;
  Progress progress;
};

// An operation on one image (or pool): knows what it concerns, so failures carry it.
class ImageBaton : public Baton {
 public:
  ImageBaton(std::string pool, std::string image, std::string snapshot = std::string())
      : pool_(std::move(pool)), image_(std::move(image)), snapshot_(std::move(snapshot)) {}

 protected:
  // Records `r` (negative errno) from C function `op`; returns false for `if (!Check(...))`.
  bool Fail(int r, const char* op, const std::string& detail = std::string()) {
    error.code = r < 0 ? r : -EIO;
    error.op = op;
    error.pool = pool_;
    error.image = image_;
    error.snapshot = snapshot_;
    error.detail = detail.empty() ? ErrnoText(error.code) : detail;
    return false;
  }
  bool Check(int r, const char* op) { return r >= 0 ? true : Fail(r, op); }

  // The pool's cached context (rados_ioctx_create on first use).
  bool OpenPool(ClusterCore& core, const std::string& pool, rados_ioctx_t* io) {
    return Check(core.Pool(pool, io), "rados_ioctx_create");
  }
  // Opens this baton's image in this baton's pool (at `snapshot` when given).
  bool OpenHere(ClusterCore& core, OpenImage& image, bool readOnly, const char* snapshot = nullptr) {
    rados_ioctx_t io = nullptr;
    if (!OpenPool(core, pool_, &io)) return false;
    return Check(image.Open(io, image_, snapshot, readOnly), readOnly ? "rbd_open_read_only" : "rbd_open");
  }
  // Closes the image and reports rbd_close's failure if nothing failed before it.
  bool CloseHere(OpenImage& image) {
    int r = image.Close();
    if (r < 0 && !error.failed()) return Fail(r, "rbd_close");
    return !error.failed();
  }

  std::string pool_;
  std::string image_;
  std::string snapshot_;
};

}  // namespace volplugin
