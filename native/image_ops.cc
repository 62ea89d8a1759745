#include "image_ops.h"

#include <cstring>

namespace volplugin {

namespace {

// librbd's progress callback (librbd_progress_fn_t): hands librbd's counters (objects done of the
// total) to the baton's Progress, which wakes the JS thread when the call has an onProgress. The
// callback may not be null; without a JS listener Report() only stores the counters.
int ToProgress(uint64_t done, uint64_t total, void* arg) {
  static_cast<Progress*>(arg)->Report(done, total);
  return 0;
}

// Splits `count` NUL-terminated strings out of `buf` (at most `len` bytes).
std::vector<std::string> SplitNul(const std::vector<char>& buf, size_t len, size_t count) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (out.size() < count && pos < len && pos < buf.size()) {
    const char* start = buf.data() + pos;
    size_t n = strnlen(start, len - pos);
    out.emplace_back(start, n);
    pos += n + 1;
  }
  return out;
}

constexpr int kMaxListAttempts = 16;

}  // namespace

int SetOrder(rbd_image_options_t opts, int order) {
  // The object size, and a stripe unit of the same size: a clone otherwise keeps its parent's
  // stripe unit, which must divide the object size.
  const uint64_t objectSize = uint64_t(1) << order;
  int r = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_ORDER, static_cast<uint64_t>(order));
  if (r >= 0) r = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_STRIPE_UNIT, objectSize);
  if (r >= 0) r = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_STRIPE_COUNT, 1);
  return r;
}

int ChildImageOptions(int64_t features, int order, const std::string& dataPool, rbd_image_options_t* out) {
  rbd_image_options_create(out);
  int r = 0;
  if (features >= 0) r = rbd_image_options_set_uint64(*out, RBD_IMAGE_OPTION_FEATURES, static_cast<uint64_t>(features));
  if (r >= 0 && order >= 0) r = SetOrder(*out, order);
  if (r >= 0 && !dataPool.empty()) r = rbd_image_options_set_string(*out, RBD_IMAGE_OPTION_DATA_POOL, dataPool.c_str());
  if (r < 0) {
    rbd_image_options_destroy(*out);
    *out = nullptr;
  }
  return r;
}

void CreateImageBaton::Run(ClusterCore& core) {
  rados_ioctx_t io = nullptr;
  if (!OpenPool(core, pool_, &io)) return;
  rbd_image_options_t opts = nullptr;
  // rbd_image_options_create / _set_uint64 / _set_string / _destroy: one options object.
  rbd_image_options_create(&opts);
  int r = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_FORMAT, 2);
  if (r >= 0) r = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_FEATURES, features_);
  if (r >= 0) r = SetOrder(opts, order_);
  if (r >= 0 && !dataPool_.empty()) r = rbd_image_options_set_string(opts, RBD_IMAGE_OPTION_DATA_POOL, dataPool_.c_str());
  if (r < 0) {
    rbd_image_options_destroy(opts);
    Fail(r, "rbd_image_options_set_uint64");
    return;
  }
  // rbd_create4: a format 2 image with those options.
  r = rbd_create4(io, image_.c_str(), size_, opts);
  rbd_image_options_destroy(opts);
  if (!Check(r, "rbd_create4") || metadata_.empty()) return;
  if (SetMetadata(core, io)) return;
  // All or nothing: an image whose metadata could not be set is removed again (rbd_remove),
  // keeping the metadata error as the one reported.
  rbd_remove(io, image_.c_str());
}

