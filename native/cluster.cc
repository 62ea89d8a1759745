#include "cluster.h"

#include <cerrno>
#include <cmath>
#include <exception>
#include <new>
#include <string>

#include "diff_ops.h"
#include "errors.h"
#include "group_ops.h"
#include "image_ops.h"
#include "lock_ops.h"
#include "metadata_ops.h"
#include "mon_ops.h"
#include "snapshot_ops.h"

namespace volplugin {

namespace {

// How long the destructor and the exit hook wait for operations still running in librbd.
constexpr std::chrono::milliseconds kShutdownWait(10000);

// --- argument decoding (src/storage/native.ts validates first; these are the last line) ---

std::string Str(const Napi::CallbackInfo& info, size_t i, const char* field) {
  if (i >= info.Length() || !info[i].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string(field) + " must be a string");
  }
  return info[i].As<Napi::String>().Utf8Value();
}

// null/undefined -> "" (meaning: not given).
std::string OptStr(const Napi::CallbackInfo& info, size_t i, const char* field) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return std::string();
  return Str(info, i, field);
}

double Num(const Napi::CallbackInfo& info, size_t i, const char* field) {
  if (i >= info.Length() || !info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(field) + " must be a number");
  }
  return info[i].As<Napi::Number>().DoubleValue();
}

uint64_t U64(const Napi::CallbackInfo& info, size_t i, const char* field) {
  double v = Num(info, i, field);
  if (!(v >= 0) || v > 9007199254740991.0 || std::floor(v) != v) {
    throw Napi::RangeError::New(info.Env(), std::string(field) + " must be a non-negative safe integer");
  }
  return static_cast<uint64_t>(v);
}

// null/undefined -> -1 (meaning: not given).
int64_t OptI64(const Napi::CallbackInfo& info, size_t i, const char* field) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return -1;
  return static_cast<int64_t>(U64(info, i, field));
}

bool Bool(const Napi::CallbackInfo& info, size_t i, const char* field) {
  if (i >= info.Length() || !info[i].IsBoolean()) {
    throw Napi::TypeError::New(info.Env(), std::string(field) + " must be a boolean");
  }
  return info[i].As<Napi::Boolean>().Value();
}

// An array of [key, value] string pairs (null/undefined: none).
std::vector<std::pair<std::string, std::string>> Pairs(const Napi::CallbackInfo& info, size_t i, const char* field) {
  std::vector<std::pair<std::string, std::string>> out;
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return out;
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), std::string(field) + " must be an array of [key, value] pairs");
  Napi::Array list = info[i].As<Napi::Array>();
  for (uint32_t n = 0; n < list.Length(); ++n) {
    Napi::Value pair = list.Get(n);
    if (!pair.IsArray() || pair.As<Napi::Array>().Length() != 2 || !pair.As<Napi::Array>().Get(0u).IsString() ||
        !pair.As<Napi::Array>().Get(1u).IsString()) {
      throw Napi::TypeError::New(info.Env(), std::string(field) + " must be an array of [key, value] string pairs");
    }
    out.emplace_back(pair.As<Napi::Array>().Get(0u).As<Napi::String>().Utf8Value(), pair.As<Napi::Array>().Get(1u).As<Napi::String>().Utf8Value());
  }
  return out;
}

// A path (string) or a file descriptor (non-negative integer) the caller keeps open.
StreamEnd Stream(const Napi::CallbackInfo& info, size_t i, const char* field) {
  StreamEnd end;
  if (i < info.Length() && info[i].IsString()) {
    end.path = info[i].As<Napi::String>().Utf8Value();
    if (end.path.empty()) throw Napi::TypeError::New(info.Env(), std::string(field) + " must not be empty");
    return end;
  }
  if (i < info.Length() && info[i].IsNumber()) {
    double v = info[i].As<Napi::Number>().DoubleValue();
    if (!(v >= 0) || v > 2147483647.0 || std::floor(v) != v) {
      throw Napi::RangeError::New(info.Env(), std::string(field) + " must be a file descriptor (a non-negative integer)");
    }
    end.fd = static_cast<int>(v);
    return end;
  }
  throw Napi::TypeError::New(info.Env(), std::string(field) + " must be a path or a file descriptor");
}

