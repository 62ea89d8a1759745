#include "errors.h"

namespace volplugin {

void AddonData::Track(const std::shared_ptr<ClusterCore>& core) {
  std::vector<std::weak_ptr<ClusterCore>> live;
  for (auto& weak : cores) {
    if (!weak.expired()) live.push_back(weak);
  }
  live.push_back(core);
  cores.swap(live);
}

Napi::Value MakeRbdError(Napi::Env env, const OpError& error) {
  Napi::Object fields = Napi::Object::New(env);
  fields.Set("errno", Napi::Number::New(env, error.code));
  fields.Set("op", Napi::String::New(env, error.op));
  if (!error.pool.empty()) fields.Set("pool", Napi::String::New(env, error.pool));
  if (!error.image.empty()) fields.Set("image", Napi::String::New(env, error.image));
  if (!error.snapshot.empty()) fields.Set("snapshot", Napi::String::New(env, error.snapshot));
  fields.Set("detail", Napi::String::New(env, error.detail.empty() ? ErrnoText(error.code) : error.detail));

  AddonData* data = env.GetInstanceData<AddonData>();
  if (data != nullptr && !data->errorClass.IsEmpty()) {
    return data->errorClass.New({fields});
  }
  Napi::Error plain = Napi::Error::New(env, error.op + ": " + error.detail);
  plain.Set("errno", fields.Get("errno"));
  plain.Set("op", fields.Get("op"));
  return plain.Value();
}

}  // namespace volplugin
