// Cluster-level calls: monitor commands (blocklist, mon dump) and the fsid.
#pragma once

#include <string>

#include "baton.h"

namespace volplugin {

class MonCommandBaton : public Baton {
 public:
  explicit MonCommandBaton(std::string command) : command_(std::move(command)) {}
  const char* Name() const override { return "rados_mon_command"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  std::string command_;
  std::string out_, status_;
};

class FsidBaton : public Baton {
 public:
  const char* Name() const override { return "rados_cluster_fsid"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override { return Napi::String::New(env, fsid_); }

 private:
  std::string fsid_;
};

}  // namespace volplugin
