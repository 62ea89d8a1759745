#include "core.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace volplugin {

std::string ErrnoText(int code) {
  char buf[256];
  // GNU strerror_r: returns the text, which may or may not be `buf`.
  const char* text = strerror_r(code < 0 ? -code : code, buf, sizeof buf);
  return text ? std::string(text) : std::string("unknown error");
}

ClusterCore::~ClusterCore() {
  // Last owner gone: nothing can be running any more.
  ShutdownLocked();
}

bool ClusterCore::Connect(const ConnectConfig& config, OpError* error) {
  auto fail = [error](int r, const char* op, const std::string& detail) {
    error->code = r;
    error->op = op;
    error->detail = detail.empty() ? ErrnoText(r) : ErrnoText(r) + ": " + detail;
    return false;
  };
  if (cluster_ != nullptr) return fail(-EISCONN, "rados_connect", "already connected");

  const std::string name = "client." + (config.clientId.empty() ? std::string("admin") : config.clientId);
  rados_t cluster = nullptr;
  // rados_create2: a handle for cluster "ceph" as entity `name`.
  int r = rados_create2(&cluster, "ceph", name.c_str(), 0);
  if (r < 0) return fail(r, "rados_create2", name);

  // rados_conf_read_file: NULL searches $CEPH_CONF, /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf.
  r = rados_conf_read_file(cluster, config.confPath.empty() ? nullptr : config.confPath.c_str());
  if (r < 0) {
    rados_shutdown(cluster);
    return fail(r, "rados_conf_read_file", config.confPath.empty() ? "default search path" : config.confPath);
  }
  // rados_conf_parse_env: CEPH_ARGS, as every Ceph tool honours it.
  r = rados_conf_parse_env(cluster, nullptr);
  if (r < 0) {
    rados_shutdown(cluster);
    return fail(r, "rados_conf_parse_env", "CEPH_ARGS");
  }
  std::vector<std::pair<std::string, std::string>> options = config.options;
  if (!config.keyring.empty()) options.emplace_back("keyring", config.keyring);
  for (const auto& [key, value] : options) {
    // rados_conf_set: one option, validated against Ceph's schema.
    r = rados_conf_set(cluster, key.c_str(), value.c_str());
    if (r < 0) {
      rados_shutdown(cluster);
      return fail(r, "rados_conf_set", key + "=" + value);
    }
  }
  // rados_connect: authenticates with the monitors and fetches the maps; blocks up to
  // client_mount_timeout.
  r = rados_connect(cluster);
  if (r < 0) {
    rados_shutdown(cluster);
    return fail(r, "rados_connect", name);
  }
  cluster_ = cluster;
  return true;
}

void ClusterCore::ShutdownLocked() {
  {
    std::lock_guard<std::mutex> guard(poolsMutex_);
    // rados_ioctx_destroy: the pool contexts go before their cluster.
    for (auto& entry : pools_) rados_ioctx_destroy(entry.second);
    pools_.clear();
  }
  if (cluster_ != nullptr) {
    // rados_shutdown: closes the sessions with monitors and OSDs, joins librados' threads.
    rados_shutdown(cluster_);
    cluster_ = nullptr;
  }
}

bool ClusterCore::ShutdownWithin(std::chrono::milliseconds wait) {
  stopping.store(true);
  std::unique_lock<std::shared_timed_mutex> lock(lifecycle, std::defer_lock);
  if (!lock.try_lock_for(wait)) return false;
  ShutdownLocked();
  return true;
}

namespace {

std::mutex& ExitMutex() {
  static auto* m = new std::mutex();  // never destroyed: used by the atexit handler
  return *m;
}

std::vector<std::weak_ptr<ClusterCore>>& ExitList() {
  static auto* list = new std::vector<std::weak_ptr<ClusterCore>>();
  return *list;
}

// How long exit waits for an operation still inside librbd (as the environment cleanup hook does).
constexpr std::chrono::milliseconds kExitWait(10000);

void ShutdownAllAtExit() {
  std::vector<std::shared_ptr<ClusterCore>> live;
  {
    std::lock_guard<std::mutex> guard(ExitMutex());
    for (auto& weak : ExitList()) {
      if (auto core = weak.lock()) live.push_back(core);
    }
  }
  for (auto& core : live) core->stopping.store(true);
  for (auto& core : live) core->ShutdownWithin(kExitWait);
}

}  // namespace

void ClusterCore::ShutdownAtExit(const std::shared_ptr<ClusterCore>& core) {
  static std::once_flag once;
  // atexit(3): runs before the destructors of libraries loaded before this point.
  std::call_once(once, [] { std::atexit(ShutdownAllAtExit); });
  std::lock_guard<std::mutex> guard(ExitMutex());
  auto& list = ExitList();
  std::vector<std::weak_ptr<ClusterCore>> kept;
  for (auto& weak : list) {
    if (!weak.expired()) kept.push_back(weak);
  }
  kept.push_back(core);
  list.swap(kept);
}

int ClusterCore::Pool(const std::string& pool, rados_ioctx_t* io) {
  {
    std::lock_guard<std::mutex> guard(poolsMutex_);
    auto it = pools_.find(pool);
    if (it != pools_.end()) {
      *io = it->second;
      return 0;
    }
  }
  // rados_ioctx_create: outside the cache's lock (it may wait for an OSD map).
  rados_ioctx_t created = nullptr;
  int r = rados_ioctx_create(cluster_, pool.c_str(), &created);
  if (r < 0) return r;
  std::lock_guard<std::mutex> guard(poolsMutex_);
  auto [it, inserted] = pools_.emplace(pool, created);
  if (!inserted) rados_ioctx_destroy(created);  // another operation was quicker
  *io = it->second;
  return 0;
}

int ClusterCore::PoolCount() {
  std::lock_guard<std::mutex> guard(poolsMutex_);
  return static_cast<int>(pools_.size());
}

int OpenImage::Open(rados_ioctx_t io, const std::string& name, const char* snapshot, bool readOnly) {
  if (image_ != nullptr) return -EBUSY;
  rbd_image_t image = nullptr;
  // rbd_open_read_only / rbd_open: reads the header; a read-write open also watches it.
  int r = readOnly ? rbd_open_read_only(io, name.c_str(), &image, snapshot)
                   : rbd_open(io, name.c_str(), &image, snapshot);
  if (r < 0) return r;
  image_ = image;
  core_.openImages.fetch_add(1);
  return 0;
}

int OpenImage::Close() {
  if (image_ == nullptr) return 0;
  // rbd_close: flushes, releases an exclusive lock it took, unwatches.
  int r = rbd_close(image_);
  image_ = nullptr;
  core_.openImages.fetch_sub(1);
  return r;
}

}  // namespace volplugin