namespace {

// Ceph's encoding of a length-prefixed byte string (a std::string or a bufferlist): u32 length
// (little-endian), then the bytes.
void EncodeBytes(std::string& out, const std::string& bytes) {
  uint32_t n = static_cast<uint32_t>(bytes.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(bytes);
}

}  // namespace

// The metadata of a brand-new image, written the way librbd's rbd_metadata_set finally writes it
// (the cls_rbd method metadata_set on the image's header object) but without what rbd_metadata_set
// does around it for an image others may have open: rbd_open (reads the header, registers a watch),
// taking the exclusive lock, notifying the watchers, rbd_close. Nobody can have an image open that
// rbd_create4 made a moment ago, and those steps cost about 10 ms of this process's CPU and 5 ms of
// the OSD's per key (docs/performance.md); this is two OSD operations for all keys. The layout used
// (rbd_id.<name> holds the id, rbd_header.<id> the metadata) is RBD format 2's, which rbd_create4
// always makes. librbd's own check of conf_* values is not run: checked.ts admits only the QoS keys,
// with unsigned integers, which is what that check would accept.
bool CreateImageBaton::SetMetadata(ClusterCore&, rados_ioctx_t io) {
  // cls_rbd get_id on rbd_id.<name>: the image's id, encoded as a string.
  char idBuf[128];
  int r = rados_exec(io, ("rbd_id." + image_).c_str(), "rbd", "get_id", nullptr, 0, idBuf, sizeof(idBuf));
  if (r < 4) return Fail(r < 0 ? r : -EIO, "rbd_metadata_set", "could not read the new image's id");
  uint32_t len = 0;
  for (int i = 0; i < 4; ++i) len |= static_cast<uint32_t>(static_cast<unsigned char>(idBuf[i])) << (8 * i);
  if (len == 0 || len > static_cast<uint32_t>(r - 4)) return Fail(-EIO, "rbd_metadata_set", "the new image's id is malformed");
  std::string id(idBuf + 4, len);
  // cls_rbd metadata_set on rbd_header.<id>: a map<string, bufferlist>, u32 count then the pairs.
  std::string in;
  uint32_t count = static_cast<uint32_t>(metadata_.size());
  for (int i = 0; i < 4; ++i) in.push_back(static_cast<char>((count >> (8 * i)) & 0xff));
  for (const auto& [key, value] : metadata_) {
    EncodeBytes(in, key);
    EncodeBytes(in, value);
  }
  return Check(rados_exec(io, ("rbd_header." + id).c_str(), "rbd", "metadata_set", in.data(), in.size(), nullptr, 0), "rbd_metadata_set");
}

void RemoveImageBaton::Run(ClusterCore& core) {
  rados_ioctx_t io = nullptr;
  if (!OpenPool(core, pool_, &io)) return;
  {
    // With an advisory (rbd lock add) lock held, librbd's remove keeps trying to take the
    // exclusive lock forever (same cls lock "rbd_lock"): refuse instead. librbd's own managed
    // lock ("auto <id>" cookies) is left to librbd, which breaks a dead owner's by itself.
    OpenImage image(core);
    int r = image.Open(io, image_, nullptr, true);
    // ENOENT: gone, or half-removed by a removal that died (still listed, its header gone): no
    // lock to look at, and rbd_remove clears what is left (or answers ENOENT itself).
    if (r != -ENOENT) {
      if (!Check(r, "rbd_open_read_only")) return;
      Lockers lockers;
      if (!Check(ListLockers(image.get(), &lockers), "rbd_list_lockers")) return;
      for (const auto& locker : lockers.lockers) {
        if (locker.cookie.rfind("auto ", 0) != 0) {
          Fail(-EBUSY, "rbd_remove", "image has advisory locks: break them first");
          return;
        }
      }
      if (!CloseHere(image)) return;
    }
  }
  // rbd_remove_with_progress: fails with EBUSY while watched, ENOTEMPTY while it has snapshots;
  // reports the data objects removed of the image's object count.
  if (!Check(rbd_remove_with_progress(io, image_.c_str(), ToProgress, &progress), "rbd_remove")) return;
  progress.Report(progress.total.load(), progress.total.load(), true);
}

void ResizeImageBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, false)) return;
  // rbd_resize2: allow_shrink=false refuses a smaller size with EINVAL; reports objects trimmed
  // (a shrink) or the object map grown (a grow, quick).
  if (!Check(rbd_resize2(image.get(), size_, allowShrink_, ToProgress, &progress), "rbd_resize2")) return;
  if (!CloseHere(image)) return;
  progress.Report(progress.total.load(), progress.total.load(), true);
}

