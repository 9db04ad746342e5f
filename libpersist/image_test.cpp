// The image format: round trips, and every damage refused with a clear error.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <set>

#include "libpersist/image.hpp"

namespace persim::persist {

void showValue(const Image& image, std::ostream& os) { os << to_json(image); }

namespace {

rc::Gen<std::string> names() {
  return rc::gen::resize(12, rc::gen::nonEmpty(rc::gen::container<std::string>(rc::gen::inRange<char>('a', 'z' + 1))));
}

rc::Gen<std::vector<std::byte>> byte_strings() {
  return rc::gen::map(rc::gen::container<std::vector<std::uint8_t>>(rc::gen::arbitrary<std::uint8_t>()),
                      [](const std::vector<std::uint8_t>& v) {
                        std::vector<std::byte> b(v.size());
                        for (std::size_t i = 0; i < v.size(); ++i) b[i] = static_cast<std::byte>(v[i]);
                        return b;
                      });
}

Entry random_entry(std::string name) {
  Entry e;
  e.name = std::move(name);
  e.kind = *rc::gen::element(EntryKind::u64, EntryKind::i64, EntryKind::bytes, EntryKind::u64s, EntryKind::strings,
                             EntryKind::region, EntryKind::grant, EntryKind::file, EntryKind::token, EntryKind::random);
  switch (e.kind) {
    case EntryKind::u64:
    case EntryKind::i64: e.number = *rc::gen::arbitrary<std::uint64_t>(); break;
    case EntryKind::bytes:
    case EntryKind::region: e.bytes = *byte_strings(); break;
    case EntryKind::u64s: e.numbers = *rc::gen::arbitrary<std::vector<std::uint64_t>>(); break;
    case EntryKind::random: e.numbers = *rc::gen::container<std::vector<std::uint64_t>>(4, rc::gen::arbitrary<std::uint64_t>()); break;
    case EntryKind::strings: e.strings = *rc::gen::container<std::map<std::string, std::string>>(names(), names()); break;
    case EntryKind::grant: break;
    case EntryKind::file:
      e.file = FileRecord{*names(), *names(), *rc::gen::arbitrary<std::uint8_t>(), *rc::gen::arbitrary<std::uint64_t>()};
      break;
    case EntryKind::token:
      e.token = TokenRecord{*rc::gen::arbitrary<std::uint64_t>(), *rc::gen::arbitrary<std::uint64_t>()};
      break;
  }
  return e;
}

Image random_image() {
  Image image;
  image.program = *names();
  image.program_version = *rc::gen::arbitrary<std::uint32_t>();
  image.sequence = *rc::gen::arbitrary<std::uint64_t>();
  const auto entry_names = *rc::gen::container<std::set<std::string>>(names());
  for (const std::string& n : entry_names) image.entries.push_back(random_entry(n));
  return image;
}

// Property: decode(encode(image)) is the image.
RC_GTEST_PROP(Image, RoundTrips, ()) {
  const Image image = random_image();
  const auto decoded = decode(encode(image));
  RC_ASSERT(std::holds_alternative<Image>(decoded));
  RC_ASSERT(std::get<Image>(decoded) == image);
}

// Property: any truncation and any flipped bit is refused with an error,
// never a crash or an image. (Exhaustive over positions for the image drawn.)
RC_GTEST_PROP(Image, EveryTruncationAndBitFlipIsRefused, ()) {
  const std::vector<std::byte> bytes = encode(random_image());
  RC_PRE(bytes.size() <= 2048);
  for (std::size_t n = 0; n < bytes.size(); ++n)
    RC_ASSERT(std::holds_alternative<DecodeError>(decode(std::span(bytes).first(n))));
  std::vector<std::byte> damaged = bytes;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      damaged[i] ^= static_cast<std::byte>(1 << bit);
      RC_ASSERT(std::holds_alternative<DecodeError>(decode(damaged)));
      damaged[i] = bytes[i];
    }
  }
  std::vector<std::byte> longer = bytes;
  longer.push_back(std::byte{0});
  RC_ASSERT(std::holds_alternative<DecodeError>(decode(longer)));
}

std::string error_of(std::span<const std::byte> bytes) {
  const auto decoded = decode(bytes);
  return std::holds_alternative<DecodeError>(decoded) ? std::get<DecodeError>(decoded).describe() : "decoded";
}

Image small() {
  Image image;
  image.program = "counter";
  image.program_version = 2;
  image.sequence = 7;
  Entry count;
  count.kind = EntryKind::u64;
  count.name = "count";
  count.number = 42;
  image.entries.push_back(count);
  return image;
}

// Property: each kind of damage is named, with where it was found.
TEST(ImageErrors, EachDamageIsNamed) {
  const std::vector<std::byte> good = encode(small());
  EXPECT_EQ(error_of(std::span(good).first(10)), "byte 0: truncated header (10 of 32 bytes)");
  std::vector<std::byte> b = good;
  b[0] = std::byte{'X'};
  EXPECT_EQ(error_of(b), "byte 0: not a persim image (bad magic)");
  b = good;
  b[8] = std::byte{9};
  EXPECT_EQ(error_of(b), "byte 8: format version 9 (this build reads 1)");
  EXPECT_EQ(error_of(std::span(good).first(good.size() - 3)),
            "byte 16: body length " + std::to_string(good.size() - 32) + " but " + std::to_string(good.size() - 35) +
                " bytes follow (torn or truncated)");
  b = good;
  b.back() ^= std::byte{1};
  EXPECT_EQ(error_of(b), "byte 24: checksum mismatch (corrupt)");
  EXPECT_EQ(error_of(good), "decoded");
}

// Property: the JSON view shows the program, version, sequence and each entry.
TEST(ImageJson, ShowsEverything) {
  const std::string json = to_json(small());
  EXPECT_NE(json.find("\"program\": \"counter\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"program_version\": 2"), std::string::npos) << json;
  EXPECT_NE(json.find("\"sequence\": 7"), std::string::npos) << json;
  EXPECT_NE(json.find("\"value\": 42"), std::string::npos) << json;
}

}  // namespace
}  // namespace persim::persist
