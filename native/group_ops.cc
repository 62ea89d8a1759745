#include "group_ops.h"

#include <cstring>

#include "image_ops.h"

namespace volplugin {

namespace {
constexpr int kMaxListAttempts = 16;
// What rbd copy uses: runs of zeros this long are not written (the copy stays sparse).
constexpr size_t kSparseSize = 4096;

// librbd's progress callback: its counters (objects, or images for a group rollback) to the baton's
// Progress, which wakes the JS thread when the call has an onProgress.
int ToProgress(uint64_t done, uint64_t total, void* arg) {
  static_cast<Progress*>(arg)->Report(done, total);
  return 0;
}
}  // namespace

const char* GroupBaton::Name() const {
  switch (action_) {
    case Action::Create: return "rbd_group_create";
    case Action::Remove: return "rbd_group_remove";
    case Action::SnapCreate: return "rbd_group_snap_create";
    case Action::SnapRemove: return "rbd_group_snap_remove";
    case Action::SnapRollback: return "rbd_group_snap_rollback";
  }
  return "rbd_group";
}

void GroupBaton::Run(ClusterCore& core) {
  rados_ioctx_t io = nullptr;
  if (!OpenPool(core, pool_, &io)) return;
  const char* group = image_.c_str();
  const char* snap = snapshot_.c_str();
  int r = 0;
  switch (action_) {
    // rbd_group_create: EEXIST when the name is taken.
    case Action::Create: r = rbd_group_create(io, group); break;
    // rbd_group_remove: detaches the members and removes the group's snapshots with it.
    case Action::Remove: r = rbd_group_remove(io, group); break;
    // rbd_group_snap_create: quiesces every member's I/O, snapshots each, then lets them go: one
    // crash-consistent point for all of them (EEXIST when the name is taken).
    case Action::SnapCreate: r = rbd_group_snap_create(io, group, snap); break;
    // rbd_group_snap_remove: the member images' snapshots of it go too.
    case Action::SnapRemove: r = rbd_group_snap_remove(io, group, snap); break;
    // rbd_group_snap_rollback_with_progress: every member's head back to the group snapshot
    // (takes each member's exclusive lock; EBUSY when a member's owner will not give it up).
    case Action::SnapRollback: r = rbd_group_snap_rollback_with_progress(io, group, snap, ToProgress, &progress); break;
  }
  if (!Check(r, Name())) return;
  if (action_ == Action::SnapRollback) progress.Report(progress.total.load(), progress.total.load(), true);
}

void ListMemberSnapshotsBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, true)) return;
  std::vector<rbd_snap_info_t> infos;
  int max = 0;
  int count = -ERANGE;
  for (int attempt = 0; attempt < kMaxListAttempts && count == -ERANGE; ++attempt) {
    infos.resize(static_cast<size_t>(max));
    // rbd_snap_list: every namespace's snapshots; size first (-ERANGE sets `max`).
    count = rbd_snap_list(image.get(), infos.empty() ? nullptr : infos.data(), &max);
  }
  if (!Check(count, "rbd_snap_list")) return;
  int failed = 0;
  const char* failedOp = nullptr;
  for (int i = 0; i < count && failed == 0; ++i) {
    const rbd_snap_info_t& info = infos[static_cast<size_t>(i)];
    rbd_snap_namespace_type_t type;
    // rbd_snap_get_namespace_type: ENOENT if it was removed since the listing: skip it.
    int r = rbd_snap_get_namespace_type(image.get(), info.id, &type);
    if (r == -ENOENT) continue;
    if (r < 0) {
      failed = r;
      failedOp = "rbd_snap_get_namespace_type";
      break;
    }
    if (type != RBD_SNAP_NAMESPACE_TYPE_GROUP) continue;
    rbd_snap_group_namespace_t ns{};
    // rbd_snap_get_group_namespace: the group (pool id, name) and group snapshot it belongs to.
    r = rbd_snap_get_group_namespace(image.get(), info.id, &ns, sizeof ns);
    if (r == -ENOENT) continue;
    if (r < 0) {
      failed = r;
      failedOp = "rbd_snap_get_group_namespace";
      break;
    }
    char poolName[256] = {0};
    // rados_pool_reverse_lookup: the group's pool by id.
    int p = rados_pool_reverse_lookup(core.handle(), ns.group_pool, poolName, sizeof poolName - 1);
    Snap snap{info.id, info.size, 0, p >= 0 ? std::string(poolName) : std::to_string(ns.group_pool),
              ns.group_name ? ns.group_name : "", ns.group_snap_name ? ns.group_snap_name : ""};
    // rbd_snap_group_namespace_cleanup: frees the names.
    rbd_snap_group_namespace_cleanup(&ns, sizeof ns);
    struct timespec ts {};
    // rbd_snap_get_timestamp: creation time.
    if (rbd_snap_get_timestamp(image.get(), info.id, &ts) == 0 && ts.tv_sec > 0) snap.seconds = static_cast<int64_t>(ts.tv_sec);
    snaps_.push_back(std::move(snap));
  }
  // rbd_snap_list_end: frees the names.
  rbd_snap_list_end(infos.data());
  if (failed < 0) {
    Fail(failed, failedOp);
    return;
  }
  CloseHere(image);
}

