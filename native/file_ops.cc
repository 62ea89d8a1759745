#include "file_ops.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "errors.h"

namespace volplugin {

namespace {

class WriteFileWorker : public Napi::AsyncWorker {
 public:
  WriteFileWorker(Napi::Env env, std::string path, std::string data)
      : Napi::AsyncWorker(env, "volplugin_rbd.writeFile"), deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)), data_(std::move(data)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    // open(2) without O_CREAT: these files exist or the feature is missing (ENOENT says which).
    int fd = -1;
    do {
      fd = open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return Fail(-errno, "open");
    // write(2) once: the kernel parses exactly what one call hands it.
    ssize_t n = -1;
    do {
      n = write(fd, data_.data(), data_.size());
    } while (n < 0 && errno == EINTR);
    int writeErr = n < 0 ? -errno : 0;
    // close(2): sysfs reports nothing here, but a network filesystem could.
    int closeErr = close(fd) < 0 ? -errno : 0;
    if (writeErr < 0) return Fail(writeErr, "write");
    if (static_cast<size_t>(n) != data_.size()) return Fail(-EIO, "write", "short write");
    if (closeErr < 0) return Fail(closeErr, "close");
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (error_.failed()) {
      deferred_.Reject(MakeRbdError(env, error_));
    } else {
      deferred_.Resolve(env.Undefined());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  void Fail(int code, const char* op, const std::string& what = std::string()) {
    error_.code = code;
    error_.op = op;
    error_.detail = (what.empty() ? ErrnoText(code) : what) + ": " + path_;
  }

  Napi::Promise::Deferred deferred_;
  std::string path_;
  std::string data_;
  OpError error_;
};

}  // namespace

Napi::Value WriteFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    throw Napi::TypeError::New(env, "writeFile(path: string, data: string)");
  }
  auto* worker = new WriteFileWorker(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace volplugin
