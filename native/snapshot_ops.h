// Snapshot operations: create, list, remove, rollback, protect, unprotect; clone and children.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "baton.h"

namespace volplugin {

// create / remove / rollback / protect / unprotect: open the image read-write, one call.
class SnapshotBaton : public ImageBaton {
 public:
  enum class Action { Create, Remove, Rollback, Protect, Unprotect };
  SnapshotBaton(Action action, std::string pool, std::string image, std::string snapshot)
      : ImageBaton(std::move(pool), std::move(image), std::move(snapshot)), action_(action) {}
  const char* Name() const override;
  void Run(ClusterCore& core) override;

 private:
  Action action_;
};

class ListSnapshotsBaton : public ImageBaton {
 public:
  using ImageBaton::ImageBaton;
  const char* Name() const override { return "rbd_snap_list"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  struct Snap {
    uint64_t id;
    uint64_t size;
    std::string name;
    bool isProtected;
    bool hasTime;
    int64_t seconds;
  };
  std::vector<Snap> snaps_;
};

class CloneBaton : public ImageBaton {
 public:
  // features/order < 0: inherit the parent's.
  CloneBaton(std::string parentPool, std::string parentImage, std::string parentSnapshot, std::string pool,
             std::string name, int64_t features, int order, std::string dataPool)
      : ImageBaton(std::move(pool), std::move(name)),
        parentPool_(std::move(parentPool)),
        parentImage_(std::move(parentImage)),
        parentSnapshot_(std::move(parentSnapshot)),
        features_(features),
        order_(order),
        dataPool_(std::move(dataPool)) {}
  const char* Name() const override { return "rbd_clone3"; }
  void Run(ClusterCore& core) override;

 private:
  bool FailParent(int r, const char* op);
  std::string parentPool_, parentImage_, parentSnapshot_;
  int64_t features_;
  int order_;
  std::string dataPool_;
};

class ListChildrenBaton : public ImageBaton {
 public:
  using ImageBaton::ImageBaton;
  const char* Name() const override { return "rbd_list_children3"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  std::vector<std::string> children_;
};

}  // namespace volplugin
