#include "libpersist/image.hpp"

// The checksum is libxxhash's XXH3-64. On x86-64 through the library's
// dispatch, which hashes with the widest vector unit the CPU has (AVX2,
// AVX-512) rather than the SSE2 a copy compiled into this file would be
// limited to: about twice as fast on data in cache. Every variant computes
// the same value.
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#if defined(__x86_64__) && __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h>
#else
#include <xxhash.h>
#endif

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

namespace persim::persist {

namespace {

constexpr char magic[8] = {'P', 'S', 'I', 'M', 'I', 'M', 'G', '1'};

// ---------------------------------------------------------------- writing

// A large run of bytes (a region, a big field) is copied and hashed a block at
// a time: the copy reads the block from memory, which brings it into cache,
// and the checksum then reads it from there. The image is written in one pass
// over memory rather than two. Measured on the benchmark machine (64 MiB, two
// runs of a scratch benchmark, dispatched XXH3): copy then hash in 64 KiB
// blocks 1.07x and 1.31x a memcpy's time, hash then copy in 16 KiB blocks (the
// order before) 1.25x and 1.47x. The copy is a plain memcpy of each block:
// non-temporal stores (tried, SSE2 and AVX2) were 10-20% slower.
constexpr std::size_t hash_block_bytes = 64 << 10;

// Writes an image into `buf`, already sized for it, and feeds the checksum as
// it goes: bytes [hashed_, at_) are written but not yet hashed. Every write is
// bounds-checked: should the size given be short, the buffer grows (and the
// caller finds at_ past the size it expected).
class Out {
 public:
  Out(std::vector<std::byte>& buf, XXH3_state_t& hash) : buf_(buf), hash_(hash) {}
  void u8(std::uint8_t v) { le<1>(v); }
  void u16(std::uint16_t v) { le<2>(v); }
  void u32(std::uint32_t v) { le<4>(v); }
  void u64(std::uint64_t v) { le<8>(v); }
  void raw(std::span<const std::byte> b) {
    if (b.size() <= hash_block_bytes) {
      if (!b.empty()) std::memcpy(room(b.size()), b.data(), b.size());
      return;
    }
    // Copies each block, then hashes it from the source (in cache now): the
    // same bytes the image holds.
    hash_pending();
    std::byte* to = room(b.size());
    for (std::size_t at = 0; at < b.size(); at += hash_block_bytes) {
      const std::size_t n = std::min(hash_block_bytes, b.size() - at);
      std::memcpy(to + at, b.data() + at, n);
      XXH3_64bits_update(&hash_, b.data() + at, n);
    }
    hashed_ = at_;
  }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    raw(std::as_bytes(std::span(s.data(), s.size())));
  }
  void bytes(std::span<const std::byte> b) {
    u64(b.size());
    raw(b);
  }
  // Feeds the bytes written since the last call to the checksum.
  void hash_pending() {
    XXH3_64bits_update(&hash_, buf_.data() + hashed_, at_ - hashed_);
    hashed_ = at_;
  }
  // The bytes written since the last hash_pending are not part of the checksum
  // (the magic, the checksum field itself).
  void unhashed() { hashed_ = at_; }
  std::size_t written() const { return at_; }

