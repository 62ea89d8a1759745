// Module entry: exports Cluster, init(RbdError), writeFile, versions; registers the environment
// cleanup hook that shuts down every connection still open when the process (or worker) exits.
#include <napi.h>

#include <cstdio>

#include "cluster.h"
#include "errors.h"
#include "file_ops.h"

namespace volplugin {

namespace {

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    throw Napi::TypeError::New(env, "init(errorClass: Function)");
  }
  AddonData* data = env.GetInstanceData<AddonData>();
  data->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

Napi::Value Versions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int major = 0, minor = 0, extra = 0;
  // rados_version / rbd_version: the library versions loaded at run time.
  rados_version(&major, &minor, &extra);
  std::string rados = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(extra);
  rbd_version(&major, &minor, &extra);
  std::string rbd = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(extra);
  Napi::Object out = Napi::Object::New(env);
  out.Set("rados", rados);
  out.Set("rbd", rbd);
  return out;
}

// napi_add_env_cleanup_hook: runs before the environment's objects are finalized.
void CleanupHook(void* arg) {
  auto* data = static_cast<AddonData*>(arg);
  for (auto& weak : data->cores) {
    if (auto core = weak.lock()) core->ShutdownWithin(std::chrono::milliseconds(10000));
  }
}

}  // namespace

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  napi_add_env_cleanup_hook(env, CleanupHook, data);
  Napi::Function cluster = ClusterWrap::Define(env);
  data->clusterClass = Napi::Persistent(cluster);
  exports.Set("Cluster", cluster);
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("writeFile", Napi::Function::New(env, WriteFile, "writeFile"));
  exports.Set("versions", Napi::Function::New(env, Versions, "versions"));
  return exports;
}

}  // namespace volplugin

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return volplugin::Module(env, exports); }

NODE_API_MODULE(volplugin_rbd, InitModule)
