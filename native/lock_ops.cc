#include "lock_ops.h"

namespace volplugin {

void ListWatchersBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  // Read-only: a read-write open would add our own watch to the list.
  if (!OpenHere(core, image, true)) return;
  std::vector<rbd_image_watcher_t> list;
  size_t max = 0;
  for (int attempt = 0; attempt < 16; ++attempt) {
    list.resize(max);
    // rbd_watchers_list: watchers of the header object; -ERANGE sets `max`.
    int r = rbd_watchers_list(image.get(), list.empty() ? nullptr : list.data(), &max);
    if (r == -ERANGE) continue;
    if (!Check(r, "rbd_watchers_list")) return;
    for (size_t i = 0; i < max; ++i) {
      watchers_.push_back({list[i].addr ? list[i].addr : "", list[i].id, list[i].cookie});
    }
    // rbd_watchers_list_cleanup: frees the addresses.
    rbd_watchers_list_cleanup(list.data(), max);
    CloseHere(image);
    return;
  }
  Fail(-ERANGE, "rbd_watchers_list", "the watchers kept changing while they were listed");
}

Napi::Value ListWatchersBaton::Result(Napi::Env env) {
  Napi::Array out = Napi::Array::New(env, watchers_.size());
  for (size_t i = 0; i < watchers_.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("address", watchers_[i].address);
    o.Set("id", Napi::Number::New(env, static_cast<double>(watchers_[i].id)));
    o.Set("cookie", Napi::Number::New(env, static_cast<double>(watchers_[i].cookie)));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

void AddLockBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, false)) return;
  // rbd_lock_exclusive / rbd_lock_shared: EBUSY when another (client, cookie) holds it (or a
  // shared lock with another tag), EEXIST when this client already holds it with this cookie.
  int r = exclusive_ ? rbd_lock_exclusive(image.get(), cookie_.c_str())
                     : rbd_lock_shared(image.get(), cookie_.c_str(), tag_.c_str());
  if (!Check(r, Name())) return;
  CloseHere(image);
}

void ListLocksBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, true)) return;
  if (!Check(ListLockers(image.get(), &lockers_), "rbd_list_lockers")) return;
  CloseHere(image);
}

Napi::Value ListLocksBaton::Result(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("exclusive", Napi::Boolean::New(env, lockers_.exclusive));
  out.Set("tag", lockers_.tag);
  Napi::Array list = Napi::Array::New(env, lockers_.lockers.size());
  for (size_t i = 0; i < lockers_.lockers.size(); ++i) {
    const auto& l = lockers_.lockers[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("owner", l.owner);
    o.Set("cookie", l.cookie);
    o.Set("address", l.address);
    list.Set(static_cast<uint32_t>(i), o);
  }
  out.Set("lockers", list);
  return out;
}

void BreakLockBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, false)) return;
  // rbd_break_lock: removes (owner, cookie)'s lock; ENOENT if there is none. Blocklisting the
  // owner as well is off (rbd_blocklist_on_break_lock=false, set at connect).
  if (!Check(rbd_break_lock(image.get(), owner_.c_str(), cookie_.c_str()), "rbd_break_lock")) return;
  CloseHere(image);
}

}  // namespace volplugin