// null/undefined -> empty (no callback).
Napi::Function OptFunction(const Napi::CallbackInfo& info, size_t i, const char* field) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return Napi::Function();
  if (!info[i].IsFunction()) throw Napi::TypeError::New(info.Env(), std::string(field) + " must be a function");
  return info[i].As<Napi::Function>();
}

// --- batons for the connection itself ---

class ConnectBaton : public Baton {
 public:
  explicit ConnectBaton(ConnectConfig config) : config_(std::move(config)) {}
  const char* Name() const override { return "rados_connect"; }
  Kind kind() const override { return Kind::Connect; }
  void Run(ClusterCore& core) override { core.Connect(config_, &error); }

 private:
  ConnectConfig config_;
};

class ShutdownBaton : public Baton {
 public:
  const char* Name() const override { return "rados_shutdown"; }
  Kind kind() const override { return Kind::Close; }
  void Run(ClusterCore& core) override { core.ShutdownLocked(); }
};

// One operation on its way: the baton, the promise it settles and what it keeps alive. Created on
// the JS thread; Execute() runs on a pool thread; the channel hands it back to the JS thread, where
// Deliver() settles the promise and the channel deletes it. Keeps the JS Cluster object (and so the
// wrapper) alive until then; the ClusterCore is shared so it outlives even that.
class Job : public ChannelMessage {
 public:
  Job(Napi::Env env, ClusterWrap* owner, std::unique_ptr<Baton> baton, Napi::Function onProgress)
      : deferred_(Napi::Promise::Deferred::New(env)),
        owner_(owner),
        self_(Napi::Persistent(owner->Value())),
        core_(owner->core()),
        baton_(std::move(baton)) {
    if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }
  Baton& baton() { return *baton_; }
  bool wantsProgress() const { return !onProgress_.IsEmpty(); }

  // On a pool thread.
  void Execute() {
    started_ = Clock::now();
    struct Stamp {
      Job* job;
      ~Stamp() { job->ran_ = Clock::now(); }
    } stamp{this};
    try {
      if (baton_->kind() == Baton::Kind::Operation) {
        // Checked before taking the lock too: a shutdown that waits for it must not be kept
        // waiting by queued operations starting one after another.
        if (core_->stopping.load()) {
          baton_->error.code = -ENOTCONN;
          baton_->error.op = baton_->Name();
          baton_->error.detail = "the cluster connection is closed";
          return;
        }
        std::shared_lock<std::shared_timed_mutex> lock(core_->lifecycle);
        if (!core_->connected()) {
          baton_->error.code = -ENOTCONN;
          baton_->error.op = baton_->Name();
          baton_->error.detail = "the cluster connection is closed";
          return;
        }
        baton_->Run(*core_);
      } else {
        std::unique_lock<std::shared_timed_mutex> lock(core_->lifecycle);
        baton_->Run(*core_);
      }
    } catch (const std::bad_alloc& e) {
      Failed(-ENOMEM, e.what());
    } catch (const std::exception& e) {
      Failed(-EIO, e.what());
    }
  }

  // Run() threw (std::bad_alloc and the like): reported like any failed call.
  void Failed(int code, const char* what) {
    baton_->error.code = code;
    baton_->error.op = baton_->Name();
    baton_->error.detail = what;
  }

