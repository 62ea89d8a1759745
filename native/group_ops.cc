#include "group_ops.h"

#include <cstring>

namespace volplugin {

namespace {
constexpr int kMaxListAttempts = 16;
}

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
    // rbd_group_snap_rollback: every member's head back to the group snapshot.
    case Action::SnapRollback: r = rbd_group_snap_rollback(io, group, snap); break;
  }
  Check(r, Name());
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
