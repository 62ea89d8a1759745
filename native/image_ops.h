// Image operations: create, remove, resize, rename, info, list, exists, flatten.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "baton.h"

namespace volplugin {

class CreateImageBaton : public ImageBaton {
 public:
  CreateImageBaton(std::string pool, std::string name, uint64_t size, uint64_t features, int order, std::string dataPool,
                   std::vector<std::pair<std::string, std::string>> metadata)
      : ImageBaton(std::move(pool), std::move(name)),
        size_(size),
        features_(features),
        order_(order),
        dataPool_(std::move(dataPool)),
        metadata_(std::move(metadata)) {}
  const char* Name() const override { return "rbd_create4"; }
  void Run(ClusterCore& core) override;

 private:
  // Sets metadata_ on the new image with two OSD operations (image_ops.cc says how and why).
  bool SetMetadata(ClusterCore& core, rados_ioctx_t io);

  uint64_t size_;
  uint64_t features_;
  int order_;
  std::string dataPool_;
  std::vector<std::pair<std::string, std::string>> metadata_;
};

class RemoveImageBaton : public ImageBaton {
 public:
  using ImageBaton::ImageBaton;
  const char* Name() const override { return "rbd_remove"; }
  void Run(ClusterCore& core) override;
};

class ResizeImageBaton : public ImageBaton {
 public:
  ResizeImageBaton(std::string pool, std::string name, uint64_t size, bool allowShrink)
      : ImageBaton(std::move(pool), std::move(name)), size_(size), allowShrink_(allowShrink) {}
  const char* Name() const override { return "rbd_resize2"; }
  void Run(ClusterCore& core) override;

 private:
  uint64_t size_;
  bool allowShrink_;
};

class RenameImageBaton : public ImageBaton {
 public:
  RenameImageBaton(std::string pool, std::string from, std::string to)
      : ImageBaton(std::move(pool), std::move(from)), to_(std::move(to)) {}
  const char* Name() const override { return "rbd_rename"; }
  void Run(ClusterCore& core) override;

 private:
  std::string to_;
};

class ImageInfoBaton : public ImageBaton {
 public:
  using ImageBaton::ImageBaton;
  const char* Name() const override { return "rbd_open_read_only"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  rbd_image_info_t info_{};
  uint64_t features_ = 0;
  bool hasParent_ = false;
  std::string parentPool_, parentImage_, parentSnapshot_;
  int snapshotCount_ = 0;
  std::string groupPool_, group_;
};

class ListImagesBaton : public ImageBaton {
 public:
  explicit ListImagesBaton(std::string pool) : ImageBaton(std::move(pool), std::string()) {}
  const char* Name() const override { return "rbd_list2"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  std::vector<std::string> names_;
};

class ImageExistsBaton : public ImageBaton {
 public:
  using ImageBaton::ImageBaton;
  const char* Name() const override { return "rbd_open_read_only"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override { return Napi::Boolean::New(env, exists_); }

 private:
  bool exists_ = false;
};

class FlattenImageBaton : public ImageBaton {
 public:
  using ImageBaton::ImageBaton;
  const char* Name() const override { return "rbd_flatten"; }
  void Run(ClusterCore& core) override;
};

// Sets RBD_IMAGE_OPTION_ORDER with a matching stripe unit (and a stripe count of 1).
int SetOrder(rbd_image_options_t opts, int order);

// Options of an image made from another (a clone, a copy): features/order < 0 and an empty data
// pool leave librbd's choice. On failure (a negative errno) nothing is left to destroy.
int ChildImageOptions(int64_t features, int order, const std::string& dataPool, rbd_image_options_t* out);

// Counts the image's user snapshots (rbd_snap_list, size first). Returns a negative errno or the count.
int CountSnapshots(rbd_image_t image);

// Lockers of the image from rbd_list_lockers, size first, retrying on ERANGE.
struct Lockers {
  bool exclusive = false;
  std::string tag;
  struct Locker {
    std::string owner, cookie, address;
  };
  std::vector<Locker> lockers;
};
int ListLockers(rbd_image_t image, Lockers* out);

}  // namespace volplugin
