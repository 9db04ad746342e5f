// The durable backend on a simulated disk: what a commit acknowledged survives
// any power loss; a batch is all there or not at all; torn and corrupt writes
// are caught.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "servers/ckpt/durable.hpp"
#include "servers/ckpt/simdisk.hpp"

namespace persim::servers {
namespace {

std::unique_ptr<DurableImages> open_on(SimDisk& disk) {
  auto opened = DurableImages::open("ckpt.db", disk.vfs_name().c_str());
  if (auto* e = std::get_if<std::string>(&opened)) {
    ADD_FAILURE() << *e;
    return nullptr;
  }
  return std::move(std::get<std::unique_ptr<DurableImages>>(opened));
}

std::vector<StoredImage> load(DurableImages& db) {
  auto loaded = db.load();
  if (auto* e = std::get_if<std::string>(&loaded)) {
    ADD_FAILURE() << *e;
    return {};
  }
  return std::get<std::vector<StoredImage>>(loaded);
}

std::vector<std::byte> bytes_of(std::uint64_t tag, std::size_t n) {
  std::vector<std::byte> b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((tag * 131 + i) & 0xff);
  return b;
}

// Property: committed images come back after the database is closed and opened.
TEST(DurableImages, CommitsSurviveReopen) {
  SimDisk disk("persim-test-reopen");
  {
    auto db = open_on(disk);
    ASSERT_TRUE(db);
    DurableImages::Batch batch;
    batch.puts.push_back({"a", 1, bytes_of(1, 1000), 0, 0});
    batch.puts.push_back({"b", 1, bytes_of(2, 5000), 0, 3});
    ASSERT_FALSE(db->commit(batch).has_value());
    DurableImages::Batch erase;
    erase.erases.emplace_back("a", 1);
    erase.puts.push_back({"a", 2, bytes_of(3, 10), 7, 0});
    ASSERT_FALSE(db->commit(erase).has_value());
  }
  disk.power_loss(PowerLoss::clean, 1);
  auto db = open_on(disk);
  ASSERT_TRUE(db);
  const std::vector<StoredImage> images = load(*db);
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].slot, "a");
  EXPECT_EQ(images[0].version, 2u);
  EXPECT_EQ(images[0].bytes, bytes_of(3, 10));
  EXPECT_EQ(images[0].base, 7u);  // a delta's base is kept with it
  EXPECT_EQ(images[1].bytes, bytes_of(2, 5000));
  EXPECT_EQ(images[1].base, 0u);
  EXPECT_EQ(images[1].epoch, 3u);  // and a group member's epoch
  EXPECT_GT(disk.stats().syncs, 0u);
}

// Property: the power goes at a random write, clean or tearing the write in
// progress: every batch acknowledged before that instant survives, and every
// batch is there whole or not at all.
RC_GTEST_PROP(DurableImages, AcknowledgedBatchesSurvivePowerLossAtAnyWrite, ()) {
  const auto batches = *rc::gen::resize(
      30, rc::gen::nonEmpty(rc::gen::container<std::vector<std::vector<std::size_t>>>(
              rc::gen::nonEmpty(rc::gen::container<std::vector<std::size_t>>(rc::gen::inRange<std::size_t>(1, 9000))))));
  const auto crash_at = *rc::gen::inRange<std::uint64_t>(1, 400);
  const PowerLoss mode = *rc::gen::element(PowerLoss::clean, PowerLoss::torn);
  const auto seed = *rc::gen::arbitrary<std::uint64_t>();
  SimDisk disk("persim-test-power");
  std::size_t acknowledged = 0;
  {
    auto db = open_on(disk);
    RC_ASSERT(db != nullptr);
    disk.crash_at_write(crash_at);
    for (std::size_t b = 0; b < batches.size(); ++b) {
      DurableImages::Batch batch;
      for (std::size_t i = 0; i < batches[b].size(); ++i)
        batch.puts.push_back({"slot" + std::to_string(i), b + 1, bytes_of(b * 100 + i, batches[b][i]), 0, 0});
      RC_ASSERT(!db->commit(batch).has_value());
      if (!disk.crashed()) acknowledged = b + 1;
    }
  }
  disk.power_loss(mode, seed);
  auto db = open_on(disk);
  RC_ASSERT(db != nullptr);
  const std::vector<StoredImage> images = load(*db);
  // Which batches are there, and whole.
  std::map<std::uint64_t, std::size_t> per_version;
  for (const StoredImage& img : images) {
    const std::size_t b = img.version - 1;
    const std::size_t i = std::stoul(img.slot.substr(4));
    RC_ASSERT(b < batches.size());
    RC_ASSERT(img.bytes == bytes_of(b * 100 + i, batches[b][i]));
    ++per_version[img.version];
  }
  for (const auto& [version, count] : per_version) RC_ASSERT(count == batches[version - 1].size());
  for (std::size_t b = 0; b < acknowledged; ++b) RC_ASSERT(per_version.contains(b + 1));
  // Batches survive in order: none after one that is missing.
  std::size_t present = 0;
  while (per_version.contains(present + 1)) ++present;
  RC_ASSERT(per_version.size() == present);
}

}  // namespace
}  // namespace persim::servers
