#include "mon_ops.h"

namespace volplugin {

void MonCommandBaton::Run(ClusterCore& core) {
  const char* cmd[] = {command_.c_str()};
  char* outbuf = nullptr;
  size_t outlen = 0;
  char* outs = nullptr;
  size_t outslen = 0;
  // rados_mon_command: one JSON command to a monitor; `outs` is its status text (the error
  // message when it fails).
  int r = rados_mon_command(core.handle(), cmd, 1, "", 0, &outbuf, &outlen, &outs, &outslen);
  if (outbuf != nullptr) out_.assign(outbuf, outlen);
  if (outs != nullptr) status_.assign(outs, outslen);
  // rados_buffer_free: both buffers belong to librados.
  if (outbuf != nullptr) rados_buffer_free(outbuf);
  if (outs != nullptr) rados_buffer_free(outs);
  if (r < 0) {
    error.code = r;
    error.op = "rados_mon_command";
    error.detail = status_.empty() ? ErrnoText(r) : status_;
  }
}

Napi::Value MonCommandBaton::Result(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("out", out_);
  out.Set("status", status_);
  return out;
}

void FsidBaton::Run(ClusterCore& core) {
  char buf[64] = {0};
  // rados_cluster_fsid: the cluster's uuid as text; returns its length.
  int r = rados_cluster_fsid(core.handle(), buf, sizeof buf - 1);
  if (r < 0) {
    error.code = r;
    error.op = "rados_cluster_fsid";
    error.detail = ErrnoText(r);
    return;
  }
  fsid_.assign(buf, static_cast<size_t>(r));
}

}  // namespace volplugin
