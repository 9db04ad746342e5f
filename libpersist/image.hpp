// The checkpoint image: what a process writes of itself. Versioned, portable
// (little-endian fixed-width fields, no pointers, no handle values) and
// checksummed. It names capabilities only by manifest grant name, or by the
// request that obtained them ("opened x through grant data, mode w, offset
// 4096"); capability bits never appear.
//
// Layout (all integers little-endian):
//   0   8  magic "PSIMIMG1"
//   8   2  format version: 1 for a whole image, 2 for a delta (readers of
//          format 1 refuse a delta rather than misread it)
//   10  2  flags: image_flag_delta on a delta, else 0
//   12  4  reserved (0)
//   16  8  body length in bytes
//   24  8  XXH3-64 of bytes 8..24 and the body
//   32     body: str program, u32 program version, u64 sequence, [delta: u64
//          base sequence], u32 entry count, then each entry: u8 kind, str
//          name, payload (by kind), [delta: u32 count, that many str: the
//          names of the base's entries the state no longer has]
// A str is a u32 length and that many bytes.
//
// Incremental images: a delta holds only the entries that differ from those
// of a whole image (its base, named by sequence number); the state is the
// base with the delta's entries put over it (apply_delta). Every delta of a
// chain is against the same whole image, never against another delta, so a
// restore reads two images at most.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace persim::persist {

inline constexpr std::uint16_t image_format_version = 2;       // the newest this build writes and reads
inline constexpr std::uint16_t image_format_version_whole = 1;  // what a whole image is written as
inline constexpr std::uint16_t image_flag_delta = 1;
inline constexpr std::size_t image_header_bytes = 32;
inline constexpr std::size_t image_name_bytes_max = 256;      // program, entry, grant and path names
inline constexpr std::size_t image_entries_max = 1 << 16;
inline constexpr std::uint64_t image_bytes_max = 1ull << 32;   // one image, whole

enum class EntryKind : std::uint8_t {
  u64 = 1,      // number
  i64 = 2,      // number (two's complement)
  bytes = 3,    // bytes (strings too)
  u64s = 4,     // numbers
  strings = 5,  // a string-to-string map, in key order
  region = 6,   // bytes of a fixed-size region
  grant = 7,    // a manifest grant the program holds (by name only)
  file = 8,     // a file session, by the request that opened it
  token = 9,    // an idempotency token of a session, and the next sequence number
  random = 10,  // the state of a persisted random stream: numbers (4 words)
};
const char* to_string(EntryKind k) noexcept;

// A file session as the request that obtained it: opened through grant `via`
// (the grant itself when `path` is empty, else a directory grant and a path
// relative to it), with `mode`, at `offset`.
struct FileRecord {
  std::string via;
  std::string path;
  std::uint8_t mode = 0;
  std::uint64_t offset = 0;
  bool operator==(const FileRecord&) const = default;
};

struct TokenRecord {
  std::uint64_t token = 0;
  std::uint64_t next_seq = 1;
  bool operator==(const TokenRecord&) const = default;
};

struct Entry {
  EntryKind kind = EntryKind::u64;
  std::string name;
  std::uint64_t number = 0;
  std::vector<std::byte> bytes;
  std::vector<std::uint64_t> numbers;
  std::map<std::string, std::string> strings;
  FileRecord file;
  TokenRecord token;
  bool operator==(const Entry&) const = default;
};

struct Image {
  std::string program;
  std::uint32_t program_version = 0;
  std::uint64_t sequence = 0;  // checkpoints the program has taken, this one included
  std::vector<Entry> entries;  // names unique
  // A delta: the sequence of its whole base image (0: this is a whole image),
  // and the names of the base's entries the state no longer has.
  std::uint64_t base_sequence = 0;
  std::vector<std::string> removed;
  bool delta() const { return base_sequence != 0; }
  const Entry* find(std::string_view name) const;
  bool operator==(const Image&) const = default;
};

// Encodes into `out` (replaced). Precondition: names within image_name_bytes_max,
// entries within image_entries_max.
void encode(const Image& image, std::vector<std::byte>& out);
std::vector<std::byte> encode(const Image& image);

// Where a decode failed and why: "byte 57: entry 3 'count': truncated".
struct DecodeError {
  std::size_t offset = 0;
  std::string what;
  std::string describe() const;
};

// Checks everything: magic, format version, length, checksum, every length
// prefix, every kind, duplicate names, trailing bytes. Never reads out of
// bounds, never yields a partial image.
std::variant<Image, DecodeError> decode(std::span<const std::byte> bytes);

// Recomputes the checksum of an encoded image (at least a header long) whose
// bytes were changed: for tests and fuzzing, to reach the checks behind the
// checksum. Never used on what a program writes.
void reseal(std::span<std::byte> image);

// The delta of `state` against the whole image `base`: its entries that are
// new or differ, and the names of base's that it lacks. Preconditions: base
// is whole; state is whole, of the same program, with a later sequence.
Image delta_of(const Image& base, const Image& state);

// The state a delta stands for: `base` with the delta's entries put over it
// and its removed names taken out, in base order then new names in delta
// order. An error, naming what, if `base` is not the delta's base (a delta
// itself, another program or another sequence) or the delta removes a name
// the base lacks.
std::variant<Image, std::string> apply_delta(const Image& base, const Image& delta);

// The image as JSON (persim inspect): entries by name, bytes as hex.
std::string to_json(const Image& image);

}  // namespace persim::persist
