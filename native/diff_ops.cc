#include "diff_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

namespace volplugin {

namespace {

// The name errors about the stream's contents carry as their `op`.
constexpr const char* kFormatOp = "rbd_diff_v1";
// Data is read and written in pieces of at most this size; at most this many requests and bytes
// in flight (a 1% change of an image in 4 KiB writes is thousands of small extents: their latency,
// not their size, sets the pace).
constexpr uint64_t kChunk = 4ull << 20;
constexpr size_t kMaxInFlight = 32;
constexpr uint64_t kMaxInFlightBytes = 32ull << 20;
// Objects per rbd_diff_iterate2 call: bounds the extents held in memory at once, and lets the
// reads of one window run while the next one is listed. Whole-object diffs answer from the object
// maps, which every call loads again: one call for the whole image (one extent per object at most).
constexpr uint64_t kWindowObjects = 64;
// 'z' ranges are applied in pieces of at most this size.
constexpr uint64_t kZeroPiece = 1ull << 30;

int NoProgress(uint64_t, uint64_t, void*) { return 0; }

int OpenRetrying(const char* path, int flags, mode_t mode) {
  int fd;
  do {
    fd = open(path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd < 0 ? -errno : fd;
}

// An fd of ours (closed on scope exit) or the caller's (left alone).
class Fd {
 public:
  Fd() = default;
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  void Own(int fd) { fd_ = fd, owned_ = true; }
  void Borrow(int fd) { fd_ = fd, owned_ = false; }
  int get() const { return fd_; }
  // close(2) of an owned fd; its error (a network filesystem reports write-back errors here).
  int Close() {
    if (!owned_ || fd_ < 0) return 0;
    int r = close(fd_);
    fd_ = -1;
    return r < 0 ? -errno : 0;
  }

 private:
  int fd_ = -1;
  bool owned_ = false;
};

// A librbd aio request and its buffer, or a marker: a range to be written as zeros, kept in its
// place among the requests so that records go out in offset order.
struct Aio {
  uint64_t offset = 0, length = 0;
  std::unique_ptr<char[]> buf;
  rbd_completion_t completion = nullptr;
  bool marker = false;
};

// Requests in flight in the order they were issued; waited for in that order. Whole-chunk
// buffers are reused.
class AioQueue {
 public:
  ~AioQueue() { Drain(); }

  // A buffer of `length` (at most kChunk) bytes for the next request.
  std::unique_ptr<char[]> Buffer(uint64_t length) {
    if (length != kChunk || free_.empty()) return std::unique_ptr<char[]>(new char[length]);
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  // rbd_aio_create_completion: a completion nobody is called back on; waited for with WaitFront().
  int Push(Aio aio, const std::function<int(Aio&)>& start) {
    int r = rbd_aio_create_completion(nullptr, nullptr, &aio.completion);
    if (r < 0) return r;
    r = start(aio);
    if (r < 0) {
      rbd_aio_release(aio.completion);
      return r;
    }
    requests_++;
    if (aio.buf) bytes_ += aio.length;  // buffers held; a write_zeroes holds none
    queue_.push_back(std::move(aio));
    return 0;
  }
  void PushMarker(uint64_t offset, uint64_t length) {
    Aio marker;
    marker.offset = offset;
    marker.length = length;
    marker.marker = true;
    queue_.push_back(std::move(marker));
  }
  bool full() const { return requests_ >= kMaxInFlight || bytes_ >= kMaxInFlightBytes; }
  bool empty() const { return queue_.empty(); }
  Aio& front() { return queue_.front(); }
  // rbd_aio_wait_for_complete, rbd_aio_get_return_value, rbd_aio_release of the oldest entry (a
  // marker is done at once and "returns" its length).
  ssize_t WaitFront() {
    Aio& a = queue_.front();
    if (a.marker) return static_cast<ssize_t>(a.length);
    rbd_aio_wait_for_complete(a.completion);
    ssize_t r = rbd_aio_get_return_value(a.completion);
    rbd_aio_release(a.completion);
    a.completion = nullptr;
    return r;
  }
  void PopFront() {
    Aio& a = queue_.front();
    if (!a.marker) {
      requests_--;
      if (a.buf) bytes_ -= a.length;
      if (a.buf && a.length == kChunk && free_.size() < 8) free_.push_back(std::move(a.buf));
    }
    queue_.pop_front();
  }
  // Waits for every request still in flight (their buffers must outlive them); the first error.
  ssize_t Drain() {
    ssize_t first = 0;
    while (!queue_.empty()) {
      ssize_t r = WaitFront();
      if (r < 0 && first == 0) first = r;
      PopFront();
    }
    return first;
  }

 private:
  std::deque<Aio> queue_;
  size_t requests_ = 0;
  uint64_t bytes_ = 0;
  std::vector<std::unique_ptr<char[]>> free_;
};

struct Extent {
  uint64_t offset;
  uint64_t length;
  bool exists;
};

// rbd_diff_iterate2's callback: collects the extents of one window.
int CollectExtent(uint64_t offset, size_t length, int exists, void* arg) {
  static_cast<std::vector<Extent>*>(arg)->push_back({offset, static_cast<uint64_t>(length), exists != 0});
  return 0;
}

void SetNumber(Napi::Object& o, const char* key, uint64_t v) { o.Set(key, Napi::Number::New(o.Env(), static_cast<double>(v))); }

Napi::Object SummaryObject(Napi::Env env, const diff::Summary& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("fromSnapshot", s.hasFrom ? Napi::Value(Napi::String::New(env, s.fromSnap)) : env.Null());
  o.Set("toSnapshot", s.hasTo ? Napi::Value(Napi::String::New(env, s.toSnap)) : env.Null());
  SetNumber(o, "size", s.size);
  SetNumber(o, "streamBytes", s.streamBytes);
  SetNumber(o, "dataBytes", s.dataBytes);
  SetNumber(o, "zeroBytes", s.zeroBytes);
  SetNumber(o, "writeRecords", s.writeRecords);
  SetNumber(o, "zeroRecords", s.zeroRecords);
  return o;
}

// Opens a stream's source for reading: the path (O_RDONLY) or the caller's fd.
int OpenSource(const StreamEnd& source, Fd* fd) {
  if (source.path.empty()) {
    fd->Borrow(source.fd);
    return 0;
  }
  int r = OpenRetrying(source.path.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (r < 0) return r;
  fd->Own(r);
  return 0;
}

}  // namespace

// --- export ---

void ExportDiffBaton::Run(ClusterCore& core) {
  OpenImage image(core);
  if (!OpenHere(core, image, true, toSnap_.empty() ? nullptr : toSnap_.c_str())) return;
  if (!fromSnap_.empty()) {
    bool exists = false;
    // rbd_snap_exists: the start snapshot must be one of the image's (user) snapshots.
    if (!Check(rbd_snap_exists(image.get(), fromSnap_.c_str(), &exists), "rbd_snap_exists")) return;
    if (!exists) {
      Fail(-ENOENT, "rbd_snap_exists", "the start snapshot " + fromSnap_ + " does not exist");
      error.snapshot = fromSnap_;
      return;
    }
  }
  Fd fd;
  bool created = false;
  if (target_.path.empty()) {
    fd.Borrow(target_.fd);
  } else {
    // open(2) O_EXCL: never overwrite a file (an earlier backup); 0600: it holds the volume's data.
    int r = OpenRetrying(target_.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (r < 0) {
      Fail(r, "open", ErrnoText(r) + ": " + target_.path);
      return;
    }
    fd.Own(r);
    created = true;
  }
  bool ok = Export(image.get(), fd.get());
  if (ok) {
    struct stat st {};
    // fsync(2) of a regular file before saying it is complete (a pipe or socket has nothing to sync).
    if (fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) && fsync(fd.get()) < 0) {
      int e = -errno;
      ok = Fail(e, "fsync", ErrnoText(e) + ": " + target_.describe());
    }
  }
  int closed = fd.Close();
  if (ok && closed < 0) ok = Fail(closed, "close", ErrnoText(closed) + ": " + target_.describe());
  // unlink(2): a half-written file must not pass for a backup.
  if (!ok && created) unlink(target_.path.c_str());
  if (ok) CloseHere(image);
}

bool ExportDiffBaton::Export(rbd_image_t image, int fd) {
  rbd_image_info_t info{};
  if (!Check(rbd_stat(image, &info, sizeof info), "rbd_stat")) return false;
  size_ = info.size;
  const uint64_t objectSize = info.obj_size > 0 ? info.obj_size : (1ull << 22);
  if (wholeObjectAsked_) {
    uint64_t features = 0, flags = 0;
    // rbd_get_features / rbd_get_flags (of the snapshot the image is open at).
    if (!Check(rbd_get_features(image, &features), "rbd_get_features")) return false;
    if (!Check(rbd_get_flags(image, &flags), "rbd_get_flags")) return false;
    wholeObject_ = (features & RBD_FEATURE_FAST_DIFF) != 0 && (flags & (RBD_FLAG_FAST_DIFF_INVALID | RBD_FLAG_OBJECT_MAP_INVALID)) == 0;
  }

  diff::Writer writer(fd);
  auto writeFailed = [this](int r) { return Fail(r, "write", ErrnoText(r) + ": " + target_.describe()); };
  int r = writer.Header(fromSnap_, toSnap_, size_);
  if (r < 0) return writeFailed(r);

  // Adjacent zero ranges become one 'z' record.
  uint64_t zeroOffset = 0, zeroLength = 0;
  auto flushZero = [&]() -> int {
    if (zeroLength == 0) return 0;
    int w = writer.Zero(zeroOffset, zeroLength);
    zeroBytes_ += zeroLength;
    zeroRecords_++;
    zeroLength = 0;
    return w;
  };
  auto zero = [&](uint64_t offset, uint64_t length) -> int {
    if (zeroLength > 0 && zeroOffset + zeroLength == offset) {
      zeroLength += length;
      return 0;
    }
    int w = flushZero();
    zeroOffset = offset;
    zeroLength = length;
    return w;
  };

  AioQueue reads;
  // The oldest read: written out as 'w', or as 'z' when it reads as zeros.
  auto retire = [&]() -> bool {
    ssize_t got = reads.WaitFront();
    Aio& a = reads.front();
    if (a.marker) {
      uint64_t end = a.offset + a.length;
      int w = zero(a.offset, a.length);
      reads.PopFront();
      if (w < 0) return writeFailed(w);
      progress.Report(end, size_);
      return true;
    }
    if (got < 0) {
      reads.PopFront();
      return Fail(static_cast<int>(got), "rbd_aio_read2");
    }
    if (static_cast<uint64_t>(got) != a.length) {
      reads.PopFront();
      return Fail(-EIO, "rbd_aio_read2", "short read at offset " + std::to_string(a.offset));
    }
    int w;
    if (diff::IsZero(a.buf.get(), a.length)) {
      w = zero(a.offset, a.length);
    } else {
      w = flushZero();
      if (w == 0) w = writer.Write(a.offset, a.buf.get(), a.length);
      dataBytes_ += a.length;
      writeRecords_++;
    }
    uint64_t end = a.offset + a.length;
    reads.PopFront();
    if (w < 0) return writeFailed(w);
    progress.Report(end, size_);
    return true;
  };

  const uint64_t window = wholeObject_ ? std::max<uint64_t>(size_, 1) : objectSize * kWindowObjects;
  std::vector<Extent> extents;
  progress.Report(0, size_, true);
  for (uint64_t start = 0; start < size_; start += window) {
    const uint64_t length = std::min(window, size_ - start);
    extents.clear();
    // rbd_diff_iterate2: what changed since fromSnap (NULL: everything allocated) in this window;
    // include_parent=1 so that a clone's full export carries its parent's data.
    r = rbd_diff_iterate2(image, fromSnap_.empty() ? nullptr : fromSnap_.c_str(), start, length, 1, wholeObject_ ? 1 : 0,
                          CollectExtent, &extents);
    if (r < 0) return Fail(r, "rbd_diff_iterate2");
    std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) { return a.offset < b.offset; });
    extents_ += extents.size();
    for (const Extent& e : extents) {
      if (progress.cancelled.load()) return Fail(-ECANCELED, "rbd_diff_iterate2", "cancelled by the progress callback");
      if (!e.exists) {
        // In its place among the reads: records go out in offset order.
        reads.PushMarker(e.offset, e.length);
        continue;
      }
      for (uint64_t off = e.offset, end = e.offset + e.length; off < end;) {
        // Pieces end on chunk boundaries, so that reads line up with objects.
        uint64_t piece = std::min(end - off, kChunk - off % kChunk);
        while (reads.full()) {
          if (!retire()) return false;
        }
        Aio aio;
        aio.offset = off;
        aio.length = piece;
        aio.buf = reads.Buffer(piece);
        r = reads.Push(std::move(aio), [image](Aio& a) {
          // rbd_aio_read2: sequential, and no need to keep it in the OSD's cache.
          return rbd_aio_read2(image, a.offset, static_cast<size_t>(a.length), a.buf.get(), a.completion,
                               LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL | LIBRADOS_OP_FLAG_FADVISE_NOCACHE);
        });
        if (r < 0) return Fail(r, "rbd_aio_read2");
        off += piece;
      }
    }
  }
  while (!reads.empty()) {
    if (!retire()) return false;
  }
  if ((r = flushZero()) < 0) return writeFailed(r);
  if ((r = writer.End()) < 0) return writeFailed(r);
  streamBytes_ = writer.bytes();
  progress.Report(size_, size_, true);
  return true;
}

Napi::Value ExportDiffBaton::Result(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("fromSnapshot", fromSnap_.empty() ? env.Null() : Napi::Value(Napi::String::New(env, fromSnap_)));
  o.Set("toSnapshot", toSnap_.empty() ? env.Null() : Napi::Value(Napi::String::New(env, toSnap_)));
  SetNumber(o, "size", size_);
  SetNumber(o, "streamBytes", streamBytes_);
  SetNumber(o, "dataBytes", dataBytes_);
  SetNumber(o, "zeroBytes", zeroBytes_);
  SetNumber(o, "writeRecords", writeRecords_);
  SetNumber(o, "zeroRecords", zeroRecords_);
  SetNumber(o, "extents", extents_);
  o.Set("wholeObject", Napi::Boolean::New(env, wholeObject_));
  return o;
}

// --- apply ---

void ApplyDiffBaton::Run(ClusterCore& core) {
  Fd fd;
  int r = OpenSource(source_, &fd);
  if (r < 0) {
    Fail(r, "open", ErrnoText(r) + ": " + source_.describe());
    return;
  }
  struct stat st {};
  if (fstat(fd.get(), &st) < 0) {
    int e = -errno;
    Fail(e, "fstat", ErrnoText(e) + ": " + source_.describe());
    return;
  }
  const bool seekable = S_ISREG(st.st_mode);
  uint64_t streamSize = 0;
  if (seekable) {
    // A file is checked whole before the image is touched: a corrupt or truncated one changes nothing.
    off_t start = lseek(fd.get(), 0, SEEK_CUR);
    if (start < 0) {
      int e = -errno;
      Fail(e, "lseek", ErrnoText(e) + ": " + source_.describe());
      return;
    }
    diff::Reader reader(fd.get());
    reader.set_seekable(true);
    std::string why;
    r = diff::Check(reader, &summary_, &why);
    if (r < 0) {
      Fail(r, kFormatOp, why + " (" + source_.describe() + ")");
      return;
    }
    streamSize = reader.bytes();
    if (lseek(fd.get(), start, SEEK_SET) < 0) {
      int e = -errno;
      Fail(e, "lseek", ErrnoText(e) + ": " + source_.describe());
      return;
    }
    checkedFirst_ = true;
  }
  OpenImage image(core);
  if (!OpenHere(core, image, false)) return;
  if (!Apply(image.get(), fd.get(), seekable, streamSize)) return;
  CloseHere(image);
}

bool ApplyDiffBaton::Apply(rbd_image_t image, int fd, bool seekable, uint64_t streamSize) {
  diff::Reader reader(fd);
  reader.set_seekable(seekable);
  diff::Parser parser(reader);
  std::string why;
  auto streamFailed = [&](int r) {
    std::string state = checkedFirst_ ? "" : "; the image's head may be partly written (its snapshots are untouched)";
    return Fail(r, kFormatOp, why + " (" + source_.describe() + ")" + state);
  };
  int r = parser.Banner(&why);
  if (r < 0) return streamFailed(r);

  AioQueue writes;
  // Waits for the oldest write; its error is the operation's.
  auto retire = [&]() -> bool {
    ssize_t got = writes.WaitFront();
    bool zeroes = !writes.front().buf;
    writes.PopFront();
    if (got < 0) return Fail(static_cast<int>(got), zeroes ? "rbd_aio_write_zeroes" : "rbd_aio_write2");
    return true;
  };
  auto issue = [&](uint64_t offset, uint64_t length, std::unique_ptr<char[]> data) -> bool {
    while (writes.full()) {
      if (!retire()) return false;
    }
    Aio aio;
    aio.offset = offset;
    aio.length = length;
    aio.buf = std::move(data);
    bool zeroes = !aio.buf;
    int s = writes.Push(std::move(aio), [image](Aio& a) {
      // rbd_aio_write_zeroes: a range that must read as zeros (whole objects are deallocated);
      // rbd_aio_write2: data, not worth keeping in the OSD's cache.
      if (!a.buf) return rbd_aio_write_zeroes(image, a.offset, static_cast<size_t>(a.length), a.completion, 0, LIBRADOS_OP_FLAG_FADVISE_NOCACHE);
      return rbd_aio_write2(image, a.offset, static_cast<size_t>(a.length), a.buf.get(), a.completion, LIBRADOS_OP_FLAG_FADVISE_NOCACHE);
    });
    if (s < 0) return Fail(s, zeroes ? "rbd_aio_write_zeroes" : "rbd_aio_write2");
    return true;
  };

  bool prepared = false;
  // Once every metadata record is in (at the first data record or the end): the start snapshot
  // must exist, the end snapshot must not, and the image takes the stream's size.
  auto prepare = [&]() -> bool {
    prepared = true;
    const diff::Summary& s = parser.summary();
    bool exists = false;
    if (s.hasFrom) {
      snapshot_ = s.fromSnap;
      // rbd_snap_exists.
      if (!Check(rbd_snap_exists(image, s.fromSnap.c_str(), &exists), "rbd_snap_exists")) return false;
      if (!exists) return Fail(-ENOENT, "rbd_snap_exists", "the diff starts at snapshot " + s.fromSnap + ", which the image does not have");
    }
    if (s.hasTo) {
      snapshot_ = s.toSnap;
      if (!Check(rbd_snap_exists(image, s.toSnap.c_str(), &exists), "rbd_snap_exists")) return false;
      if (exists) return Fail(-EEXIST, "rbd_snap_exists", "the diff ends at snapshot " + s.toSnap + ", which the image already has");
    }
    snapshot_.clear();
    uint64_t current = 0;
    // rbd_get_size / rbd_resize2 (shrinking allowed: the stream says what the size was).
    if (!Check(rbd_get_size(image, &current), "rbd_get_size")) return false;
    if (current != s.size && !Check(rbd_resize2(image, s.size, true, NoProgress, nullptr), "rbd_resize2")) return false;
    return true;
  };
  auto report = [&](uint64_t dataEnd) {
    if (seekable) progress.Report(reader.bytes(), streamSize);
    else progress.Report(dataEnd, parser.summary().size);
  };

  diff::Record record;
  bool ok = true;
  do {
    if (progress.cancelled.load()) {
      ok = Fail(-ECANCELED, kFormatOp, "cancelled by the progress callback");
      break;
    }
    r = parser.Next(&record, &why);
    if (r < 0) {
      ok = streamFailed(r);
      break;
    }
    bool data = record.tag == diff::kWrite || record.tag == diff::kZero;
    if ((data || record.tag == diff::kEnd) && !prepared && !(ok = prepare())) break;
    if (record.tag == diff::kZero) {
      for (uint64_t off = record.offset, end = record.offset + record.length; ok && off < end;) {
        uint64_t piece = std::min(end - off, kZeroPiece);
        ok = issue(off, piece, nullptr);
        off += piece;
      }
      report(record.offset + record.length);
    } else if (record.tag == diff::kWrite) {
      for (uint64_t off = record.offset, end = record.offset + record.length; ok && off < end;) {
        uint64_t piece = std::min(end - off, kChunk);
        std::unique_ptr<char[]> buf = writes.Buffer(piece);
        r = reader.ReadExact(buf.get(), static_cast<size_t>(piece), "the data of a 'w' record", &why);
        if (r < 0) {
          ok = streamFailed(r);
          break;
        }
        // All zeros: written as zeros, so that the target stays thin.
        if (diff::IsZero(buf.get(), static_cast<size_t>(piece))) buf.reset();
        ok = issue(off, piece, std::move(buf));
        off += piece;
      }
      report(record.offset + record.length);
    }
  } while (ok && record.tag != diff::kEnd);
  ssize_t drained = writes.Drain();
  if (!ok) return false;
  if (drained < 0) return Fail(static_cast<int>(drained), "rbd_aio_write2");
  summary_ = parser.summary();
  summary_.streamBytes = reader.bytes();
  // rbd_flush: everything written is on the OSDs before the snapshot is taken.
  if (!Check(rbd_flush(image), "rbd_flush")) return false;
  if (summary_.hasTo) {
    snapshot_ = summary_.toSnap;
    // rbd_snap_create: the end snapshot, as `rbd import-diff` makes it; the chain goes on from it.
    if (!Check(rbd_snap_create(image, summary_.toSnap.c_str()), "rbd_snap_create")) return false;
    snapshot_.clear();
  }
  progress.Report(seekable ? streamSize : summary_.size, seekable ? streamSize : summary_.size, true);
  return true;
}

Napi::Value ApplyDiffBaton::Result(Napi::Env env) { return SummaryObject(env, summary_); }

// --- inspect ---

void InspectDiffBaton::Run(ClusterCore&) {
  auto fail = [this](int r, const char* op, const std::string& detail) {
    error.code = r;
    error.op = op;
    error.detail = detail;
  };
  Fd fd;
  int r = OpenSource(source_, &fd);
  if (r < 0) return fail(r, "open", ErrnoText(r) + ": " + source_.describe());
  struct stat st {};
  if (fstat(fd.get(), &st) < 0) {
    int e = -errno;
    return fail(e, "fstat", ErrnoText(e) + ": " + source_.describe());
  }
  diff::Reader reader(fd.get());
  reader.set_seekable(S_ISREG(st.st_mode));
  std::string why;
  r = diff::Check(reader, &summary_, &why);
  if (r < 0) return fail(r, kFormatOp, why + " (" + source_.describe() + ")");
}

Napi::Value InspectDiffBaton::Result(Napi::Env env) { return SummaryObject(env, summary_); }

}  // namespace volplugin