  // On the JS thread, once Execute() has returned.
  bool Deliver(Napi::Env env) override {
    owner_->Timed(queued_, started_, ran_, Clock::now());
    owner_->Finished(*baton_);
    if (baton_->error.failed()) {
      deferred_.Reject(MakeRbdError(env, baton_->error));
      return true;
    }
    try {
      deferred_.Resolve(baton_->Result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
    return true;
  }

  // On the JS thread: calls onProgress(done, total); `false` from it asks the baton to stop.
  void DeliverProgress(Napi::Env env) {
    baton_->progress.queued.store(false);
    if (onProgress_.IsEmpty()) return;
    Napi::Value r;
    try {
      r = onProgress_.Call({Napi::Number::New(env, static_cast<double>(baton_->progress.done.load())),
                            Napi::Number::New(env, static_cast<double>(baton_->progress.total.load()))});
    } catch (const Napi::Error& e) {
      // A throwing callback is the application's error: Node's 'uncaughtException', as for any
      // callback; the operation goes on.
      napi_fatal_exception(env, e.Value());
      return;
    }
    if (r.IsBoolean() && !r.As<Napi::Boolean>().Value()) baton_->progress.cancelled.store(true);
  }

 private:
  using Clock = std::chrono::steady_clock;
  // When the job was queued, started on a thread and returned there (read on the JS thread only
  // after the channel has handed the job over, which orders these writes before the reads).
  Clock::time_point queued_ = Clock::now(), started_{}, ran_{};
  Napi::Promise::Deferred deferred_;
  ClusterWrap* owner_;
  Napi::ObjectReference self_;
  Napi::FunctionReference onProgress_;
  std::shared_ptr<ClusterCore> core_;
  std::unique_ptr<Baton> baton_;
};

// "Progress has moved" for one job; the job outlives it (its own message is posted after it).
class ProgressMessage : public ChannelMessage {
 public:
  explicit ProgressMessage(Job* job) : job_(job) {}
  bool Deliver(Napi::Env env) override {
    job_->DeliverProgress(env);
    return true;
  }

 private:
  Job* job_;
};

// `new Cluster(options?)`: { threads?: number } (1..WorkPool::kMaxThreadsLimit).
unsigned MaxThreads(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || info[0].IsUndefined() || info[0].IsNull()) return WorkPool::kDefaultMaxThreads;
  if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "options must be an object");
  Napi::Value threads = info[0].As<Napi::Object>().Get("threads");
  if (threads.IsUndefined() || threads.IsNull()) return WorkPool::kDefaultMaxThreads;
  if (!threads.IsNumber()) throw Napi::TypeError::New(info.Env(), "options.threads must be a number");
  double v = threads.As<Napi::Number>().DoubleValue();
  if (!(v >= 1) || v > WorkPool::kMaxThreadsLimit || std::floor(v) != v) {
    throw Napi::RangeError::New(info.Env(), "options.threads must be an integer from 1 to " + std::to_string(WorkPool::kMaxThreadsLimit));
  }
  return static_cast<unsigned>(v);
}

}  // namespace

Napi::Function ClusterWrap::Define(Napi::Env env) {
  return DefineClass(env, "Cluster",
                     {
                         InstanceMethod<&ClusterWrap::Connect>("connect"),
                         InstanceMethod<&ClusterWrap::Close>("close"),
                         InstanceMethod<&ClusterWrap::Stats>("stats"),
                         InstanceMethod<&ClusterWrap::ThreadStats>("threadStats"),
                         InstanceMethod<&ClusterWrap::CreateImage>("createImage"),
                         InstanceMethod<&ClusterWrap::RemoveImage>("removeImage"),
                         InstanceMethod<&ClusterWrap::ResizeImage>("resizeImage"),
                         InstanceMethod<&ClusterWrap::RenameImage>("renameImage"),
                         InstanceMethod<&ClusterWrap::ImageInfo>("imageInfo"),
                         InstanceMethod<&ClusterWrap::ListImages>("listImages"),
                         InstanceMethod<&ClusterWrap::ImageExists>("imageExists"),
                         InstanceMethod<&ClusterWrap::FlattenImage>("flattenImage"),
                         InstanceMethod<&ClusterWrap::CreateSnapshot>("createSnapshot"),
                         InstanceMethod<&ClusterWrap::ListSnapshots>("listSnapshots"),
                         InstanceMethod<&ClusterWrap::RemoveSnapshot>("removeSnapshot"),
                         InstanceMethod<&ClusterWrap::RollbackSnapshot>("rollbackSnapshot"),
                         InstanceMethod<&ClusterWrap::ProtectSnapshot>("protectSnapshot"),
                         InstanceMethod<&ClusterWrap::UnprotectSnapshot>("unprotectSnapshot"),
                         InstanceMethod<&ClusterWrap::CloneSnapshot>("cloneSnapshot"),
                         InstanceMethod<&ClusterWrap::ListChildren>("listChildren"),
                         InstanceMethod<&ClusterWrap::ListWatchers>("listWatchers"),
                         InstanceMethod<&ClusterWrap::AddLock>("addLock"),
                         InstanceMethod<&ClusterWrap::ListLocks>("listLocks"),
                         InstanceMethod<&ClusterWrap::BreakLock>("breakLock"),
                         InstanceMethod<&ClusterWrap::GetMetadata>("getMetadata"),
                         InstanceMethod<&ClusterWrap::SetMetadata>("setMetadata"),
                         InstanceMethod<&ClusterWrap::RemoveMetadata>("removeMetadata"),
                         InstanceMethod<&ClusterWrap::ExportDiff>("exportDiff"),
                         InstanceMethod<&ClusterWrap::ApplyDiff>("applyDiff"),
                         InstanceMethod<&ClusterWrap::InspectDiff>("inspectDiff"),
                         InstanceMethod<&ClusterWrap::CreateGroup>("createGroup"),
                         InstanceMethod<&ClusterWrap::RemoveGroup>("removeGroup"),
                         InstanceMethod<&ClusterWrap::ListGroups>("listGroups"),
                         InstanceMethod<&ClusterWrap::AddGroupImage>("addGroupImage"),
                         InstanceMethod<&ClusterWrap::RemoveGroupImage>("removeGroupImage"),
                         InstanceMethod<&ClusterWrap::ListGroupImages>("listGroupImages"),
                         InstanceMethod<&ClusterWrap::CreateGroupSnapshot>("createGroupSnapshot"),
                         InstanceMethod<&ClusterWrap::RemoveGroupSnapshot>("removeGroupSnapshot"),
                         InstanceMethod<&ClusterWrap::RollbackGroupSnapshot>("rollbackGroupSnapshot"),
                         InstanceMethod<&ClusterWrap::ListGroupSnapshots>("listGroupSnapshots"),
                         InstanceMethod<&ClusterWrap::ListMemberSnapshots>("listMemberSnapshots"),
                         InstanceMethod<&ClusterWrap::CopySnapshot>("copySnapshot"),
                         InstanceMethod<&ClusterWrap::MonCommand>("monCommand"),
                         InstanceMethod<&ClusterWrap::Fsid>("fsid"),
                     });
}

