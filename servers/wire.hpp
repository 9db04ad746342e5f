// The payload encoding every server protocol uses: little-endian fixed-width
// integers and length-prefixed byte strings, packed into a Message's bytes.
// Reading is bounds-checked and the first failure sticks, so a server decodes a
// whole request and then asks once whether it was well formed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/message.hpp"

namespace persim::servers::wire {

using kernel::Message;
using kernel::msg_bytes_max;

// Appends to a message's payload. If something does not fit, nothing more is
// written and ok() turns false; the message then must not be sent.
class Writer {
 public:
  explicit Writer(Message& m) : m_(m) { m_.length = 0; }

  Writer& u8(std::uint8_t v) { return put_le(v, 1); }
  Writer& u32(std::uint32_t v) { return put_le(v, 4); }
  Writer& u64(std::uint64_t v) { return put_le(v, 8); }
  Writer& i64(std::int64_t v) { return put_le(static_cast<std::uint64_t>(v), 8); }
  // A u32 length, then the bytes.
  Writer& bytes(std::span<const std::byte> b) {
    if (b.size() > msg_bytes_max) ok_ = false;
    u32(static_cast<std::uint32_t>(b.size()));
    if (!ok_ || m_.length + b.size() > msg_bytes_max) return fail();
    if (!b.empty()) std::memcpy(m_.data.data() + m_.length, b.data(), b.size());
    m_.length += static_cast<std::uint32_t>(b.size());
    return *this;
  }
  Writer& str(std::string_view s) { return bytes(std::as_bytes(std::span(s.data(), s.size()))); }

  bool ok() const { return ok_; }
  // Payload bytes still free.
  std::size_t room() const { return msg_bytes_max - m_.length; }

 private:
  Writer& put_le(std::uint64_t v, std::size_t n) {
    if (!ok_ || m_.length + n > msg_bytes_max) return fail();
    for (std::size_t i = 0; i < n; ++i) m_.data[m_.length + i] = static_cast<std::byte>(v >> (8 * i));
    m_.length += static_cast<std::uint32_t>(n);
    return *this;
  }
  Writer& fail() {
    ok_ = false;
    return *this;
  }
  Message& m_;
  bool ok_ = true;
};

// Reads a message's payload in order. A read past the end, or a length prefix
// larger than what remains, fails; every later read fails too and yields zero
// or empty.
class Reader {
 public:
  explicit Reader(const Message& m) : data_(m.data.data()), size_(m.length <= msg_bytes_max ? m.length : 0) {}

  std::uint8_t u8() { return static_cast<std::uint8_t>(get_le(1)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(get_le(4)); }
  std::uint64_t u64() { return get_le(8); }
  std::int64_t i64() { return static_cast<std::int64_t>(get_le(8)); }
  // A view into the message: valid while the message is unchanged.
  std::span<const std::byte> bytes() {
    const std::uint32_t n = u32();
    if (!ok_ || n > size_ - at_) {
      ok_ = false;
      return {};
    }
    const std::span<const std::byte> out(data_ + at_, n);
    at_ += n;
    return out;
  }
  std::string_view str() {
    const std::span<const std::byte> b = bytes();
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }

  bool ok() const { return ok_; }
  // Well formed and fully consumed: what a request decoder checks at the end.
  bool done() const { return ok_ && at_ == size_; }

 private:
  std::uint64_t get_le(std::size_t n) {
    if (!ok_ || n > size_ - at_) {
      ok_ = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(data_[at_ + i]) << (8 * i);
    at_ += n;
    return v;
  }
  const std::byte* data_;
  std::size_t size_;
  std::size_t at_ = 0;
  bool ok_ = true;
};

// A canonical byte encoding of a value built piece by piece (a server's whole
// state, for byte-for-byte comparison): u64 little-endian, length-prefixed bytes.
class Encoder {
 public:
  Encoder& u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<std::byte>(v >> (8 * i)));
    return *this;
  }
  Encoder& bytes(std::span<const std::byte> b) {
    u64(b.size());
    out_.insert(out_.end(), b.begin(), b.end());
    return *this;
  }
  Encoder& str(std::string_view s) { return bytes(std::as_bytes(std::span(s.data(), s.size()))); }
  std::vector<std::byte> take() { return std::move(out_); }

 private:
  std::vector<std::byte> out_;
};

// A request with its operation set.
template <class Op>
Message request(Op op) {
  Message m;  // only `length` bytes are used: the rest need no zeroing
  m.label = static_cast<std::uint64_t>(op);
  return m;
}

}  // namespace persim::servers::wire
