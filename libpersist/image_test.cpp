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

// A whole image and a later state of the same program: each entry kept,
// changed or gone, and new ones after (the order apply_delta rebuilds).
std::pair<Image, Image> random_evolution() {
  Image base = random_image();
  base.sequence = *rc::gen::inRange<std::uint64_t>(1, UINT64_MAX / 2);
  Image state;
  state.program = base.program;
  state.program_version = base.program_version + *rc::gen::inRange<std::uint32_t>(0, 2);
  state.sequence = base.sequence + *rc::gen::inRange<std::uint64_t>(1, 1000);
  std::set<std::string> taken;
  for (const Entry& e : base.entries) {
    taken.insert(e.name);
    switch (*rc::gen::inRange(0, 3)) {
      case 0: state.entries.push_back(e); break;
      case 1: state.entries.push_back(random_entry(e.name)); break;  // changed (or, by chance, not)
      default: break;                                                // gone
    }
  }
  for (const std::string& n : *rc::gen::container<std::set<std::string>>(names()))
    if (taken.insert(n).second) state.entries.push_back(random_entry(n));
  return {std::move(base), std::move(state)};
}

Image random_delta() {
  const auto [base, state] = random_evolution();
  return delta_of(base, state);
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
  const std::vector<std::byte> bytes = encode(*rc::gen::arbitrary<bool>() ? random_image() : random_delta());
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

// Property: a delta holds exactly the entries that are new or differ and the
// names that went; it round-trips; applied to its base it is the state.
// `make_delta` is delta_of, or a broken variant of it.
void check_delta(Image (*make_delta)(const Image&, const Image&)) {
  const auto [base, state] = random_evolution();
  const Image delta = make_delta(base, state);
  RC_ASSERT(delta.delta());
  RC_ASSERT(delta.base_sequence == base.sequence);
  for (const Entry& e : delta.entries) {
    const Entry* was = base.find(e.name);
    const bool new_or_changed = was == nullptr || !(*was == e);  // (RC_ASSERT would not short-circuit)
    RC_ASSERT(new_or_changed);
  }
  std::size_t unchanged = 0;
  for (const Entry& e : state.entries)
    if (const Entry* was = base.find(e.name); was != nullptr && *was == e) ++unchanged;
  RC_ASSERT(delta.entries.size() + unchanged == state.entries.size());
  for (const std::string& name : delta.removed) {
    const bool went = base.find(name) != nullptr && state.find(name) == nullptr;
    RC_ASSERT(went);
  }
  std::size_t gone = 0;
  for (const Entry& e : base.entries) gone += state.find(e.name) == nullptr ? 1 : 0;
  RC_ASSERT(delta.removed.size() == gone);
  const auto decoded = decode(encode(delta));
  RC_ASSERT(std::holds_alternative<Image>(decoded));
  RC_ASSERT(std::get<Image>(decoded) == delta);
  const auto applied = apply_delta(base, std::get<Image>(decoded));
  RC_ASSERT(std::holds_alternative<Image>(applied));
  RC_ASSERT(std::get<Image>(applied) == state);
}

RC_GTEST_PROP(Image, DeltaOnItsBaseIsTheState, ()) { check_delta(delta_of); }

// The property must fail on a delta that forgets the entries the state no
// longer has (restoring them from the base, as a broken delta_of would).
// Regions larger than the encoder's copy-and-hash block (64 KiB) take another
// path: sizes around the block and several blocks long round-trip exactly, and
// a flipped bit in each block of one is refused.
TEST(Image, LargeRegionsRoundTripAcrossCopyBlocks) {
  constexpr std::size_t block = 64 << 10;
  for (const std::size_t size : {block - 1, block, block + 1, 3 * block + 17, std::size_t{1} << 20}) {
    Image image;
    image.program = "big";
    image.sequence = 7;
    Entry e;
    e.kind = EntryKind::region;
    e.name = "heap";
    e.bytes.resize(size);
    for (std::size_t i = 0; i < size; ++i) e.bytes[i] = static_cast<std::byte>((i * 131 + size) >> 3);
    image.entries.push_back(e);
    Entry tail;
    tail.kind = EntryKind::u64;
    tail.name = "after";
    tail.number = 42;
    image.entries.push_back(tail);
    const std::vector<std::byte> bytes = encode(image);
    const auto back = decode(bytes);
    ASSERT_TRUE(std::holds_alternative<Image>(back)) << size << ": " << std::get<DecodeError>(back).describe();
    EXPECT_TRUE(std::get<Image>(back) == image) << size;
    for (std::size_t at = bytes.size() - size - 60; at < bytes.size(); at += block / 2) {
      std::vector<std::byte> damaged = bytes;
      damaged[at] ^= std::byte{0x10};
      EXPECT_TRUE(std::holds_alternative<DecodeError>(decode(damaged))) << size << " flipped at " << at;
    }
  }
}

TEST(Image, ADeltaThatForgetsRemovalsIsCaught) {
  auto forgetful = [](const Image& base, const Image& state) {
    Image d = delta_of(base, state);
    d.removed.clear();
    return d;
  };
  bool held = true;
  for (int attempt = 0; attempt < 4 && held; ++attempt)
    held = rc::check("deltas without their removed names", [&] { check_delta(+forgetful); });
  EXPECT_FALSE(held) << "the property did not notice removed entries coming back";
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
  EXPECT_EQ(error_of(b), "byte 8: format version 9 (this build reads 1 to 2)");
  EXPECT_EQ(error_of(std::span(good).first(good.size() - 3)),
            "byte 16: body length " + std::to_string(good.size() - 32) + " but " + std::to_string(good.size() - 35) +
                " bytes follow (torn or truncated)");
  b = good;
  b.back() ^= std::byte{1};
  EXPECT_EQ(error_of(b), "byte 24: checksum mismatch (corrupt)");
  EXPECT_EQ(error_of(good), "decoded");
}

// Property: one state has one encoding. A whole image marked as the delta
// format, and a map whose keys are out of order, are refused by name (the
// checksum made right, so that only the check behind it can refuse them).
TEST(ImageErrors, NonCanonicalEncodingsAreRefused) {
  Image image = small();
  image.program_version = 1;
  Entry e;
  e.kind = EntryKind::strings;
  e.name = "m";
  e.strings = {{"a", "1"}, {"b", "2"}};
  image.entries.push_back(e);
  const std::vector<std::byte> good = encode(image);
  std::vector<std::byte> b = good;
  b[8] = std::byte{2};  // the format version: 2 without the delta flag
  reseal(b);
  EXPECT_EQ(error_of(b), "byte 8: a whole image in format 2 (whole images are format 1; format 2 is the delta format)");
  // The two keys swapped in place ("a" and "b" are the same length).
  b = good;
  const auto at = [&](char c) {
    for (std::size_t i = 32; i < b.size(); ++i)
      if (b[i] == static_cast<std::byte>(c) && b[i + 1] == static_cast<std::byte>(1) && b[i - 4] == std::byte{1})
        return i;
    return std::size_t{0};
  };
  const std::size_t ka = at('a'), kb = at('b');
  ASSERT_NE(ka, 0u);
  ASSERT_NE(kb, 0u);
  std::swap(b[ka], b[kb]);
  reseal(b);
  EXPECT_NE(error_of(b).find("map keys out of order"), std::string::npos) << error_of(b);
  b = good;
  b[kb] = std::byte{'a'};  // both keys "a"
  reseal(b);
  EXPECT_NE(error_of(b).find("duplicate key in a map"), std::string::npos) << error_of(b);
  EXPECT_EQ(error_of(good), "decoded");
}

// Property: whatever bytes decode, re-encoding the image gives those bytes:
// any byte of a valid image changed (and the checksum made right) is either
// refused or the encoding of what it decodes to.
RC_GTEST_PROP(Image, EveryAcceptedEncodingIsTheCanonicalOne, ()) {
  const std::vector<std::byte> bytes = encode(*rc::gen::arbitrary<bool>() ? random_image() : random_delta());
  RC_PRE(bytes.size() <= 4096);
  const auto changes = *rc::gen::container<std::vector<std::pair<std::size_t, std::uint8_t>>>(
      rc::gen::pair(rc::gen::inRange<std::size_t>(8, bytes.size()), rc::gen::arbitrary<std::uint8_t>()));
  std::vector<std::byte> changed = bytes;
  for (const auto& [at, value] : changes)
    if (at < 24 || at >= 32) changed[at] = static_cast<std::byte>(value);  // not the checksum itself
  reseal(changed);
  const auto decoded = decode(changed);
  if (const Image* image = std::get_if<Image>(&decoded)) RC_ASSERT(encode(*image) == changed);
}

// Property: a delta is refused, named, when it is not on the image given as
// its base, and a malformed delta does not decode.
TEST(ImageErrors, ADeltaNeedsItsOwnBase) {
  Image base = small();
  Image state = small();
  state.sequence = 9;
  state.entries[0].number = 43;
  Entry extra;
  extra.kind = EntryKind::bytes;
  extra.name = "note";
  state.entries.push_back(extra);
  const Image delta = delta_of(base, state);
  ASSERT_EQ(delta.entries.size(), 2u);
  ASSERT_EQ(std::get<Image>(apply_delta(base, delta)), state);
  auto error = [](const std::variant<Image, std::string>& r) {
    return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : "applied";
  };
  Image other = base;
  other.sequence = 6;
  EXPECT_EQ(error(apply_delta(other, delta)), "its base is sequence 7, the image found is sequence 6");
  other = base;
  other.program = "logger";
  EXPECT_EQ(error(apply_delta(other, delta)), "its base belongs to program 'logger', the delta to 'counter'");
  EXPECT_EQ(error(apply_delta(delta, delta)), "its base, sequence 9, is itself a delta");
  EXPECT_EQ(error(apply_delta(base, base)), "not a delta");
  Image gone = delta;
  gone.removed.push_back("never");
  EXPECT_EQ(error(apply_delta(base, gone)), "it removes 'never', which its base does not have");

  // Encoded: format 2 with the delta flag; as format 1 it is refused.
  const std::vector<std::byte> good = encode(delta);
  EXPECT_EQ(static_cast<int>(good[8]), 2);
  EXPECT_EQ(static_cast<int>(good[10]), image_flag_delta);
  EXPECT_EQ(static_cast<int>(encode(base)[8]), 1);  // whole images stay format 1
  std::vector<std::byte> b = good;
  b[8] = std::byte{1};
  EXPECT_EQ(error_of(b), "byte 10: a delta in a format 1 image (deltas are format 2)");
  Image late = delta;
  late.base_sequence = late.sequence;
  EXPECT_EQ(error_of(encode(late)), "byte 55: base sequence 9 of a delta with sequence 9 (a base comes before its delta)");
  Image twice = delta;
  twice.removed = {"count"};
  EXPECT_EQ(error_of(encode(twice)).substr(error_of(encode(twice)).find(':')),
            ": removed name 0 'count': also an entry, or removed twice");
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