ClusterWrap::ClusterWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<ClusterWrap>(info),
      core_(std::make_shared<ClusterCore>()),
      pool_(std::make_unique<WorkPool>(MaxThreads(info))),
      channel_(JsChannel::Create(info.Env(), "volplugin_rbd")) {
  AddonData* data = info.Env().GetInstanceData<AddonData>();
  if (data != nullptr) data->Track(core_);
  ClusterCore::ShutdownAtExit(core_);
}

ClusterWrap::~ClusterWrap() {
  // Garbage collected (or the environment is going away): no operation holds this object, so
  // nothing should be running; wait a bounded time in case one still is (process exit with calls
  // in flight), then let the threads go (one still inside librbd ends when its call returns).
  if (state_ != State::Closed) core_->ShutdownWithin(kShutdownWait);
  pool_->Stop(std::chrono::milliseconds(0));
  channel_->Release();
}

void ClusterWrap::Finished(Baton& baton) {
  if (--pending_ == 0) channel_->Unref();
  switch (baton.kind()) {
    case Baton::Kind::Connect:
      if (state_ == State::Connecting) state_ = baton.error.failed() ? State::Idle : State::Open;
      break;
    case Baton::Kind::Close: {
      state_ = State::Closed;
      // Nothing can be queued any more: the threads end (the one that ran the shutdown as soon as
      // it has posted this), and so does the channel.
      pool_->Stop(std::chrono::milliseconds(0));
      channel_->Release();
      std::vector<Napi::Promise::Deferred> waiters;
      waiters.swap(closeWaiters_);
      for (auto& waiter : waiters) waiter.Resolve(Env().Undefined());
      return;
    }
    case Baton::Kind::Operation:
      break;
  }
  MaybeShutdown(Env());
}

Napi::Value ClusterWrap::Queue(Napi::Env env, std::unique_ptr<Baton> baton, Napi::Function onProgress) {
  if (state_ != State::Open) {
    OpError error;
    error.code = -ENOTCONN;
    error.op = baton->Name();
    error.detail = state_ == State::Idle || state_ == State::Connecting ? "the cluster is not connected"
                                                                        : "the cluster connection is closed";
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(MakeRbdError(env, error));
    return deferred.Promise();
  }
  return QueueInternal(env, std::move(baton), onProgress);
}