void RenameImageBaton::Run(ClusterCore& core) {
  rados_ioctx_t io = nullptr;
  if (!OpenPool(core, pool_, &io)) return;
  // rbd_rename: within one pool.
  int r = rbd_rename(io, image_.c_str(), to_.c_str());
  if (r == -EEXIST) image_ = to_;  // the name that is taken
  Check(r, "rbd_rename");
}

void ImageInfoBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, true)) return;
  // rbd_stat: size, object size, order.
  if (!Check(rbd_stat(image.get(), &info_, sizeof info_), "rbd_stat")) return;
  // rbd_get_features: the feature bits.
  if (!Check(rbd_get_features(image.get(), &features_), "rbd_get_features")) return;
  rbd_linked_image_spec_t parent{};
  rbd_snap_spec_t parentSnap{};
  // rbd_get_parent: ENOENT when the image is not a clone (or has been flattened).
  int r = rbd_get_parent(image.get(), &parent, &parentSnap);
  if (r == 0) {
    hasParent_ = !parent.trash;
    parentPool_ = parent.pool_name ? parent.pool_name : "";
    parentImage_ = parent.image_name ? parent.image_name : "";
    parentSnapshot_ = parentSnap.name ? parentSnap.name : "";
    rbd_linked_image_spec_cleanup(&parent);
    rbd_snap_spec_cleanup(&parentSnap);
  } else if (r != -ENOENT) {
    Fail(r, "rbd_get_parent");
    return;
  }
  r = CountSnapshots(image.get());
  if (!Check(r, "rbd_snap_list")) return;
  snapshotCount_ = r;
  rbd_group_info_t group{};
  // rbd_get_group: the consistency group the image belongs to (pool -1 when none).
  if (!Check(rbd_get_group(image.get(), &group, sizeof group), "rbd_get_group")) return;
  if (group.pool >= 0 && group.name != nullptr && group.name[0] != '\0') {
    char poolName[256] = {0};
    // rados_pool_reverse_lookup: the group's pool by id.
    int p = rados_pool_reverse_lookup(core.handle(), group.pool, poolName, sizeof poolName - 1);
    groupPool_ = p >= 0 ? poolName : std::to_string(group.pool);
    group_ = group.name;
  }
  rbd_group_info_cleanup(&group, sizeof group);
  CloseHere(image);
}

Napi::Value ImageInfoBaton::Result(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("size", Napi::Number::New(env, static_cast<double>(info_.size)));
  out.Set("order", Napi::Number::New(env, info_.order));
  out.Set("objectSize", Napi::Number::New(env, static_cast<double>(info_.obj_size)));
  out.Set("features", Napi::Number::New(env, static_cast<double>(features_)));
  if (hasParent_) {
    Napi::Object parent = Napi::Object::New(env);
    parent.Set("pool", parentPool_);
    parent.Set("image", parentImage_);
    parent.Set("snapshot", parentSnapshot_);
    out.Set("parent", parent);
  } else {
    out.Set("parent", env.Null());
  }
  out.Set("snapshotCount", Napi::Number::New(env, snapshotCount_));
  if (group_.empty()) {
    out.Set("group", env.Null());
  } else {
    Napi::Object group = Napi::Object::New(env);
    group.Set("pool", groupPool_);
    group.Set("name", group_);
    out.Set("group", group);
  }
  return out;
}

int CountSnapshots(rbd_image_t image) {
  std::vector<rbd_snap_info_t> snaps;
  int max = 0;
  for (int attempt = 0; attempt < kMaxListAttempts; ++attempt) {
    snaps.resize(static_cast<size_t>(max));
    // rbd_snap_list: needs room for one more entry than there are snapshots (a terminator);
    // -ERANGE sets `max` to what it needs.
    int r = rbd_snap_list(image, snaps.empty() ? nullptr : snaps.data(), &max);
    if (r == -ERANGE) continue;
    if (r < 0) return r;
    // rbd_snap_list_end: frees the names.
    rbd_snap_list_end(snaps.data());
    return r;
  }
  return -ERANGE;
}