Napi::Value ListMemberSnapshotsBaton::Result(Napi::Env env) {
  Napi::Array out = Napi::Array::New(env, snaps_.size());
  for (size_t i = 0; i < snaps_.size(); ++i) {
    const Snap& s = snaps_[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", Napi::Number::New(env, static_cast<double>(s.id)));
    o.Set("size", Napi::Number::New(env, static_cast<double>(s.size)));
    o.Set("timestamp", s.seconds > 0 ? Napi::Value(Napi::Number::New(env, static_cast<double>(s.seconds))) : env.Null());
    o.Set("groupPool", s.groupPool);
    o.Set("group", s.group);
    o.Set("groupSnapshot", s.groupSnapshot);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

bool CopySnapshotBaton::FailSource(int r, const char* op) {
  Fail(r, op, ErrnoText(r) + ": snapshot id " + std::to_string(snapId_));
  error.pool = sourcePool_;
  error.image = sourceImage_;
  return false;
}

void CopySnapshotBaton::Run(ClusterCore& core) {
  rados_ioctx_t sourceIo = nullptr;
  int r = core.Pool(sourcePool_, &sourceIo);
  if (r < 0) {
    FailSource(r, "rados_ioctx_create");
    return;
  }
  rados_ioctx_t io = nullptr;
  if (!OpenPool(core, pool_, &io)) return;
  OpenImage image(core);
  r = image.Open(sourceIo, sourceImage_, nullptr, true);
  if (r < 0) {
    FailSource(r, "rbd_open_read_only");
    return;
  }
  // rbd_snap_set_by_id: reads (and so the copy) see the image as it was at that snapshot, whatever
  // its namespace; ENOENT when there is no such snapshot.
  r = rbd_snap_set_by_id(image.get(), snapId_);
  if (r < 0) {
    FailSource(r, "rbd_snap_set_by_id");
    return;
  }
  rbd_image_options_t opts = nullptr;
  r = ChildImageOptions(features_, order_, dataPool_, &opts);
  if (r < 0) {
    Fail(r, "rbd_image_options_set_uint64");
    return;
  }
  // rbd_copy_with_progress4: creates the new image (EEXIST when the name is taken) and copies the
  // data, reporting objects copied of the source's object count. A failure midway leaves a partial
  // image behind: the caller removes it.
  r = rbd_copy_with_progress4(image.get(), io, image_.c_str(), opts, ToProgress, &progress, kSparseSize);
  rbd_image_options_destroy(opts);
  if (!Check(r, Name())) return;
  if (!CloseHere(image)) return;
  progress.Report(progress.total.load(), progress.total.load(), true);
}

void ListGroupsBaton::Run(ClusterCore& core) {
  rados_ioctx_t io = nullptr;
  if (!OpenPool(core, pool_, &io)) return;
  std::vector<char> buf;
  size_t size = 1024;
  for (int attempt = 0; attempt < kMaxListAttempts; ++attempt) {
    buf.assign(size, '\0');
    // rbd_group_list: NUL-separated names; -ERANGE with `size` set when the buffer is too small,
    // else the number of bytes used.
    int r = rbd_group_list(io, buf.data(), &size);
    if (r == -ERANGE) continue;
    if (!Check(r, "rbd_group_list")) return;
    for (size_t pos = 0, end = static_cast<size_t>(r); pos < end && pos < buf.size();) {
      size_t n = strnlen(buf.data() + pos, end - pos);
      if (n > 0) names_.emplace_back(buf.data() + pos, n);
      pos += n + 1;
    }
    return;
  }
  Fail(-ERANGE, "rbd_group_list", "the groups kept changing while they were listed");
}

Napi::Value ListGroupsBaton::Result(Napi::Env env) {
  Napi::Array out = Napi::Array::New(env, names_.size());
  for (size_t i = 0; i < names_.size(); ++i) out.Set(static_cast<uint32_t>(i), names_[i]);
  return out;
}

void GroupImageBaton::Run(ClusterCore& core) {
  rados_ioctx_t groupIo = nullptr, imageIo = nullptr;
  if (!OpenPool(core, pool_, &groupIo)) return;
  int r = core.Pool(imagePool_, &imageIo);
  if (r < 0) {
    Fail(r, "rados_ioctx_create", ErrnoText(r) + ": pool " + imagePool_);
    return;
  }
  const std::string member = imagePool_ + "/" + memberImage_;
  // rbd_group_image_add: ENOENT for a missing group or image, EEXIST when the image is in a group
  // already. rbd_group_image_remove: ENOENT when it is not in this group.
  r = add_ ? rbd_group_image_add(groupIo, image_.c_str(), imageIo, memberImage_.c_str())
           : rbd_group_image_remove(groupIo, image_.c_str(), imageIo, memberImage_.c_str());
  if (r < 0) Fail(r, Name(), ErrnoText(r) + (add_ ? ": adding " : ": removing ") + member);
}

void ListGroupImagesBaton::Run(ClusterCore& core) {
  rados_ioctx_t io = nullptr;
  if (!OpenPool(core, pool_, &io)) return;
  std::vector<rbd_group_image_info_t> infos;
  size_t count = 16;
  for (int attempt = 0; attempt < kMaxListAttempts; ++attempt) {
    infos.assign(count, rbd_group_image_info_t{});
    // rbd_group_image_list: -ERANGE with `count` set when the array is too small.
    int r = rbd_group_image_list(io, image_.c_str(), infos.data(), sizeof(rbd_group_image_info_t), &count);
    if (r == -ERANGE) continue;
    if (!Check(r, "rbd_group_image_list")) return;
    for (size_t i = 0; i < count; ++i) {
      char poolName[256] = {0};
      // rados_pool_reverse_lookup: the member's pool by id.
      int p = rados_pool_reverse_lookup(core.handle(), infos[i].pool, poolName, sizeof poolName - 1);
      members_.push_back({p >= 0 ? std::string(poolName) : std::to_string(infos[i].pool), infos[i].name ? infos[i].name : "",
                          infos[i].state == RBD_GROUP_IMAGE_STATE_ATTACHED});
    }
    // rbd_group_image_list_cleanup: frees the names.
    rbd_group_image_list_cleanup(infos.data(), sizeof(rbd_group_image_info_t), count);
    return;
  }
  Fail(-ERANGE, "rbd_group_image_list", "the members kept changing while they were listed");
}

Napi::Value ListGroupImagesBaton::Result(Napi::Env env) {
  Napi::Array out = Napi::Array::New(env, members_.size());
  for (size_t i = 0; i < members_.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("pool", members_[i].pool);
    o.Set("image", members_[i].image);
    o.Set("state", members_[i].attached ? "attached" : "incomplete");
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

void ListGroupSnapshotsBaton::Run(ClusterCore& core) {
  rados_ioctx_t io = nullptr;
  if (!OpenPool(core, pool_, &io)) return;
  std::vector<rbd_group_snap_info_t> infos;
  size_t count = 16;
  for (int attempt = 0; attempt < kMaxListAttempts; ++attempt) {
    infos.assign(count, rbd_group_snap_info_t{});
    // rbd_group_snap_list: -ERANGE with `count` set when the array is too small.
    int r = rbd_group_snap_list(io, image_.c_str(), infos.data(), sizeof(rbd_group_snap_info_t), &count);
    if (r == -ERANGE) continue;
    if (!Check(r, "rbd_group_snap_list")) return;
    for (size_t i = 0; i < count; ++i) {
      snaps_.push_back({infos[i].name ? infos[i].name : "", infos[i].state == RBD_GROUP_SNAP_STATE_COMPLETE});
    }
    // rbd_group_snap_list_cleanup: frees the names.
    rbd_group_snap_list_cleanup(infos.data(), sizeof(rbd_group_snap_info_t), count);
    return;
  }
  Fail(-ERANGE, "rbd_group_snap_list", "the snapshots kept changing while they were listed");
}

Napi::Value ListGroupSnapshotsBaton::Result(Napi::Env env) {
  Napi::Array out = Napi::Array::New(env, snaps_.size());
  for (size_t i = 0; i < snaps_.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", snaps_[i].name);
    o.Set("state", snaps_[i].complete ? "complete" : "incomplete");
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

}  // namespace volplugin
