// A baton: the plain C++ state of one operation. Run() does the blocking librbd/librados work on a
// libuv worker thread (no Node-API there); Result() builds the JS value on the JS thread once Run()
// succeeded. Errors are recorded in `error` and turned into an RbdError by the worker.
#pragma once

#include <napi.h>

#include <cerrno>
#include <string>

#include "core.h"

namespace volplugin {

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
