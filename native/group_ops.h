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
