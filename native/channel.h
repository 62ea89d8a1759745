// The way back from the addon's worker threads to the JS thread: a Node-API thread-safe function
// (napi_threadsafe_function) with no JS function of its own. Any thread may Post() a message; the
// JS thread hands each one, in the order they were posted, to the message's own Deliver().
//
// Lifetime: created and released on the JS thread. While the loop should stay alive for messages
// still to come (operations pending), the owner holds a Ref(). When the environment goes away
// first (process exit, a worker thread ending), Node finalizes the thread-safe function itself;
// from then on Post() refuses, and what could not be delivered is deliberately left alone: its
// promises belong to a JS heap that no longer exists.
#pragma once

#include <napi.h>

#include <memory>
#include <mutex>

namespace volplugin {

// One message to the JS thread.
class ChannelMessage {
 public:
  virtual ~ChannelMessage() = default;
  // On the JS thread, inside a handle scope. The channel deletes the message afterwards unless
  // Deliver() returns false (the message then owns its own lifetime).
  virtual bool Deliver(Napi::Env env) = 0;
};

class JsChannel {
 public:
  // JS thread.
  static std::shared_ptr<JsChannel> Create(Napi::Env env, const char* resourceName);
  ~JsChannel();
  JsChannel(const JsChannel&) = delete;
  JsChannel& operator=(const JsChannel&) = delete;

  // Any thread. False when the channel is released or its environment is gone: the message was
  // not taken (the caller still owns it).
  bool Post(ChannelMessage* message);

  // JS thread: keep the event loop alive until Unref() (napi_ref/unref_threadsafe_function).
  void Ref();
  void Unref();
  // JS thread: no more messages; the thread-safe function is finalized once its queue is empty.
  void Release();

 private:
  JsChannel() = default;
  static void CallJs(napi_env env, napi_value jsCallback, void* context, void* data);
  static void Finalize(napi_env env, void* data, void* hint);

  std::mutex mutex_;
  napi_env env_ = nullptr;
  napi_threadsafe_function tsfn_ = nullptr;  // null once released or finalized
  bool referenced_ = false;
};

}  // namespace volplugin
