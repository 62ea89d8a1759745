// Who uses an image: watchers of its header, advisory locks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "baton.h"
#include "image_ops.h"

namespace volplugin {

class ListWatchersBaton : public ImageBaton {
 public:
  using ImageBaton::ImageBaton;
  const char* Name() const override { return "rbd_watchers_list"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  struct Watcher {
    std::string address;
    int64_t id;
    uint64_t cookie;
  };
  std::vector<Watcher> watchers_;
};

class AddLockBaton : public ImageBaton {
 public:
  AddLockBaton(std::string pool, std::string image, std::string cookie, std::string tag, bool exclusive)
      : ImageBaton(std::move(pool), std::move(image)), cookie_(std::move(cookie)), tag_(std::move(tag)), exclusive_(exclusive) {}
  const char* Name() const override { return exclusive_ ? "rbd_lock_exclusive" : "rbd_lock_shared"; }
  void Run(ClusterCore& core) override;

 private:
  std::string cookie_, tag_;
  bool exclusive_;
};

class ListLocksBaton : public ImageBaton {
 public:
  using ImageBaton::ImageBaton;
  const char* Name() const override { return "rbd_list_lockers"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  Lockers lockers_;
};

class BreakLockBaton : public ImageBaton {
 public:
  BreakLockBaton(std::string pool, std::string image, std::string owner, std::string cookie)
      : ImageBaton(std::move(pool), std::move(image)), owner_(std::move(owner)), cookie_(std::move(cookie)) {}
  const char* Name() const override { return "rbd_break_lock"; }
  void Run(ClusterCore& core) override;

 private:
  std::string owner_, cookie_;
};

}  // namespace volplugin
