// Per-environment addon state and the one place a C error becomes a JS RbdError.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "core.h"

namespace volplugin {

struct AddonData {
  // The RbdError class handed in by init() (src/storage/errors.ts).
  Napi::FunctionReference errorClass;
  Napi::FunctionReference clusterClass;
  // Every connection made in this environment, shut down by the environment's cleanup hook.
  std::vector<std::weak_ptr<ClusterCore>> cores;

  void Track(const std::shared_ptr<ClusterCore>& core);
};

// new RbdError({ errno, op, pool, image, snapshot, detail }) — or a plain Error with those fields
// when init() was never called.
Napi::Value MakeRbdError(Napi::Env env, const OpError& error);

}  // namespace volplugin
