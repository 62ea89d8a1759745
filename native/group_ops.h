// RBD groups (librbd's consistency groups): a group holds images, possibly from several pools, and
// a group snapshot is one crash-consistent snapshot of all of them, taken with their I/O quiesced
// together. On each member image it appears as a snapshot in the group namespace (`rbd snap ls
// --all`), which rbd_snap_list (and so listSnapshots) does not show.
//
// For these batons the error's `image` names the group (its `pool` the group's pool); adding or
// removing a member names the member in the detail.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "baton.h"

namespace volplugin {

// create / remove a group, create / remove / roll back a group snapshot: one call each.
class GroupBaton : public ImageBaton {
 public:
  enum class Action { Create, Remove, SnapCreate, SnapRemove, SnapRollback };
  GroupBaton(Action action, std::string pool, std::string group, std::string snapshot = std::string())
      : ImageBaton(std::move(pool), std::move(group), std::move(snapshot)), action_(action) {}
  const char* Name() const override;
  void Run(ClusterCore& core) override;

 private:
  Action action_;
};

// An image's snapshots in the group namespace (its part of each group snapshot), by id: the id is
// what reads and copies of one member's instant open (rbd_snap_set_by_id), since the member's
// snapshot name is librbd's own (".group.<ids>") and rbd_snap_set looks in the user namespace only.
class ListMemberSnapshotsBaton : public ImageBaton {
 public:
  ListMemberSnapshotsBaton(std::string pool, std::string image) : ImageBaton(std::move(pool), std::move(image)) {}
  const char* Name() const override { return "rbd_snap_list"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  struct Snap {
    uint64_t id, size;
    int64_t seconds;  // 0: no timestamp
    std::string groupPool, group, groupSnapshot;
  };
  std::vector<Snap> snaps_;
};

// A full copy of an image at one of its snapshots, chosen by id (any namespace, a group member's
// snapshot too) into a new image: rbd_open_read_only, rbd_snap_set_by_id, rbd_copy_with_progress4.
// The error names the new image, or the source (its pool/image, detail "snapshot id N") when the
// source or its snapshot is missing.
class CopySnapshotBaton : public ImageBaton {
 public:
  // features/order < 0: librbd's defaults for a new image.
  CopySnapshotBaton(std::string sourcePool, std::string sourceImage, uint64_t snapId, std::string pool, std::string name,
                    int64_t features, int order, std::string dataPool)
      : ImageBaton(std::move(pool), std::move(name)),
        sourcePool_(std::move(sourcePool)),
        sourceImage_(std::move(sourceImage)),
        snapId_(snapId),
        features_(features),
        order_(order),
        dataPool_(std::move(dataPool)) {}
  const char* Name() const override { return "rbd_copy_with_progress4"; }
  void Run(ClusterCore& core) override;

 private:
  bool FailSource(int r, const char* op);
  std::string sourcePool_, sourceImage_;
  uint64_t snapId_;
  int64_t features_;
  int order_;
  std::string dataPool_;
};

class ListGroupsBaton : public ImageBaton {
 public:
  explicit ListGroupsBaton(std::string pool) : ImageBaton(std::move(pool), std::string()) {}
  const char* Name() const override { return "rbd_group_list"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  std::vector<std::string> names_;
};

// rbd_group_image_add / rbd_group_image_remove.
class GroupImageBaton : public ImageBaton {
 public:
  GroupImageBaton(bool add, std::string groupPool, std::string group, std::string imagePool, std::string image)
      : ImageBaton(std::move(groupPool), std::move(group)), add_(add), imagePool_(std::move(imagePool)), memberImage_(std::move(image)) {}
  const char* Name() const override { return add_ ? "rbd_group_image_add" : "rbd_group_image_remove"; }
  void Run(ClusterCore& core) override;

 private:
  bool add_;
  std::string imagePool_, memberImage_;
};

class ListGroupImagesBaton : public ImageBaton {
 public:
  ListGroupImagesBaton(std::string pool, std::string group) : ImageBaton(std::move(pool), std::move(group)) {}
  const char* Name() const override { return "rbd_group_image_list"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  struct Member {
    std::string pool, image;
    bool attached;
  };
  std::vector<Member> members_;
};

class ListGroupSnapshotsBaton : public ImageBaton {
 public:
  ListGroupSnapshotsBaton(std::string pool, std::string group) : ImageBaton(std::move(pool), std::move(group)) {}
  const char* Name() const override { return "rbd_group_snap_list"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  struct Snap {
    std::string name;
    bool complete;
  };
  std::vector<Snap> snaps_;
};

}  // namespace volplugin