void ListImagesBaton::Run(ClusterCore& core) {
  rados_ioctx_t io = nullptr;
  if (!OpenPool(core, pool_, &io)) return;
  std::vector<rbd_image_spec_t> specs;
  // Room for a typical pool at once: asking for the count first would cost a second round trip to
  // the OSD on every list (0.96 ms instead of 0.45 ms, docs/performance.md).
  size_t max = 64;
  for (int attempt = 0; attempt < kMaxListAttempts; ++attempt) {
    specs.assign(max, rbd_image_spec_t{});
    // rbd_list2: -ERANGE with `max` set to the count when the array is too small.
    int r = rbd_list2(io, specs.empty() ? nullptr : specs.data(), &max);
    if (r == -ERANGE) continue;
    if (!Check(r, "rbd_list2")) return;
    for (size_t i = 0; i < max; ++i) names_.emplace_back(specs[i].name ? specs[i].name : "");
    // rbd_image_spec_list_cleanup: frees ids and names.
    rbd_image_spec_list_cleanup(specs.data(), max);
    return;
  }
  Fail(-ERANGE, "rbd_list2", "the pool kept changing while it was listed");
}

Napi::Value ListImagesBaton::Result(Napi::Env env) {
  Napi::Array out = Napi::Array::New(env, names_.size());
  for (size_t i = 0; i < names_.size(); ++i) out.Set(static_cast<uint32_t>(i), names_[i]);
  return out;
}

void ImageExistsBaton::Run(ClusterCore& core) {
  rados_ioctx_t io = nullptr;
  if (!OpenPool(core, pool_, &io)) return;  // a missing pool is an error, not "no"
  OpenImage image(core);
  int r = image.Open(io, image_, nullptr, true);
  if (r == -ENOENT) return;
  if (!Check(r, "rbd_open_read_only")) return;
  exists_ = true;
  CloseHere(image);
}

void FlattenImageBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, false)) return;
  // rbd_flatten_with_progress: copies the parent's data in, reporting objects copied of the
  // overlap's object count; EINVAL when there is no parent.
  if (!Check(rbd_flatten_with_progress(image.get(), ToProgress, &progress), "rbd_flatten")) return;
  if (!CloseHere(image)) return;
  progress.Report(progress.total.load(), progress.total.load(), true);
}

int ListLockers(rbd_image_t image, Lockers* out) {
  std::vector<char> tag, clients, cookies, addrs;
  size_t tagLen = 0, clientsLen = 0, cookiesLen = 0, addrsLen = 0;
  for (int attempt = 0; attempt < kMaxListAttempts; ++attempt) {
    tag.resize(tagLen);
    clients.resize(clientsLen);
    cookies.resize(cookiesLen);
    addrs.resize(addrsLen);
    int exclusive = 0;
    // rbd_list_lockers: -ERANGE with every length set when a buffer is too short; else the
    // number of lockers, their names/cookies/addresses as NUL-separated lists.
    ssize_t r = rbd_list_lockers(image, &exclusive, tag.empty() ? nullptr : tag.data(), &tagLen,
                                 clients.empty() ? nullptr : clients.data(), &clientsLen,
                                 cookies.empty() ? nullptr : cookies.data(), &cookiesLen,
                                 addrs.empty() ? nullptr : addrs.data(), &addrsLen);
    if (r == -ERANGE) continue;
    if (r < 0) return static_cast<int>(r);
    size_t count = static_cast<size_t>(r);
    out->exclusive = exclusive != 0;
    out->tag = tag.empty() ? std::string() : std::string(tag.data(), strnlen(tag.data(), tag.size()));
    auto owners = SplitNul(clients, clientsLen, count);
    auto cookieList = SplitNul(cookies, cookiesLen, count);
    auto addrList = SplitNul(addrs, addrsLen, count);
    out->lockers.clear();
    for (size_t i = 0; i < count && i < owners.size() && i < cookieList.size(); ++i) {
      out->lockers.push_back({owners[i], cookieList[i], i < addrList.size() ? addrList[i] : std::string()});
    }
    return 0;
  }
  return -ERANGE;
}

}  // namespace volplugin
