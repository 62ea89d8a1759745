// The JS class `Cluster`: one librados connection, the threads its calls run on (a WorkPool of its
// own, pool.h) and every operation on it. Each method decodes its (already validated) arguments
// into a baton and queues it; the returned promise settles on the JS thread (through a JsChannel,
// channel.h) when the baton has run on one of those threads.
//
// Lifecycle on the JS thread: Idle -> connect() -> Open -> close() -> Closing -> Closed. close()
// is idempotent: it refuses new operations at once (ENOTCONN), waits until the pending ones have
// settled, then shuts the connection down off the JS thread; every close() promise resolves then,
// and the threads end. Pending operations keep the event loop alive; an idle connection does not.
// The destructor (garbage collection) and the environment's cleanup hook (process exit) shut down
// synchronously instead.
#pragma once

#include <napi.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "baton.h"
#include "channel.h"
#include "core.h"
#include "pool.h"

namespace volplugin {

class ClusterWrap : public Napi::ObjectWrap<ClusterWrap> {
 public:
  static Napi::Function Define(Napi::Env env);

  explicit ClusterWrap(const Napi::CallbackInfo& info);
  ~ClusterWrap() override;

  using Clock = std::chrono::steady_clock;

  // Called on the JS thread when a baton has run.
  void Finished(Baton& baton);
  // Adds one operation's times: queued -> started on a thread -> returned -> delivered on the JS thread.
  void Timed(Clock::time_point queued, Clock::time_point started, Clock::time_point ran, Clock::time_point delivered);
  const std::shared_ptr<ClusterCore>& core() const { return core_; }

 private:
  enum class State { Idle, Connecting, Open, Closing, Closed };

  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value ThreadStats(const Napi::CallbackInfo& info);

  Napi::Value CreateImage(const Napi::CallbackInfo& info);
  Napi::Value RemoveImage(const Napi::CallbackInfo& info);
  Napi::Value ResizeImage(const Napi::CallbackInfo& info);
  Napi::Value RenameImage(const Napi::CallbackInfo& info);
  Napi::Value ImageInfo(const Napi::CallbackInfo& info);
  Napi::Value ListImages(const Napi::CallbackInfo& info);
  Napi::Value ImageExists(const Napi::CallbackInfo& info);
  Napi::Value FlattenImage(const Napi::CallbackInfo& info);

  Napi::Value CreateSnapshot(const Napi::CallbackInfo& info);
  Napi::Value ListSnapshots(const Napi::CallbackInfo& info);
  Napi::Value RemoveSnapshot(const Napi::CallbackInfo& info);
  Napi::Value RollbackSnapshot(const Napi::CallbackInfo& info);
  Napi::Value ProtectSnapshot(const Napi::CallbackInfo& info);
  Napi::Value UnprotectSnapshot(const Napi::CallbackInfo& info);
  Napi::Value CloneSnapshot(const Napi::CallbackInfo& info);
  Napi::Value ListChildren(const Napi::CallbackInfo& info);

  Napi::Value ListWatchers(const Napi::CallbackInfo& info);
  Napi::Value AddLock(const Napi::CallbackInfo& info);
  Napi::Value ListLocks(const Napi::CallbackInfo& info);
  Napi::Value BreakLock(const Napi::CallbackInfo& info);

  Napi::Value GetMetadata(const Napi::CallbackInfo& info);
  Napi::Value SetMetadata(const Napi::CallbackInfo& info);
  Napi::Value RemoveMetadata(const Napi::CallbackInfo& info);

  Napi::Value ExportDiff(const Napi::CallbackInfo& info);
  Napi::Value ApplyDiff(const Napi::CallbackInfo& info);
  Napi::Value InspectDiff(const Napi::CallbackInfo& info);

  Napi::Value CreateGroup(const Napi::CallbackInfo& info);
  Napi::Value RemoveGroup(const Napi::CallbackInfo& info);
  Napi::Value ListGroups(const Napi::CallbackInfo& info);
  Napi::Value AddGroupImage(const Napi::CallbackInfo& info);
  Napi::Value RemoveGroupImage(const Napi::CallbackInfo& info);
  Napi::Value ListGroupImages(const Napi::CallbackInfo& info);
  Napi::Value CreateGroupSnapshot(const Napi::CallbackInfo& info);
  Napi::Value RemoveGroupSnapshot(const Napi::CallbackInfo& info);
  Napi::Value RollbackGroupSnapshot(const Napi::CallbackInfo& info);
  Napi::Value ListGroupSnapshots(const Napi::CallbackInfo& info);
  Napi::Value ListMemberSnapshots(const Napi::CallbackInfo& info);
  Napi::Value CopySnapshot(const Napi::CallbackInfo& info);

  Napi::Value MonCommand(const Napi::CallbackInfo& info);
  Napi::Value Fsid(const Napi::CallbackInfo& info);

  // Queues an operation; rejects at once (ENOTCONN) unless the connection is open. `onProgress`
  // (may be empty) is called on the JS thread with (done, total) when the baton reports progress.
  Napi::Value Queue(Napi::Env env, std::unique_ptr<Baton> baton, Napi::Function onProgress = Napi::Function());
  // Queues regardless of state (connect and the final shutdown).
  Napi::Promise QueueInternal(Napi::Env env, std::unique_ptr<Baton> baton, Napi::Function onProgress = Napi::Function());
  void MaybeShutdown(Napi::Env env);

  std::shared_ptr<ClusterCore> core_;
  std::unique_ptr<WorkPool> pool_;
  std::shared_ptr<JsChannel> channel_;
  State state_ = State::Idle;
  int pending_ = 0;
  bool shutdownQueued_ = false;
  std::vector<Napi::Promise::Deferred> closeWaiters_;
  // Totals over every operation that ran, for threadStats(): where an addon call's time goes.
  struct {
    uint64_t completed = 0;
    std::chrono::nanoseconds queueWait{0}, run{0}, deliverWait{0};
  } timing_;
};

}  // namespace volplugin
