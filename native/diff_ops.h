// Incremental backups in the `rbd export-diff` format (diff_stream.h): export the changes between
// two snapshots of an image (or everything up to one) to a file or descriptor, apply such a stream
// to an image (what `rbd import-diff` does), and check a stream without applying it.
#pragma once

#include <cstdint>
#include <string>

#include "baton.h"
#include "diff_stream.h"

namespace volplugin {

// Where a stream goes or comes from: a path (opened and closed here) or a descriptor the caller
// owns and keeps open until the operation settles.
struct StreamEnd {
  std::string path;
  int fd = -1;
  std::string describe() const { return path.empty() ? "fd " + std::to_string(fd) : path; }
};

// exportDiff: rbd_open_read_only at `toSnap` (or the head), rbd_diff_iterate2 from `fromSnap`
// (or from the beginning) window by window, rbd_aio_read2 of what changed (a few reads in
// flight), written in order as 'w' records, or 'z' for ranges that are gone or read as zeros.
//
// Whole-object diffing (rbd_diff_iterate2's whole_object) is used only when asked for and the
// image has fast-diff with a valid map at the snapshot: then librbd answers from the object maps
// without asking the OSDs, at the price of whole 4 MiB objects in the stream for any change in
// them. Without fast-diff librbd would list every object's snapshots anyway, so it is off.
class ExportDiffBaton : public ImageBaton {
 public:
  ExportDiffBaton(std::string pool, std::string image, std::string fromSnap, std::string toSnap, StreamEnd target, bool wholeObject)
      : ImageBaton(std::move(pool), std::move(image), toSnap),
        fromSnap_(std::move(fromSnap)),
        toSnap_(std::move(toSnap)),
        target_(std::move(target)),
        wholeObjectAsked_(wholeObject) {}
  const char* Name() const override { return "rbd_diff_iterate2"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  bool Export(rbd_image_t image, int fd);
  std::string fromSnap_, toSnap_;
  StreamEnd target_;
  bool wholeObjectAsked_;
  bool wholeObject_ = false;
  uint64_t size_ = 0, streamBytes_ = 0, dataBytes_ = 0, zeroBytes_ = 0, writeRecords_ = 0, zeroRecords_ = 0, extents_ = 0;
};

// applyDiff: checks a file's whole stream first (so a corrupt or truncated file changes nothing),
// then rbd_open, rbd_snap_exists for the start snapshot (it must exist) and the end snapshot (it
// must not), rbd_resize2 to the stream's size, rbd_aio_write2 / rbd_aio_write_zeroes for each
// record (data that is all zeros is written as zeros, which leaves the image thin), rbd_flush and
// rbd_snap_create of the end snapshot. From a pipe the stream can only be checked as it is applied:
// a bad record then stops it with the head partly written and the end snapshot not made.
class ApplyDiffBaton : public ImageBaton {
 public:
  ApplyDiffBaton(std::string pool, std::string image, StreamEnd source)
      : ImageBaton(std::move(pool), std::move(image)), source_(std::move(source)) {}
  const char* Name() const override { return "rbd_open"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  bool Apply(rbd_image_t image, int fd, bool seekable, uint64_t streamSize);
  StreamEnd source_;
  diff::Summary summary_;
  bool checkedFirst_ = false;
};

// inspectDiff: reads a whole stream and checks it (diff::Check) without touching any image.
class InspectDiffBaton : public Baton {
 public:
  explicit InspectDiffBaton(StreamEnd source) : source_(std::move(source)) {}
  const char* Name() const override { return "rbd_diff_v1"; }
  void Run(ClusterCore& core) override;
  Napi::Value Result(Napi::Env env) override;

 private:
  StreamEnd source_;
  diff::Summary summary_;
};

}  // namespace volplugin
