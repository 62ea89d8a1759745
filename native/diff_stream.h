// The `rbd export-diff` stream format, version 1 (what `rbd import-diff` reads), written and read
// over a file descriptor. No librbd here: diff_ops.cc walks and applies images with it.
//
//   "rbd diff v1\n"
//   metadata records, before any data record:
//     'f' le32 length, name      the snapshot the diff starts from (absent: from the beginning)
//     't' le32 length, name      the snapshot it ends at (absent: the head)
//     's' le64 size              the image size at the end
//   data records, in any order (ours are in ascending offset order):
//     'w' le64 offset, le64 length, `length` bytes of data
//     'z' le64 offset, le64 length      a range that reads as zeros
//   'e'                          the end
//
// Integers are little-endian. `rbd import-diff` accepts names up to 4096 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace volplugin {
namespace diff {

constexpr char kBanner[] = "rbd diff v1\n";
constexpr char kBannerV2[] = "rbd diff v2\n";  // inside `rbd export --export-format 2`: refused
constexpr size_t kBannerLength = sizeof(kBanner) - 1;
constexpr size_t kMaxNameLength = 4096;
// Larger than any image librbd creates (RBD's limit is 2^64 - 1 bytes of address space, but a
// stream claiming more than 64 PiB is corrupt rather than ambitious).
constexpr uint64_t kMaxImageSize = uint64_t(1) << 56;

enum Tag : uint8_t {
  kFromSnap = 'f',
  kToSnap = 't',
  kSize = 's',
  kWrite = 'w',
  kZero = 'z',
  kEnd = 'e',
};

// Writes a stream to `fd` (not owned) and counts the bytes. Every method returns 0 or a negative
// errno from write(2).
class Writer {
 public:
  explicit Writer(int fd) : fd_(fd) {}
  int Header(const std::string& fromSnap, const std::string& toSnap, uint64_t size);
  int Write(uint64_t offset, const char* data, uint64_t length);
  int Zero(uint64_t offset, uint64_t length);
  int End();
  uint64_t bytes() const { return bytes_; }

 private:
  int WriteAll(const void* a, size_t aLength, const void* b = nullptr, size_t bLength = 0);
  int fd_;
  uint64_t bytes_ = 0;
};

// Reads a stream from `fd` (not owned) and counts the bytes consumed.
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}
  // 0, or -EBADMSG when the stream ends first (`*why` says where), or read(2)'s errno.
  int ReadExact(void* out, size_t length, const char* what, std::string* why);
  // Skips `length` bytes: lseek(2) on a regular file, else reads them.
  int Skip(uint64_t length, const char* what, std::string* why);
  uint64_t bytes() const { return bytes_; }
  void set_seekable(bool seekable) { seekable_ = seekable; }
  bool seekable() const { return seekable_; }
  // Seekable only: the bytes left after the current position (fstat(2), lseek(2)).
  int Remaining(uint64_t* left);

 private:
  int fd_;
  bool seekable_ = false;
  uint64_t bytes_ = 0;
};

// One record as read; for 'w' the caller then consumes `length` bytes of data.
struct Record {
  uint8_t tag = 0;
  std::string name;     // 'f', 't'
  uint64_t size = 0;    // 's'
  uint64_t offset = 0;  // 'w', 'z'
  uint64_t length = 0;  // 'w', 'z'
  uint64_t at = 0;      // byte position of the record in the stream
};

// What a whole stream says, as Check() finds it.
struct Summary {
  bool hasFrom = false, hasTo = false;
  std::string fromSnap, toSnap;
  uint64_t size = 0;
  uint64_t writeRecords = 0, zeroRecords = 0;
  uint64_t dataBytes = 0;  // bytes of data in 'w' records
  uint64_t zeroBytes = 0;  // bytes of address space in 'z' records
  uint64_t streamBytes = 0;
};

// Validates records as they come: order (metadata first, a size before any data, nothing after
// the end), name lengths, sizes, and data ranges within the image size. Negative errno
// (-EBADMSG for a malformed stream, -EPROTONOSUPPORT for a v2 stream) with `*why` set.
class Parser {
 public:
  explicit Parser(Reader& reader) : reader_(reader) {}
  int Banner(std::string* why);
  // The next record (validated against those before it). After 'e', Finish() checks there is
  // nothing more.
  int Next(Record* record, std::string* why);
  int Finish(std::string* why);
  const Summary& summary() const { return summary_; }

 private:
  Reader& reader_;
  Summary summary_;
  bool sawData_ = false, sawSize_ = false, ended_ = false;
};

// Reads a whole stream (skipping data with lseek when seekable) and checks it: Banner(), Next()
// until 'e', Finish(), and for a file, nothing after the end. The reader is left at the end.
int Check(Reader& reader, Summary* summary, std::string* why);

// True when `length` bytes at `data` are all zero.
bool IsZero(const char* data, size_t length);

}  // namespace diff
}  // namespace volplugin
