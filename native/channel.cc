#include "channel.h"

namespace volplugin {

std::shared_ptr<JsChannel> JsChannel::Create(Napi::Env env, const char* resourceName) {
  std::shared_ptr<JsChannel> channel(new JsChannel());
  channel->env_ = env;
  // The finalizer holds the channel until the thread-safe function is gone, whoever lets go first.
  auto* holder = new std::shared_ptr<JsChannel>(channel);
  napi_value name = Napi::String::New(env, resourceName);
  // napi_create_threadsafe_function: no JS function (CallJs does the work), an unbounded queue,
  // one owner (this channel).
  napi_status status = napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, holder, Finalize, channel.get(),
                                                       CallJs, &channel->tsfn_);
  if (status != napi_ok) {
    delete holder;
    NAPI_THROW_IF_FAILED(env, status, nullptr);
  }
  // napi_unref_threadsafe_function: an idle connection must not keep the process alive.
  napi_unref_threadsafe_function(env, channel->tsfn_);
  return channel;
}

JsChannel::~JsChannel() = default;

bool JsChannel::Post(ChannelMessage* message) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (tsfn_ == nullptr) return false;
  // napi_call_threadsafe_function: never blocks on an unbounded queue; napi_closing once the
  // environment is tearing it down.
  return napi_call_threadsafe_function(tsfn_, message, napi_tsfn_nonblocking) == napi_ok;
}

void JsChannel::Ref() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (tsfn_ == nullptr || referenced_) return;
  napi_ref_threadsafe_function(env_, tsfn_);
  referenced_ = true;
}

void JsChannel::Unref() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (tsfn_ == nullptr || !referenced_) return;
  napi_unref_threadsafe_function(env_, tsfn_);
  referenced_ = false;
}

void JsChannel::Release() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (tsfn_ == nullptr) return;
  if (referenced_) napi_unref_threadsafe_function(env_, tsfn_);
  referenced_ = false;
  // napi_release_threadsafe_function: the last owner; Finalize follows once the queue is empty.
  napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
  tsfn_ = nullptr;
}

void JsChannel::CallJs(napi_env env, napi_value /*jsCallback*/, void* /*context*/, void* data) {
  auto* message = static_cast<ChannelMessage*>(data);
  // env is null when the environment is being torn down with messages still queued: nothing can
  // be settled any more (see the header).
  if (env == nullptr || message == nullptr) return;
  Napi::HandleScope scope(env);
  bool owned = true;
  try {
    owned = message->Deliver(Napi::Env(env));
  } catch (const Napi::Error&) {
    // Deliver() settles its own promise; an exception here has nowhere to go.
  }
  if (owned) delete message;
}

void JsChannel::Finalize(napi_env /*env*/, void* data, void* /*hint*/) {
  auto* holder = static_cast<std::shared_ptr<JsChannel>*>(data);
  {
    std::lock_guard<std::mutex> lock((*holder)->mutex_);
    (*holder)->tsfn_ = nullptr;
  }
  delete holder;
}

}  // namespace volplugin