 private:
  std::byte* room(std::size_t n) {
    if (n > buf_.size() - at_) [[unlikely]] buf_.resize(at_ + n);
    std::byte* p = buf_.data() + at_;
    at_ += n;
    return p;
  }
  template <std::size_t N>
  void le(std::uint64_t v) {
    std::byte b[N];
    for (std::size_t i = 0; i < N; ++i) b[i] = static_cast<std::byte>(v >> (8 * i));
    std::memcpy(room(N), b, N);
  }
  std::vector<std::byte>& buf_;
  XXH3_state_t& hash_;
  std::size_t at_ = 0;
  std::size_t hashed_ = 0;
};

// The exact size of an entry's payload (what write_entry writes after the
// kind and the name).
std::size_t payload_bytes(const Entry& e) {
  switch (e.kind) {
    case EntryKind::u64:
    case EntryKind::i64: return 8;
    case EntryKind::bytes:
    case EntryKind::region: return 8 + e.bytes.size();
    case EntryKind::u64s:
    case EntryKind::random: return 4 + 8 * e.numbers.size();
    case EntryKind::strings: {
      std::size_t n = 4;
      for (const auto& [k, v] : e.strings) n += 8 + k.size() + v.size();
      return n;
    }
    case EntryKind::grant: return 0;
    case EntryKind::file: return 4 + e.file.via.size() + 4 + e.file.path.size() + 1 + 8;
    case EntryKind::token: return 16;
  }
  return 0;
}

void write_entry(Out& out, const Entry& e) {
  out.u8(static_cast<std::uint8_t>(e.kind));
  out.str(e.name);
  switch (e.kind) {
    case EntryKind::u64:
    case EntryKind::i64: out.u64(e.number); return;
    case EntryKind::bytes:
    case EntryKind::region: out.bytes(e.bytes); return;
    case EntryKind::u64s:
    case EntryKind::random:
      out.u32(static_cast<std::uint32_t>(e.numbers.size()));
      for (const std::uint64_t n : e.numbers) out.u64(n);
      return;
    case EntryKind::strings:
      out.u32(static_cast<std::uint32_t>(e.strings.size()));
      for (const auto& [k, v] : e.strings) {
        out.str(k);
        out.str(v);
      }
      return;
    case EntryKind::grant: return;
    case EntryKind::file:
      out.str(e.file.via);
      out.str(e.file.path);
      out.u8(e.file.mode);
      out.u64(e.file.offset);
      return;
    case EntryKind::token:
      out.u64(e.token.token);
      out.u64(e.token.next_seq);
      return;
  }
}

std::uint64_t checksum(std::span<const std::byte> image) {
  // Bytes 8..24 (version, flags, reserved, length) and the body: all but the
  // magic and the checksum itself.
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, image.data() + 8, 16);
  XXH3_64bits_update(&state, image.data() + image_header_bytes, image.size() - image_header_bytes);
  return XXH3_64bits_digest(&state);
}

// The exact size of an image's body (what encode writes after the header).
std::size_t body_bytes(const Image& image) {
  std::size_t body = 4 + image.program.size() + 4 + 8 + 4;
  for (const Entry& e : image.entries) body += 1 + 4 + e.name.size() + payload_bytes(e);
  if (image.delta()) {
    body += 8 + 4;
    for (const std::string& name : image.removed) body += 4 + name.size();
  }
  return body;
}

void put_u64_at(std::span<std::byte> buf, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) buf[at + static_cast<std::size_t>(i)] = static_cast<std::byte>(v >> (8 * i));
}

// ---------------------------------------------------------------- reading

class In {
 public:
  In(std::span<const std::byte> b, std::size_t base) : b_(b), base_(base) {}
  bool ok() const { return error_.empty(); }
  std::size_t offset() const { return base_ + at_; }
  std::size_t left() const { return b_.size() - at_; }
  const std::string& error() const { return error_; }
  std::size_t error_offset() const { return error_at_; }

  // n is 1, 2, 4 or 8. Inline: an image is mostly these.
  [[gnu::always_inline]] std::uint64_t le(std::size_t n, const char* what) {
    assert(n <= 8);
    if (!need(n, what)) return 0;
    std::uint64_t v = 0;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(&v, b_.data() + at_, n);
    } else {
      for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(b_[at_ + i]) << (8 * i);
    }
    at_ += n;
    return v;
  }
  std::uint8_t u8(const char* what) { return static_cast<std::uint8_t>(le(1, what)); }
  std::uint32_t u32(const char* what) { return static_cast<std::uint32_t>(le(4, what)); }
  std::uint64_t u64(const char* what) { return le(8, what); }
  std::string str(const char* what, std::size_t max = image_name_bytes_max) {
    std::string s;
    str_into(s, what, max);
    return s;
  }
  // Reads a string into `out` (its storage reused); on an error `out` is unspecified.
  void str_into(std::string& out, const char* what, std::size_t max = image_name_bytes_max) {
    const std::uint32_t n = u32(what);
    if (!ok()) return;
    if (n > max) [[unlikely]] {
      fail(std::string(what) + ": length " + std::to_string(n) + " over " + std::to_string(max));
      return;
    }
    if (!need(n, what)) return;
    out.assign(reinterpret_cast<const char*>(b_.data() + at_), n);
    at_ += n;
  }
  std::vector<std::byte> bytes(const char* what) {
    const std::uint64_t n = u64(what);
    if (!ok() || !need(n, what)) return {};
    std::vector<std::byte> v(b_.begin() + static_cast<std::ptrdiff_t>(at_),
                             b_.begin() + static_cast<std::ptrdiff_t>(at_ + n));
    at_ += n;
    return v;
  }
  // A count of items at least `item_bytes` each: refused if they cannot fit.
  std::uint32_t count(const char* what, std::size_t item_bytes) {
    const std::uint32_t n = u32(what);
    if (ok() && static_cast<std::uint64_t>(n) * item_bytes > left())
      fail(std::string(what) + ": " + std::to_string(n) + " items cannot fit in " + std::to_string(left()) + " bytes");
    return ok() ? n : 0;
  }
  void fail(std::string what) {
    if (!ok()) return;
    error_ = std::move(what);
    error_at_ = offset();
  }

 private:
  [[gnu::always_inline]] bool need(std::uint64_t n, const char* what) {
    if (!ok()) [[unlikely]] return false;
    if (n > left()) [[unlikely]] {
      truncated(n, what);
      return false;
    }
    return true;
  }
  [[gnu::cold, gnu::noinline]] void truncated(std::uint64_t n, const char* what) {
    fail(std::string(what) + ": truncated (needs " + std::to_string(n) + " bytes, " + std::to_string(left()) + " left)");
  }
  std::span<const std::byte> b_;
  std::size_t base_;
  std::size_t at_ = 0;
  std::string error_;
  std::size_t error_at_ = 0;
};