Napi::Promise ClusterWrap::QueueInternal(Napi::Env env, std::unique_ptr<Baton> baton, Napi::Function onProgress) {
  auto* job = new Job(env, this, std::move(baton), onProgress);
  Napi::Promise promise = job->Promise();
  if (pending_++ == 0) channel_->Ref();
  std::shared_ptr<JsChannel> channel = channel_;
  if (job->wantsProgress()) {
    job->baton().progress.notify = [job, channel] {
      auto* message = new ProgressMessage(job);
      if (!channel->Post(message)) delete message;
    };
  }
  bool queued = pool_->Submit([job, channel] {
    job->Execute();
    // False only when the environment is gone: the job is left alone (see channel.h).
    channel->Post(job);
  });
  if (!queued) {
    Baton& b = job->baton();
    b.error.code = -EAGAIN;
    b.error.op = b.Name();
    b.error.detail = "no worker thread could be started";
    job->Deliver(env);
    delete job;
  }
  return promise;
}

void ClusterWrap::MaybeShutdown(Napi::Env env) {
  if (state_ != State::Closing || pending_ != 0 || shutdownQueued_) return;
  shutdownQueued_ = true;
  QueueInternal(env, std::make_unique<ShutdownBaton>());
}

Napi::Value ClusterWrap::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ConnectConfig config;
  config.confPath = OptStr(info, 0, "confPath");
  config.keyring = OptStr(info, 1, "keyring");
  config.clientId = OptStr(info, 2, "clientId");
  if (info.Length() > 3 && info[3].IsObject()) {
    Napi::Object options = info[3].As<Napi::Object>();
    Napi::Array keys = options.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      std::string key = keys.Get(i).ToString().Utf8Value();
      config.options.emplace_back(key, options.Get(key).ToString().Utf8Value());
    }
  }
  if (state_ != State::Idle) {
    OpError error;
    error.code = state_ == State::Open || state_ == State::Connecting ? -EISCONN : -ENOTCONN;
    error.op = "rados_connect";
    error.detail = state_ == State::Open || state_ == State::Connecting ? "already connected" : "the cluster connection is closed";
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(MakeRbdError(env, error));
    return deferred.Promise();
  }
  state_ = State::Connecting;
  return QueueInternal(env, std::make_unique<ConnectBaton>(std::move(config)));
}

Napi::Value ClusterWrap::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto deferred = Napi::Promise::Deferred::New(env);
  if (state_ == State::Closed) {
    deferred.Resolve(env.Undefined());
    return deferred.Promise();
  }
  closeWaiters_.push_back(deferred);
  state_ = State::Closing;
  MaybeShutdown(env);
  return deferred.Promise();
}

Napi::Value ClusterWrap::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("pending", Napi::Number::New(env, pending_));
  out.Set("openImages", Napi::Number::New(env, core_->openImages.load()));
  out.Set("pools", Napi::Number::New(env, core_->PoolCount()));
  return out;
}

Napi::Value ClusterWrap::ThreadStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WorkPool::Stats stats = pool_->stats();
  Napi::Object out = Napi::Object::New(env);
  out.Set("threads", Napi::Number::New(env, stats.threads));
  out.Set("busy", Napi::Number::New(env, stats.busy));
  out.Set("queued", Napi::Number::New(env, stats.queued));
  out.Set("maxThreads", Napi::Number::New(env, stats.maxThreads));
  out.Set("completed", Napi::Number::New(env, static_cast<double>(timing_.completed)));
  auto ms = [](std::chrono::nanoseconds ns) { return static_cast<double>(ns.count()) / 1e6; };
  out.Set("queueWaitMs", Napi::Number::New(env, ms(timing_.queueWait)));
  out.Set("runMs", Napi::Number::New(env, ms(timing_.run)));
  out.Set("deliverWaitMs", Napi::Number::New(env, ms(timing_.deliverWait)));
  return out;
}

void ClusterWrap::Timed(Clock::time_point queued, Clock::time_point started, Clock::time_point ran, Clock::time_point delivered) {
  if (started.time_since_epoch().count() == 0) return;  // never ran (no thread could be started)
  timing_.completed++;
  timing_.queueWait += started - queued;
  timing_.run += ran - started;
  timing_.deliverWait += delivered - ran;
}

// --- images ---

Napi::Value ClusterWrap::CreateImage(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<CreateImageBaton>(Str(info, 0, "pool"), Str(info, 1, "name"), U64(info, 2, "size"),
                                                              U64(info, 3, "features"), static_cast<int>(U64(info, 4, "order")),
                                                              OptStr(info, 5, "dataPool"), Pairs(info, 6, "metadata")));
}

