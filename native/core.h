// The C++ side of one cluster connection, with no Node-API types: what the worker threads use.
//
// Ownership: ClusterCore (rados_t) -> cached pool contexts (rados_ioctx_t, one per pool name) ->
// image handles (rbd_image_t), which live only for the duration of one operation (OpenImage).
// A ClusterCore is shared (std::shared_ptr) by the JS wrapper and every queued operation, so it
// outlives whichever lets go last. `lifecycle` is held shared by each running operation and
// exclusively by connect and shutdown: shutdown therefore waits for running operations.
#pragma once

#include <rados/librados.h>
#include <rbd/librbd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

namespace volplugin {

// A failed C call: negative errno, the function, what it concerned.
struct OpError {
  int code = 0;  // negative errno; 0 = no error
  std::string op;
  std::string pool;
  std::string image;
  std::string snapshot;
  std::string detail;  // strerror(-code) unless something better is known

  bool failed() const { return code != 0; }
};

// strerror_r's text for a (negative or positive) errno.
std::string ErrnoText(int code);

struct ConnectConfig {
  std::string confPath;  // empty: librados' search (CEPH_CONF, /etc/ceph/ceph.conf, ...)
  std::string keyring;   // empty: what the configuration says
  std::string clientId;  // without "client."; empty: "admin"
  std::vector<std::pair<std::string, std::string>> options;  // rados_conf_set after the file
};

class ClusterCore {
 public:
  ClusterCore() = default;
  ~ClusterCore();
  ClusterCore(const ClusterCore&) = delete;
  ClusterCore& operator=(const ClusterCore&) = delete;

  // Held shared by each operation, exclusively by Connect and Shutdown.
  std::shared_timed_mutex lifecycle;

  // Caller holds `lifecycle` exclusively. rados_create2, rados_conf_read_file,
  // rados_conf_parse_env, rados_conf_set, rados_connect.
  bool Connect(const ConnectConfig& config, OpError* error);

  // Caller holds `lifecycle` exclusively. rados_ioctx_destroy for every cached pool, then
  // rados_shutdown. Idempotent.
  void ShutdownLocked();

  // Takes `lifecycle` itself, waiting at most `wait` for running operations (process exit and
  // garbage collection must not hang on an operation stuck in the network). Operations that have
  // not started yet no longer start (ENOTCONN). Returns false when it gave up; the handles are
  // then left to the operating system.
  bool ShutdownWithin(std::chrono::milliseconds wait);

  // Set by ShutdownWithin: queued operations fail instead of starting.
  std::atomic<bool> stopping{false};

  // Every connection of the process, shut down by an atexit(3) handler: process.exit() runs no
  // environment cleanup hooks, and librados' threads must not still be busy while exit() runs
  // libceph-common's static destructors (they use its memory pools). The handler is registered on
  // the first call, after libceph-common was loaded, so it runs before those destructors.
  static void ShutdownAtExit(const std::shared_ptr<ClusterCore>& core);

  // Caller holds `lifecycle` (shared is enough).
  bool connected() const { return cluster_ != nullptr; }
  rados_t handle() const { return cluster_; }

  // The cached context of `pool`, created on first use with rados_ioctx_create. Caller holds
  // `lifecycle` shared. Returns 0 or a negative errno.
  int Pool(const std::string& pool, rados_ioctx_t* io);

  int PoolCount();
  std::atomic<int> openImages{0};

 private:
  rados_t cluster_ = nullptr;
  std::mutex poolsMutex_;
  std::map<std::string, rados_ioctx_t> pools_;
};

// One image handle, closed when it goes out of scope; counted in ClusterCore::openImages.
class OpenImage {
 public:
  explicit OpenImage(ClusterCore& core) : core_(core) {}
  ~OpenImage() { Close(); }
  OpenImage(const OpenImage&) = delete;
  OpenImage& operator=(const OpenImage&) = delete;

  // rbd_open, or rbd_open_read_only (which registers no watch on the header: the image does not
  // show up as watched by us). `snapshot` may be null (the head).
  int Open(rados_ioctx_t io, const std::string& name, const char* snapshot, bool readOnly);
  // rbd_close. Returns its result (0 when nothing was open).
  int Close();

  rbd_image_t get() const { return image_; }

 private:
  ClusterCore& core_;
  rbd_image_t image_ = nullptr;
};

}  // namespace volplugin