bool known_kind(std::uint8_t k) { return k >= 1 && k <= static_cast<std::uint8_t>(EntryKind::random); }

// What decode promises of an image it accepts: every field within its range
// (counts, names, kinds, a random stream's four words, a delta's base before
// it), and the body exactly as long as encode would write it, so that every
// byte of the input was read as the field encode writes there.
[[maybe_unused]] bool decoded_whole(const Image& image, std::size_t input_bytes) {
  if (image.entries.size() > image_entries_max || image.removed.size() > image_entries_max) return false;
  if (image.program.size() > image_name_bytes_max) return false;
  if (image.delta() && image.base_sequence >= image.sequence) return false;
  if (!image.delta() && !image.removed.empty()) return false;
  for (const Entry& e : image.entries) {
    if (!known_kind(static_cast<std::uint8_t>(e.kind)) || e.name.size() > image_name_bytes_max) return false;
    if (e.kind == EntryKind::random && e.numbers.size() != 4) return false;
  }
  return image_header_bytes + body_bytes(image) == input_bytes;
}

void read_entry(In& in, Entry& e) {
  switch (e.kind) {
    case EntryKind::u64:
    case EntryKind::i64: e.number = in.u64("value"); return;
    case EntryKind::bytes:
    case EntryKind::region: e.bytes = in.bytes("bytes"); return;
    case EntryKind::u64s:
    case EntryKind::random: {
      const std::uint32_t n = in.count("numbers", 8);
      e.numbers.reserve(n);
      for (std::uint32_t i = 0; i < n && in.ok(); ++i) e.numbers.push_back(in.u64("number"));
      if (e.kind == EntryKind::random && in.ok() && n != 4) in.fail("random stream: 4 words expected, got " + std::to_string(n));
      return;
    }
    case EntryKind::strings: {
      const std::uint32_t n = in.count("strings", 8);
      for (std::uint32_t i = 0; i < n && in.ok(); ++i) {
        std::string k = in.str("key", image_bytes_max);
        std::string v = in.str("value", image_bytes_max);
        // In key order, each key once: one state has one encoding.
        if (in.ok() && !e.strings.empty() && k <= e.strings.rbegin()->first) {
          in.fail(k == e.strings.rbegin()->first ? "duplicate key in a map" : "map keys out of order");
          break;
        }
        if (in.ok()) e.strings.emplace_hint(e.strings.end(), std::move(k), std::move(v));
      }
      return;
    }
    case EntryKind::grant: return;
    case EntryKind::file:
      in.str_into(e.file.via, "file grant");
      in.str_into(e.file.path, "file path");
      e.file.mode = in.u8("file mode");
      e.file.offset = in.u64("file offset");
      return;
    case EntryKind::token:
      e.token.token = in.u64("token");
      e.token.next_seq = in.u64("token sequence");
      return;
  }
}

std::string hex(std::span<const std::byte> b) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * b.size());
  for (const std::byte x : b) {
    out.push_back(digits[static_cast<unsigned>(x) >> 4]);
    out.push_back(digits[static_cast<unsigned>(x) & 0xf]);
  }
  return out;
}

}  // namespace

