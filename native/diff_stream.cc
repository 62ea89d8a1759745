#include "diff_stream.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace volplugin {
namespace diff {

namespace {

void PutLe32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

void PutLe64(char* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t GetLe32(const unsigned char* in) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | in[i];
  return v;
}

uint64_t GetLe64(const unsigned char* in) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | in[i];
  return v;
}

std::string At(uint64_t position) { return " at byte " + std::to_string(position); }

std::string TagName(uint8_t tag) {
  if (tag >= 0x20 && tag < 0x7f) return std::string("'") + static_cast<char>(tag) + "'";
  return "0x" + std::to_string(tag);
}

int Bad(std::string* why, const std::string& text) {
  *why = text;
  return -EBADMSG;
}

}  // namespace

// --- Writer ---

int Writer::WriteAll(const void* a, size_t aLength, const void* b, size_t bLength) {
  struct iovec iov[2] = {{const_cast<void*>(a), aLength}, {const_cast<void*>(b), bLength}};
  int count = b != nullptr && bLength > 0 ? 2 : 1;
  struct iovec* v = iov;
  while (count > 0) {
    // writev(2): a record's header and its data in one call; loops over short writes (pipes).
    ssize_t n = writev(fd_, v, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    bytes_ += static_cast<uint64_t>(n);
    size_t left = static_cast<size_t>(n);
    while (count > 0 && left >= v->iov_len) {
      left -= v->iov_len;
      ++v;
      --count;
    }
    if (count > 0) {
      v->iov_base = static_cast<char*>(v->iov_base) + left;
      v->iov_len -= left;
    }
  }
  return 0;
}

int Writer::Header(const std::string& fromSnap, const std::string& toSnap, uint64_t size) {
  std::string out(kBanner, kBannerLength);
  auto name = [&out](uint8_t tag, const std::string& value) {
    char head[5];
    head[0] = static_cast<char>(tag);
    PutLe32(head + 1, static_cast<uint32_t>(value.size()));
    out.append(head, sizeof head);
    out.append(value);
  };
  if (!fromSnap.empty()) name(kFromSnap, fromSnap);
  if (!toSnap.empty()) name(kToSnap, toSnap);
  char s[9];
  s[0] = static_cast<char>(kSize);
  PutLe64(s + 1, size);
  out.append(s, sizeof s);
  return WriteAll(out.data(), out.size());
}

int Writer::Write(uint64_t offset, const char* data, uint64_t length) {
  char head[17];
  head[0] = static_cast<char>(kWrite);
  PutLe64(head + 1, offset);
  PutLe64(head + 9, length);
  return WriteAll(head, sizeof head, data, static_cast<size_t>(length));
}

int Writer::Zero(uint64_t offset, uint64_t length) {
  char head[17];
  head[0] = static_cast<char>(kZero);
  PutLe64(head + 1, offset);
  PutLe64(head + 9, length);
  return WriteAll(head, sizeof head);
}

int Writer::End() {
  char e = static_cast<char>(kEnd);
  return WriteAll(&e, 1);
}

// --- Reader ---

int Reader::ReadExact(void* out, size_t length, const char* what, std::string* why) {
  char* p = static_cast<char*>(out);
  size_t got = 0;
  const uint64_t start = bytes_;
  while (got < length) {
    // read(2) until `length` bytes or the end of the stream.
    ssize_t n = read(fd_, p + got, length - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      *why = std::string("reading ") + what + At(start) + ": " + strerror(errno);
      return -errno;
    }
    if (n == 0) {
      return Bad(why, std::string("truncated diff stream: ") + what + At(start) + " needs " + std::to_string(length) +
                          " bytes, the stream ends after " + std::to_string(got));
    }
    got += static_cast<size_t>(n);
    bytes_ += static_cast<uint64_t>(n);
  }
  return 0;
}

int Reader::Skip(uint64_t length, const char* what, std::string* why) {
  if (seekable_) {
    // fstat(2) first: lseek(2) past the end succeeds, a truncated file must not.
    struct stat st {};
    if (fstat(fd_, &st) < 0) return -errno;
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (bytes_ > size || size - bytes_ < length) {
      return Bad(why, std::string("truncated diff stream: ") + what + At(bytes_) + " needs " + std::to_string(length) +
                          " bytes, the stream ends after " + std::to_string(size > bytes_ ? size - bytes_ : 0));
    }
    if (lseek(fd_, static_cast<off_t>(length), SEEK_CUR) < 0) return -errno;
    bytes_ += length;
    return 0;
  }
  char buf[65536];
  while (length > 0) {
    size_t n = length < sizeof buf ? static_cast<size_t>(length) : sizeof buf;
    int r = ReadExact(buf, n, what, why);
    if (r < 0) return r;
    length -= n;
  }
  return 0;
}

int Reader::Remaining(uint64_t* left) {
  struct stat st {};
  if (fstat(fd_, &st) < 0) return -errno;
  off_t here = lseek(fd_, 0, SEEK_CUR);
  if (here < 0) return -errno;
  *left = st.st_size > here ? static_cast<uint64_t>(st.st_size - here) : 0;
  return 0;
}

// --- Parser ---

int Parser::Banner(std::string* why) {
  char banner[kBannerLength];
  int r = reader_.ReadExact(banner, sizeof banner, "the banner", why);
  if (r == -EBADMSG) return Bad(why, "not an rbd diff stream: shorter than its banner");
  if (r < 0) return r;
  if (memcmp(banner, kBannerV2, kBannerLength) == 0) {
    *why = "an `rbd diff v2` stream (from `rbd export --export-format 2`): only v1 (`rbd export-diff`) is supported";
    return -EPROTONOSUPPORT;
  }
  if (memcmp(banner, kBanner, kBannerLength) != 0) return Bad(why, "not an rbd diff stream: the banner is not \"rbd diff v1\\n\"");
  return 0;
}

int Parser::Next(Record* record, std::string* why) {
  *record = Record();
  record->at = reader_.bytes();
  if (ended_) return Bad(why, "record after the end record" + At(record->at));
  uint8_t tag = 0;
  int r = reader_.ReadExact(&tag, 1, "a record tag (the stream has no end record)", why);
  if (r < 0) return r;
  record->tag = tag;
  switch (tag) {
    case kFromSnap:
    case kToSnap: {
      if (sawData_) return Bad(why, TagName(tag) + " record after data records" + At(record->at));
      if ((tag == kFromSnap && summary_.hasFrom) || (tag == kToSnap && summary_.hasTo)) {
        return Bad(why, "second " + TagName(tag) + " record" + At(record->at));
      }
      unsigned char len[4];
      if ((r = reader_.ReadExact(len, 4, "a snapshot name's length", why)) < 0) return r;
      uint32_t n = GetLe32(len);
      if (n == 0 || n > kMaxNameLength) {
        return Bad(why, "snapshot name of " + std::to_string(n) + " bytes in the " + TagName(tag) + " record" + At(record->at));
      }
      record->name.resize(n);
      if ((r = reader_.ReadExact(&record->name[0], n, "a snapshot name", why)) < 0) return r;
      if (record->name.find('\0') != std::string::npos) return Bad(why, "snapshot name with a NUL byte" + At(record->at));
      if (tag == kFromSnap) {
        summary_.hasFrom = true;
        summary_.fromSnap = record->name;
      } else {
        summary_.hasTo = true;
        summary_.toSnap = record->name;
      }
      return 0;
    }
    case kSize: {
      if (sawData_) return Bad(why, "size record after data records" + At(record->at));
      if (sawSize_) return Bad(why, "second size record" + At(record->at));
      unsigned char v[8];
      if ((r = reader_.ReadExact(v, 8, "the image size", why)) < 0) return r;
      record->size = GetLe64(v);
      if (record->size > kMaxImageSize) return Bad(why, "image size of " + std::to_string(record->size) + " bytes" + At(record->at));
      sawSize_ = true;
      summary_.size = record->size;
      return 0;
    }
    case kWrite:
    case kZero: {
      if (!sawSize_) return Bad(why, "data record before the size record" + At(record->at));
      unsigned char v[16];
      if ((r = reader_.ReadExact(v, 16, "an extent", why)) < 0) return r;
      record->offset = GetLe64(v);
      record->length = GetLe64(v + 8);
      if (record->offset > summary_.size || record->length > summary_.size - record->offset) {
        return Bad(why, TagName(tag) + " record for " + std::to_string(record->length) + " bytes at offset " +
                            std::to_string(record->offset) + " beyond the image size " + std::to_string(summary_.size) +
                            At(record->at));
      }
      sawData_ = true;
      if (tag == kWrite) {
        summary_.writeRecords++;
        summary_.dataBytes += record->length;
      } else {
        summary_.zeroRecords++;
        summary_.zeroBytes += record->length;
      }
      return 0;
    }
    case kEnd:
      ended_ = true;
      summary_.streamBytes = reader_.bytes();
      return 0;
    default:
      return Bad(why, "unknown record tag " + TagName(tag) + At(record->at));
  }
}

int Parser::Finish(std::string* why) {
  if (!ended_) return Bad(why, "the stream has no end record");
  return 0;
}

int Check(Reader& reader, Summary* summary, std::string* why) {
  Parser parser(reader);
  int r = parser.Banner(why);
  if (r < 0) return r;
  Record record;
  do {
    if ((r = parser.Next(&record, why)) < 0) return r;
    if (record.tag == kWrite && (r = reader.Skip(record.length, "the data of a 'w' record", why)) < 0) return r;
  } while (record.tag != kEnd);
  if ((r = parser.Finish(why)) < 0) return r;
  if (reader.seekable()) {
    uint64_t left = 0;
    if ((r = reader.Remaining(&left)) < 0) return r;
    if (left > 0) return Bad(why, std::to_string(left) + " bytes after the end record" + At(reader.bytes()));
  }
  *summary = parser.summary();
  return 0;
}

bool IsZero(const char* data, size_t length) {
  size_t i = 0;
  // Eight bytes at a time (memcpy: no alignment assumptions), then the tail.
  for (; i + 8 <= length; i += 8) {
    uint64_t word;
    memcpy(&word, data + i, 8);
    if (word != 0) return false;
  }
  for (; i < length; ++i) {
    if (data[i] != 0) return false;
  }
  return true;
}

}  // namespace diff
}  // namespace volplugin