Napi::Value ClusterWrap::RemoveImage(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<RemoveImageBaton>(Str(info, 0, "pool"), Str(info, 1, "name")),
               OptFunction(info, 2, "onProgress"));
}

Napi::Value ClusterWrap::ResizeImage(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ResizeImageBaton>(Str(info, 0, "pool"), Str(info, 1, "name"), U64(info, 2, "size"),
                                                              Bool(info, 3, "allowShrink")),
               OptFunction(info, 4, "onProgress"));
}

Napi::Value ClusterWrap::RenameImage(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<RenameImageBaton>(Str(info, 0, "pool"), Str(info, 1, "from"), Str(info, 2, "to")));
}

Napi::Value ClusterWrap::ImageInfo(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ImageInfoBaton>(Str(info, 0, "pool"), Str(info, 1, "name")));
}

Napi::Value ClusterWrap::ListImages(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ListImagesBaton>(Str(info, 0, "pool")));
}

Napi::Value ClusterWrap::ImageExists(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ImageExistsBaton>(Str(info, 0, "pool"), Str(info, 1, "name")));
}

Napi::Value ClusterWrap::FlattenImage(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<FlattenImageBaton>(Str(info, 0, "pool"), Str(info, 1, "name")),
               OptFunction(info, 2, "onProgress"));
}

// --- snapshots ---

namespace {
std::unique_ptr<Baton> Snap(SnapshotBaton::Action action, const Napi::CallbackInfo& info) {
  return std::make_unique<SnapshotBaton>(action, Str(info, 0, "pool"), Str(info, 1, "image"), Str(info, 2, "snapshot"));
}
}  // namespace

Napi::Value ClusterWrap::CreateSnapshot(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), Snap(SnapshotBaton::Action::Create, info));
}

Napi::Value ClusterWrap::RemoveSnapshot(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), Snap(SnapshotBaton::Action::Remove, info));
}

Napi::Value ClusterWrap::RollbackSnapshot(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), Snap(SnapshotBaton::Action::Rollback, info));
}

Napi::Value ClusterWrap::ProtectSnapshot(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), Snap(SnapshotBaton::Action::Protect, info));
}

Napi::Value ClusterWrap::UnprotectSnapshot(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), Snap(SnapshotBaton::Action::Unprotect, info));
}

Napi::Value ClusterWrap::ListSnapshots(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ListSnapshotsBaton>(Str(info, 0, "pool"), Str(info, 1, "image")));
}

Napi::Value ClusterWrap::CloneSnapshot(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<CloneBaton>(Str(info, 0, "parentPool"), Str(info, 1, "parentImage"),
                                                        Str(info, 2, "parentSnapshot"), Str(info, 3, "pool"), Str(info, 4, "name"),
                                                        OptI64(info, 5, "features"), static_cast<int>(OptI64(info, 6, "order")),
                                                        OptStr(info, 7, "dataPool")));
}

Napi::Value ClusterWrap::ListChildren(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ListChildrenBaton>(Str(info, 0, "pool"), Str(info, 1, "image"), Str(info, 2, "snapshot")));
}

// --- watchers and locks ---

Napi::Value ClusterWrap::ListWatchers(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ListWatchersBaton>(Str(info, 0, "pool"), Str(info, 1, "image")));
}

Napi::Value ClusterWrap::AddLock(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<AddLockBaton>(Str(info, 0, "pool"), Str(info, 1, "image"), Str(info, 2, "cookie"),
                                                          Str(info, 3, "tag"), Bool(info, 4, "exclusive")));
}

Napi::Value ClusterWrap::ListLocks(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ListLocksBaton>(Str(info, 0, "pool"), Str(info, 1, "image")));
}

Napi::Value ClusterWrap::BreakLock(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<BreakLockBaton>(Str(info, 0, "pool"), Str(info, 1, "image"), Str(info, 2, "owner"),
                                                            Str(info, 3, "cookie")));
}

// --- metadata ---

Napi::Value ClusterWrap::GetMetadata(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<GetMetadataBaton>(Str(info, 0, "pool"), Str(info, 1, "image")));
}

Napi::Value ClusterWrap::SetMetadata(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<SetMetadataBaton>(Str(info, 0, "pool"), Str(info, 1, "image"), Str(info, 2, "key"),
                                                              Str(info, 3, "value"), false));
}