const char* to_string(EntryKind k) noexcept {
  switch (k) {
    case EntryKind::u64: return "u64";
    case EntryKind::i64: return "i64";
    case EntryKind::bytes: return "bytes";
    case EntryKind::u64s: return "u64s";
    case EntryKind::strings: return "strings";
    case EntryKind::region: return "region";
    case EntryKind::grant: return "grant";
    case EntryKind::file: return "file";
    case EntryKind::token: return "token";
    case EntryKind::random: return "random";
  }
  return "unknown";
}

const Entry* Image::find(std::string_view name) const {
  for (const Entry& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

void encode(const Image& image, std::vector<std::byte>& out) {
  assert(image.entries.size() <= image_entries_max);
  const std::size_t body = body_bytes(image);
  // Sized at once and written in place. A buffer reused from an image of the
  // same size (the next checkpoint of the same state) is not cleared first:
  // every byte is written below.
  out.resize(image_header_bytes + body);
  // The checksum covers bytes 8..24 (version, flags, reserved, body length)
  // and the body: it is fed as the image is written, the body length being
  // known in advance.
  XXH3_state_t hash;
  XXH3_64bits_reset(&hash);
  Out w(out, hash);
  w.raw(std::as_bytes(std::span(magic)));
  w.unhashed();
  w.u16(image.delta() ? image_format_version : image_format_version_whole);
  w.u16(image.delta() ? image_flag_delta : 0);
  w.u32(0);
  w.u64(body);
  w.hash_pending();
  w.u64(0);  // checksum, set below
  w.unhashed();
  w.str(image.program);
  w.u32(image.program_version);
  w.u64(image.sequence);
  if (image.delta()) w.u64(image.base_sequence);
  w.u32(static_cast<std::uint32_t>(image.entries.size()));
  for (const Entry& e : image.entries) write_entry(w, e);
  if (image.delta()) {
    w.u32(static_cast<std::uint32_t>(image.removed.size()));
    for (const std::string& name : image.removed) w.str(name);
  }
  w.hash_pending();
  assert(w.written() == image_header_bytes + body);
  if (w.written() != image_header_bytes + body) [[unlikely]] {
    // Not reached (payload_bytes is exact); were it, the length and checksum
    // would still be right, computed again over what was written.
    out.resize(w.written());
    put_u64_at(out, 16, out.size() - image_header_bytes);
    put_u64_at(out, 24, checksum(out));
    return;
  }
  put_u64_at(out, 24, XXH3_64bits_digest(&hash));
}

void reseal(std::span<std::byte> image) {
  assert(image.size() >= image_header_bytes);
  put_u64_at(image, 24, checksum(image));
}

std::vector<std::byte> encode(const Image& image) {
  std::vector<std::byte> out;
  encode(image, out);
  return out;
}

std::string DecodeError::describe() const { return "byte " + std::to_string(offset) + ": " + what; }

namespace {

// The header after the magic: format version, flags, length, checksum. Sets
// `delta` from the flags.
std::optional<DecodeError> check_header(std::span<const std::byte> bytes, bool* delta_out) {
  In header(bytes.subspan(8, 24), 8);
  const std::uint16_t version = static_cast<std::uint16_t>(header.le(2, "format version"));
  const std::uint16_t flags = static_cast<std::uint16_t>(header.le(2, "flags"));
  const std::uint32_t reserved = header.u32("reserved");
  const std::uint64_t length = header.u64("body length");
  const std::uint64_t sum = header.u64("checksum");
  if (version < image_format_version_whole || version > image_format_version)
    return DecodeError{8, "format version " + std::to_string(version) + " (this build reads " +
                              std::to_string(image_format_version_whole) + " to " +
                              std::to_string(image_format_version) + ")"};
  if ((flags & ~image_flag_delta) != 0 || reserved != 0) return DecodeError{10, "unknown flags"};
  const bool delta = (flags & image_flag_delta) != 0;
  *delta_out = delta;
  if (delta && version < 2) return DecodeError{10, "a delta in a format 1 image (deltas are format 2)"};
  if (!delta && version != image_format_version_whole)
    return DecodeError{8, "a whole image in format " + std::to_string(version) + " (whole images are format " +
                              std::to_string(image_format_version_whole) + "; format " +
                              std::to_string(image_format_version) + " is the delta format)"};
  if (length != bytes.size() - image_header_bytes)
    return DecodeError{16, "body length " + std::to_string(length) + " but " +
                               std::to_string(bytes.size() - image_header_bytes) + " bytes follow (torn or truncated)"};
  if (sum != checksum(bytes)) return DecodeError{24, "checksum mismatch (corrupt)"};
  return std::nullopt;
}

// The entries: each with a known kind and a name not seen before. An entry's
// own error is returned whole (naming the entry); others are left in `in`.
std::optional<DecodeError> read_entries(In& in, Image& image) {
  const std::uint32_t n = in.count("entries", 1 + 4);
  if (in.ok() && n > image_entries_max) in.fail("entries: " + std::to_string(n) + " over " + std::to_string(image_entries_max));
  // Duplicate names: a scan of the entries so far while they are few, a set
  // beyond (either finds the first entry whose name came before).
  constexpr std::size_t scan_entries_max = 16;
  std::set<std::string> names;
  image.entries.reserve(std::min<std::size_t>(n, 64));
  for (std::uint32_t i = 0; i < n && in.ok(); ++i) {
    const std::size_t at = in.offset();
    const std::uint8_t kind = in.u8("entry kind");
    // Read in place (an error discards the image).
    Entry& e = image.entries.emplace_back();
    in.str_into(e.name, "entry name");
    if (!in.ok()) break;
    const std::string& name = e.name;
    // Built only for an error.
    auto label = [&] { return "entry " + std::to_string(i) + " '" + name + "'"; };
    if (!known_kind(kind)) {
      in.fail(label() + ": unknown kind " + std::to_string(kind));
      break;
    }
    bool duplicate = false;
    if (n <= scan_entries_max) {
      for (std::size_t j = 0; j + 1 < image.entries.size(); ++j) duplicate = duplicate || image.entries[j].name == name;
    } else {
      duplicate = !names.insert(name).second;
    }
    if (duplicate) {
      in.fail(label() + ": duplicate name");
      break;
    }
    e.kind = static_cast<EntryKind>(kind);
    read_entry(in, e);
    if (!in.ok())
      return DecodeError{in.error_offset(), label() + " (at byte " + std::to_string(at) + "): " + in.error()};
  }
  return std::nullopt;
}

// A delta's removed names: none an entry's, none twice. Errors are left in `in`.
void read_removed(In& in, Image& image) {
  const std::uint32_t m = in.count("removed names", 4);
  if (in.ok() && m > image_entries_max)
    in.fail("removed names: " + std::to_string(m) + " over " + std::to_string(image_entries_max));
  std::set<std::string> seen;  // entry names, then removed ones
  for (const Entry& e : image.entries) seen.insert(e.name);
  image.removed.reserve(std::min<std::size_t>(m, 64));
  for (std::uint32_t i = 0; i < m && in.ok(); ++i) {
    std::string name = in.str("removed name");
    if (!in.ok()) break;
    if (!seen.insert(name).second) {
      in.fail("removed name " + std::to_string(i) + " '" + name + "': also an entry, or removed twice");
      break;
    }
    image.removed.push_back(std::move(name));
  }
}

}  // namespace

std::variant<Image, DecodeError> decode(std::span<const std::byte> bytes) {
  if (bytes.size() < image_header_bytes)
    return DecodeError{0, "truncated header (" + std::to_string(bytes.size()) + " of " +
                              std::to_string(image_header_bytes) + " bytes)"};
  if (std::memcmp(bytes.data(), magic, sizeof magic) != 0) return DecodeError{0, "not a persim image (bad magic)"};
  bool delta = false;
  if (std::optional<DecodeError> e = check_header(bytes, &delta)) return *std::move(e);
  In in(bytes.subspan(image_header_bytes), image_header_bytes);
  Image image;
  in.str_into(image.program, "program name");
  image.program_version = in.u32("program version");
  image.sequence = in.u64("sequence");
  if (delta) {
    const std::size_t at = in.offset();
    image.base_sequence = in.u64("base sequence");
    if (in.ok() && (image.base_sequence == 0 || image.base_sequence >= image.sequence))
      return DecodeError{at, "base sequence " + std::to_string(image.base_sequence) + " of a delta with sequence " +
                                 std::to_string(image.sequence) + " (a base comes before its delta)"};
  }
  if (std::optional<DecodeError> e = read_entries(in, image)) return *std::move(e);
  if (delta && in.ok()) read_removed(in, image);
  if (!in.ok()) return DecodeError{in.error_offset(), in.error()};
  if (in.left() != 0)
    return DecodeError{in.offset(), std::to_string(in.left()) + " bytes after the last " +
                                        (delta ? "removed name" : "entry")};
  assert(image.delta() == delta && decoded_whole(image, bytes.size()));
  return image;
}

namespace {
// An image's entries by name (a delta is computed and applied in n log n, not n^2).
std::map<std::string_view, const Entry*> by_name(const Image& image) {
  std::map<std::string_view, const Entry*> out;
  for (const Entry& e : image.entries) out.emplace(e.name, &e);
  return out;
}
}  // namespace

Image delta_of(const Image& base, const Image& state) {
  assert(!base.delta() && !state.delta() && base.program == state.program && base.sequence < state.sequence);
  Image d;
  d.program = state.program;
  d.program_version = state.program_version;
  d.sequence = state.sequence;
  d.base_sequence = base.sequence;
  const auto in_base = by_name(base), in_state = by_name(state);
  for (const Entry& e : state.entries) {
    const auto was = in_base.find(e.name);
    if (was == in_base.end() || !(*was->second == e)) d.entries.push_back(e);
  }
  for (const Entry& e : base.entries)
    if (!in_state.contains(e.name)) d.removed.push_back(e.name);
  return d;
}

std::variant<Image, std::string> apply_delta(const Image& base, const Image& delta) {
  if (!delta.delta()) return std::string("not a delta");
  if (base.delta()) return "its base, sequence " + std::to_string(base.sequence) + ", is itself a delta";
  if (base.program != delta.program)
    return "its base belongs to program '" + base.program + "', the delta to '" + delta.program + "'";
  if (base.sequence != delta.base_sequence)
    return "its base is sequence " + std::to_string(delta.base_sequence) + ", the image found is sequence " +
           std::to_string(base.sequence);
  Image out;
  out.program = delta.program;
  out.program_version = delta.program_version;
  out.sequence = delta.sequence;
  out.entries.reserve(base.entries.size() + delta.entries.size());
  const auto in_base = by_name(base), in_delta = by_name(delta);
  const std::set<std::string_view> removed(delta.removed.begin(), delta.removed.end());
  for (const std::string& name : delta.removed)
    if (!in_base.contains(name)) return "it removes '" + name + "', which its base does not have";
  for (const Entry& e : base.entries) {
    if (removed.contains(e.name)) continue;
    const auto over = in_delta.find(e.name);
    out.entries.push_back(over != in_delta.end() ? *over->second : e);
  }
  for (const Entry& e : delta.entries)
    if (!in_base.contains(e.name)) out.entries.push_back(e);
  return out;
}

std::string to_json(const Image& image) {
  nlohmann::ordered_json j;
  j["program"] = image.program;
  j["program_version"] = image.program_version;
  j["sequence"] = image.sequence;
  j["format_version"] = image.delta() ? image_format_version : image_format_version_whole;
  if (image.delta()) {
    j["base_sequence"] = image.base_sequence;
    j["removed"] = image.removed;
  }
  nlohmann::ordered_json entries = nlohmann::ordered_json::array();
  for (const Entry& e : image.entries) {
    nlohmann::ordered_json x;
    x["name"] = e.name;
    x["kind"] = to_string(e.kind);
    switch (e.kind) {
      case EntryKind::u64: x["value"] = e.number; break;
      case EntryKind::i64: x["value"] = static_cast<std::int64_t>(e.number); break;
      case EntryKind::bytes:
      case EntryKind::region:
        x["size"] = e.bytes.size();
        x["hex"] = hex(std::span(e.bytes).first(std::min<std::size_t>(e.bytes.size(), 256)));
        if (e.bytes.size() > 256) x["hex_truncated"] = true;
        break;
      case EntryKind::u64s:
      case EntryKind::random: x["values"] = e.numbers; break;
      case EntryKind::strings: x["values"] = e.strings; break;
      case EntryKind::grant: break;
      case EntryKind::file:
        x["via"] = e.file.via;
        x["path"] = e.file.path;
        x["mode"] = e.file.mode;
        x["offset"] = e.file.offset;
        break;
      case EntryKind::token:
        x["token"] = e.token.token;
        x["next_seq"] = e.token.next_seq;
        break;
    }
    entries.push_back(std::move(x));
  }
  j["entries"] = std::move(entries);
  return j.dump(2);
}

}  // namespace persim::persist
