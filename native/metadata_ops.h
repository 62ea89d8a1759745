// Image metadata (rbd image-meta): the conf_rbd_qos_* keys live here too.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "baton.h"

namespace volplugin {

class GetMetadataBaton : public ImageBaton {
 public:
  using ImageBaton::ImageBaton;
  const char* Name() const override { return "rbd_metadata_list"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

class SetMetadataBaton : public ImageBaton {
 public:
  // remove=true: rbd_metadata_remove(key); else rbd_metadata_set(key, value).
  SetMetadataBaton(std::string pool, std::string image, std::string key, std::string value, bool remove)
      : ImageBaton(std::move(pool), std::move(image)), key_(std::move(key)), value_(std::move(value)), remove_(remove) {}
  const char* Name() const override { return remove_ ? "rbd_metadata_remove" : "rbd_metadata_set"; }
  void Run(ClusterCore& core) override;

 private:
  std::string key_, value_;
  bool remove_;
};

}  // namespace volplugin