Napi::Value ClusterWrap::RemoveMetadata(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<SetMetadataBaton>(Str(info, 0, "pool"), Str(info, 1, "image"), Str(info, 2, "key"),
                                                              std::string(), true));
}

// --- diffs (export-diff / import-diff streams) ---

Napi::Value ClusterWrap::ExportDiff(const Napi::CallbackInfo& info) {
  return Queue(info.Env(),
               std::make_unique<ExportDiffBaton>(Str(info, 0, "pool"), Str(info, 1, "image"), OptStr(info, 2, "fromSnapshot"),
                                                 OptStr(info, 3, "toSnapshot"), Stream(info, 4, "target"), Bool(info, 5, "wholeObject")),
               OptFunction(info, 6, "onProgress"));
}

Napi::Value ClusterWrap::ApplyDiff(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ApplyDiffBaton>(Str(info, 0, "pool"), Str(info, 1, "image"), Stream(info, 2, "source")),
               OptFunction(info, 3, "onProgress"));
}

Napi::Value ClusterWrap::InspectDiff(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<InspectDiffBaton>(Stream(info, 0, "source")));
}

// --- groups ---

namespace {
std::unique_ptr<Baton> Group(GroupBaton::Action action, const Napi::CallbackInfo& info, bool withSnapshot) {
  return std::make_unique<GroupBaton>(action, Str(info, 0, "pool"), Str(info, 1, "group"),
                                      withSnapshot ? Str(info, 2, "snapshot") : std::string());
}
}  // namespace

Napi::Value ClusterWrap::CreateGroup(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), Group(GroupBaton::Action::Create, info, false));
}

Napi::Value ClusterWrap::RemoveGroup(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), Group(GroupBaton::Action::Remove, info, false));
}

Napi::Value ClusterWrap::ListGroups(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ListGroupsBaton>(Str(info, 0, "pool")));
}

Napi::Value ClusterWrap::AddGroupImage(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<GroupImageBaton>(true, Str(info, 0, "groupPool"), Str(info, 1, "group"),
                                                             Str(info, 2, "imagePool"), Str(info, 3, "image")));
}

Napi::Value ClusterWrap::RemoveGroupImage(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<GroupImageBaton>(false, Str(info, 0, "groupPool"), Str(info, 1, "group"),
                                                             Str(info, 2, "imagePool"), Str(info, 3, "image")));
}

Napi::Value ClusterWrap::ListGroupImages(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ListGroupImagesBaton>(Str(info, 0, "pool"), Str(info, 1, "group")));
}

Napi::Value ClusterWrap::CreateGroupSnapshot(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), Group(GroupBaton::Action::SnapCreate, info, true));
}

Napi::Value ClusterWrap::RemoveGroupSnapshot(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), Group(GroupBaton::Action::SnapRemove, info, true));
}

Napi::Value ClusterWrap::RollbackGroupSnapshot(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), Group(GroupBaton::Action::SnapRollback, info, true), OptFunction(info, 3, "onProgress"));
}

Napi::Value ClusterWrap::ListMemberSnapshots(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ListMemberSnapshotsBaton>(Str(info, 0, "pool"), Str(info, 1, "image")));
}

Napi::Value ClusterWrap::CopySnapshot(const Napi::CallbackInfo& info) {
  return Queue(info.Env(),
               std::make_unique<CopySnapshotBaton>(Str(info, 0, "sourcePool"), Str(info, 1, "sourceImage"), U64(info, 2, "snapshotId"),
                                                   Str(info, 3, "pool"), Str(info, 4, "name"), OptI64(info, 5, "features"),
                                                   static_cast<int>(OptI64(info, 6, "order")), OptStr(info, 7, "dataPool")),
               OptFunction(info, 8, "onProgress"));
}

Napi::Value ClusterWrap::ListGroupSnapshots(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<ListGroupSnapshotsBaton>(Str(info, 0, "pool"), Str(info, 1, "group")));
}

// --- cluster ---

Napi::Value ClusterWrap::MonCommand(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<MonCommandBaton>(Str(info, 0, "command")));
}

Napi::Value ClusterWrap::Fsid(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), std::make_unique<FsidBaton>());
}

}  // namespace volplugin
