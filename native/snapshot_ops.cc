#include "snapshot_ops.h"

#include <ctime>

#include "image_ops.h"

namespace volplugin {

namespace {
constexpr int kMaxListAttempts = 16;
}

const char* SnapshotBaton::Name() const {
  switch (action_) {
    case Action::Create: return "rbd_snap_create";
    case Action::Remove: return "rbd_snap_remove";
    case Action::Rollback: return "rbd_snap_rollback";
    case Action::Protect: return "rbd_snap_protect";
    case Action::Unprotect: return "rbd_snap_unprotect";
  }
  return "rbd_snap";
}

void SnapshotBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, false)) return;
  const char* snap = snapshot_.c_str();
  int r = 0;
  switch (action_) {
    // rbd_snap_create: EEXIST when the name is taken.
    case Action::Create: r = rbd_snap_create(image.get(), snap); break;
    // rbd_snap_remove: EBUSY while protected.
    case Action::Remove: r = rbd_snap_remove(image.get(), snap); break;
    // rbd_snap_rollback: rewrites the head with the snapshot's data.
    case Action::Rollback: r = rbd_snap_rollback(image.get(), snap); break;
    // rbd_snap_protect: EBUSY when already protected.
    case Action::Protect: r = rbd_snap_protect(image.get(), snap); break;
    // rbd_snap_unprotect: EBUSY while clones exist, EINVAL when not protected.
    case Action::Unprotect: r = rbd_snap_unprotect(image.get(), snap); break;
  }
  if (!Check(r, Name())) return;
  CloseHere(image);
}

void ListSnapshotsBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, true)) return;
  std::vector<rbd_snap_info_t> infos;
  int max = 0;
  int count = -ERANGE;
  for (int attempt = 0; attempt < kMaxListAttempts && count == -ERANGE; ++attempt) {
    infos.resize(static_cast<size_t>(max));
    // rbd_snap_list: size first (-ERANGE sets `max`, which counts a terminating entry).
    count = rbd_snap_list(image.get(), infos.empty() ? nullptr : infos.data(), &max);
  }
  if (!Check(count, "rbd_snap_list")) return;
  for (int i = 0; i < count; ++i) {
    const rbd_snap_info_t& info = infos[static_cast<size_t>(i)];
    Snap snap{info.id, info.size, info.name ? info.name : "", false, false, 0};
    int isProtected = 0;
    // rbd_snap_is_protected: ENOENT if it was removed since the listing: skip it.
    int r = rbd_snap_is_protected(image.get(), info.name, &isProtected);
    if (r == -ENOENT) continue;
    if (r < 0) {
      rbd_snap_list_end(infos.data());
      Fail(r, "rbd_snap_is_protected");
      return;
    }
    snap.isProtected = isProtected != 0;
    struct timespec ts {};
    // rbd_snap_get_timestamp: creation time (kept since Mimic).
    if (rbd_snap_get_timestamp(image.get(), info.id, &ts) == 0 && ts.tv_sec > 0) {
      snap.hasTime = true;
      snap.seconds = static_cast<int64_t>(ts.tv_sec);
    }
    snaps_.push_back(std::move(snap));
  }
  // rbd_snap_list_end: frees the names.
  rbd_snap_list_end(infos.data());
  CloseHere(image);
}

Napi::Value ListSnapshotsBaton::Result(Napi::Env env) {
  Napi::Array out = Napi::Array::New(env, snaps_.size());
  for (size_t i = 0; i < snaps_.size(); ++i) {
    const Snap& s = snaps_[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", Napi::Number::New(env, static_cast<double>(s.id)));
    o.Set("name", s.name);
    o.Set("size", Napi::Number::New(env, static_cast<double>(s.size)));
    o.Set("protected", Napi::Boolean::New(env, s.isProtected));
    o.Set("timestamp", s.hasTime ? Napi::Value(Napi::Number::New(env, static_cast<double>(s.seconds))) : env.Null());
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

bool CloneBaton::FailParent(int r, const char* op) {
  Fail(r, op);
  error.pool = parentPool_;
  error.image = parentImage_;
  error.snapshot = parentSnapshot_;
  return false;
}

void CloneBaton::Run(ClusterCore& core) {
  rados_ioctx_t parentIo = nullptr;
  int r = core.Pool(parentPool_, &parentIo);
  if (r < 0) {
    FailParent(r, "rados_ioctx_create");
    return;
  }
  rados_ioctx_t io = nullptr;
  if (!OpenPool(core, pool_, &io)) return;
  rbd_image_options_t opts = nullptr;
  r = ChildImageOptions(features_, order_, dataPool_, &opts);
  if (r < 0) {
    Fail(r, "rbd_image_options_set_uint64");
    return;
  }
  // rbd_clone3: a copy-on-write child of parent@snapshot (protected, for clone format 1).
  r = rbd_clone3(parentIo, parentImage_.c_str(), parentSnapshot_.c_str(), io, image_.c_str(), opts);
  rbd_image_options_destroy(opts);
  // A missing or unprotected parent snapshot (ENOENT, EINVAL) is the parent's fault.
  if (r == -ENOENT || r == -EINVAL) {
    FailParent(r, "rbd_clone3");
    return;
  }
  Check(r, "rbd_clone3");
}

void ListChildrenBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, true, snapshot_.c_str())) return;
  std::vector<rbd_linked_image_spec_t> specs;
  size_t max = 0;
  for (int attempt = 0; attempt < kMaxListAttempts; ++attempt) {
    specs.resize(max);
    // rbd_list_children3: clones of the snapshot the image is open at; -ERANGE sets `max`.
    int r = rbd_list_children3(image.get(), specs.empty() ? nullptr : specs.data(), &max);
    if (r == -ERANGE) continue;
    if (!Check(r, "rbd_list_children3")) return;
    for (size_t i = 0; i < max; ++i) {
      const auto& spec = specs[i];
      if (spec.trash) continue;
      children_.push_back(std::string(spec.pool_name ? spec.pool_name : "") + "/" + (spec.image_name ? spec.image_name : ""));
    }
    // rbd_linked_image_spec_list_cleanup: frees the strings.
    rbd_linked_image_spec_list_cleanup(specs.data(), max);
    CloseHere(image);
    return;
  }
  Fail(-ERANGE, "rbd_list_children3", "the children kept changing while they were listed");
}

Napi::Value ListChildrenBaton::Result(Napi::Env env) {
  Napi::Array out = Napi::Array::New(env, children_.size());
  for (size_t i = 0; i < children_.size(); ++i) out.Set(static_cast<uint32_t>(i), children_[i]);
  return out;
}

}  // namespace volplugin
