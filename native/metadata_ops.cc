#include "metadata_ops.h"

#include <cstring>

namespace volplugin {

void GetMetadataBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, true)) return;
  std::vector<char> keys, values;
  size_t keysLen = 0, valuesLen = 0;
  for (int attempt = 0; attempt < 16; ++attempt) {
    keys.resize(keysLen);
    values.resize(valuesLen);
    // rbd_metadata_list: from the start (""), no limit (0); -ERANGE sets both lengths.
    int r = rbd_metadata_list(image.get(), "", 0, keys.empty() ? nullptr : keys.data(), &keysLen,
                              values.empty() ? nullptr : values.data(), &valuesLen);
    if (r == -ERANGE) continue;
    if (!Check(r, "rbd_metadata_list")) return;
    size_t k = 0, v = 0;
    while (k < keysLen && k < keys.size() && v <= valuesLen && v <= values.size()) {
      size_t kn = strnlen(keys.data() + k, keysLen - k);
      if (kn == 0) break;
      size_t vn = v < values.size() ? strnlen(values.data() + v, valuesLen - v) : 0;
      pairs_.emplace_back(std::string(keys.data() + k, kn), v < values.size() ? std::string(values.data() + v, vn) : "");
      k += kn + 1;
      v += vn + 1;
    }
    CloseHere(image);
    return;
  }
  Fail(-ERANGE, "rbd_metadata_list", "the metadata kept changing while it was listed");
}

Napi::Value GetMetadataBaton::Result(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  for (const auto& [key, value] : pairs_) out.Set(key, value);
  return out;
}

void SetMetadataBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, false)) return;
  // rbd_metadata_set: conf_* keys are checked against librbd's options (EINVAL);
  // rbd_metadata_remove: ENOENT for a missing key.
  int r = remove_ ? rbd_metadata_remove(image.get(), key_.c_str())
                  : rbd_metadata_set(image.get(), key_.c_str(), value_.c_str());
  if (!Check(r, Name())) return;
  CloseHere(image);
}

}  // namespace volplugin
