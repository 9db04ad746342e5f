// Durability (invariant 7): with the checkpoint store on its simulated disk, a
// power loss at any write, clean or tearing the write in progress, never loses
// a checkpoint that was acknowledged; after the node boots again every
// program restores at least what it was told was saved.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <sqlite3.h>

#include <array>

#include "libpersist/persist.hpp"
#include "support/system_harness.hpp"

namespace persim::persist {
namespace {

using namespace persim::testing;
using servers::PowerLoss;
using servers::System;

constexpr int programs_count = 3;
constexpr std::uint64_t steps = 12;

struct Observed {
  std::map<std::string, std::uint64_t> acknowledged;  // the count its last acknowledged checkpoint holds

  std::map<std::string, std::vector<std::uint64_t>> restored;  // the count each incarnation restored
};

// Counts to `steps`, checkpointing each step; reports what was acknowledged
// and what each incarnation restored.
kernel::Entry counter(std::string name, Observed& seen) {
  return [name, &seen](Sys& sys) {
    Persistent p(sys, {.program = "counter"});
    std::uint64_t count = 0;
    p.field("count", count);
    if (!p.restore()) throw std::runtime_error("restore failed");
    seen.restored[name].push_back(count);
    while (count < steps) {
      ++count;
      if (!p.checkpoint()) return;
      seen.acknowledged[name] = count;
      if (!sys.sleep_for(10'000)) return;
    }
  };
}

RC_GTEST_PROP(Durability, AcknowledgedCheckpointsSurvivePowerLoss, ()) {
  const auto crash_at = *rc::gen::inRange<std::uint64_t>(1, 300);
  const PowerLoss mode = *rc::gen::element(PowerLoss::clean, PowerLoss::torn);
  const auto window_ns = *rc::gen::element<std::uint64_t>(0, 5'000, 50'000);
  const auto seed = *rc::gen::arbitrary<std::uint64_t>();
  Observed seen;
  System system(system_config(seed % 1000 + 1));
  system.use_durable_checkpoints(window_ns);
  system.add_standard_servers();
  for (int i = 0; i < programs_count; ++i) {
    const std::string name = "c" + std::to_string(i);
    RC_ASSERT(system.add_program(name, counter(name, seen)).ok());
    Manifest m = manifest(name, name, {{"ckpt", "ckpt", ""}}, RestartPolicy::on_failure);
    system.add(m);
  }
  system.disk()->on_crash = [&system] { system.node().stop(); };
  system.disk()->crash_at_write(crash_at);
  RC_ASSERT(system.boot().ok());
  const kernel::RunOutcome first = system.node().run({.until_ns = 100'000'000});
  const std::map<std::string, std::uint64_t> acknowledged = seen.acknowledged;
  RC_TAG(first == kernel::RunOutcome::stopped ? "power lost" : "ran to the end");
  RC_ASSERT(system.power_loss(mode, seed).ok());
  RC_ASSERT(system.node().run({.until_ns = system.node().now_ns() + 100'000'000}) == kernel::RunOutcome::quiescent);
  for (const auto& [name, count] : acknowledged) {
    // The incarnation after the power loss restored at least what was acknowledged.
    RC_ASSERT(seen.restored[name].size() >= 2u);
    RC_ASSERT(seen.restored[name].back() >= count);
  }
  // And each finished its count: a checkpoint made lasting whose
  // acknowledgement the power cut off counts as done, too.
  for (int i = 0; i < programs_count; ++i) {
    const std::string name = "c" + std::to_string(i);
    RC_ASSERT(std::max(seen.acknowledged[name], seen.restored[name].back()) == steps);
  }
  RC_ASSERT(system.ckpt().failure.empty());
}

// Counts to `steps`, checkpointing each step, with 1 KiB derived from the
// count (so a restored state can be told from garbage); records each restore.
struct Restores {
  std::vector<std::uint64_t> counts;  // restored counts whose region matched
  std::vector<std::string> refused;   // restores that failed, and why
  std::uint64_t garbage = 0;          // restored states whose region did not match the count
};

std::array<std::byte, 1024> derived(std::uint64_t count) {
  std::array<std::byte, 1024> r{};
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = static_cast<std::byte>((count * 2654435761u + i * 40503u) >> 5);
  return r;
}

kernel::Entry derived_counter(Restores& seen) {
  return [&seen](Sys& sys) {
    Persistent p(sys, {.program = "counter"});
    std::uint64_t count = 0;
    std::array<std::byte, 1024> region = derived(0);
    p.field("count", count);
    p.region("derived", region);
    Restored found;
    if (const PersistStatus s = p.restore(&found); !s) {
      seen.refused.push_back(std::string(to_string(s.error)) + ": " + s.what);
      throw std::runtime_error("restore failed");
    }
    if (region != derived(count)) ++seen.garbage;
    seen.counts.push_back(count);
    while (count < steps) {
      ++count;
      region = derived(count);
      if (!p.checkpoint()) return;
      if (!sys.sleep_for(10'000)) return;
    }
  };
}

// Property: a bit flipped anywhere in the durable store's files (its database
// or its write-ahead log), found at the next start, is never restored as
// state: the store refuses to start with an error naming the database, or the
// program restores a state it checkpointed (passing over damaged images) or
// none, or its restore fails naming the damage. Never a state it did not
// write. (Not "nothing acknowledged is lost": a damaged log loses what follows
// the damage; see docs/libpersist.md.)
RC_GTEST_PROP(Durability, AFlippedBitOnTheDiskIsNeverRestoredAsState, ()) {
  Restores seen;
  System system(system_config());
  system.use_durable_checkpoints(0);
  system.add_standard_servers();
  RC_ASSERT(system.add_program("counter", derived_counter(seen)).ok());
  Manifest m = manifest("counter", "counter", {{"ckpt", "ckpt", ""}}, RestartPolicy::on_failure);
  m.restarts_max = 2;
  system.add(m);
  RC_ASSERT(system.boot().ok());
  system.node().run({.until_ns = 100'000'000});
  RC_ASSERT(seen.counts == std::vector<std::uint64_t>{0});
  if (*rc::gen::arbitrary<bool>()) {
    // A bit of either file, chosen by offset over both.
    const std::map<std::string, std::size_t> files = system.disk()->files();
    std::uint64_t total = 0;
    for (const auto& [name, size] : files) total += size;
    RC_PRE(total > 0);
    std::uint64_t at = *rc::gen::inRange<std::uint64_t>(0, total);
    std::string file;
    for (const auto& [name, size] : files) {
      if (at < size) {
        file = name;
        break;
      }
      at -= size;
    }
    system.disk()->corrupt(file, at, *rc::gen::inRange(0, 8));
    RC_ASSERT(system.power_loss(PowerLoss::clean, 1).ok());
  } else {
    // A bit of one stored image, where SQLite's own checks cannot see it
    // (written through SQLite, as rot inside a page of the database would be).
    RC_TAG("a bit of an image");
    RC_ASSERT(system.power_loss(PowerLoss::clean, 1).ok());  // the store closed; it reopens when the node runs
    sqlite3* db = nullptr;
    RC_ASSERT(sqlite3_open_v2("ckpt.db", &db, SQLITE_OPEN_READWRITE, system.disk()->vfs_name().c_str()) == SQLITE_OK);
    RC_ASSERT(sqlite3_exec(db, "PRAGMA locking_mode=EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
    std::vector<std::pair<std::int64_t, std::vector<std::byte>>> images;
    sqlite3_stmt* q = nullptr;
    RC_ASSERT(sqlite3_prepare_v2(db, "SELECT version, bytes FROM images", -1, &q, nullptr) == SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
      const auto* blob = static_cast<const std::byte*>(sqlite3_column_blob(q, 1));
      images.emplace_back(sqlite3_column_int64(q, 0),
                          std::vector<std::byte>(blob, blob + sqlite3_column_bytes(q, 1)));
    }
    sqlite3_finalize(q);
    RC_ASSERT(!images.empty());
    auto& [version, bytes] = images[*rc::gen::inRange<std::size_t>(0, images.size())];
    bytes[*rc::gen::inRange<std::size_t>(0, bytes.size())] ^= static_cast<std::byte>(1 << *rc::gen::inRange(0, 8));
    sqlite3_stmt* update = nullptr;
    RC_ASSERT(sqlite3_prepare_v2(db, "UPDATE images SET bytes = ?1 WHERE version = ?2", -1, &update, nullptr) ==
              SQLITE_OK);
    sqlite3_bind_blob64(update, 1, bytes.data(), bytes.size(), SQLITE_STATIC);
    sqlite3_bind_int64(update, 2, version);
    RC_ASSERT(sqlite3_step(update) == SQLITE_DONE);
    sqlite3_finalize(update);
    sqlite3_close(db);
  }
  system.node().run({.until_ns = system.node().now_ns() + 100'000'000});
  RC_ASSERT(seen.garbage == 0u);
  for (const std::uint64_t c : seen.counts) RC_ASSERT(c <= steps);
  if (!system.ckpt().failure.empty()) {
    RC_TAG("store refused to start");
    RC_ASSERT(seen.counts.size() == 1u);
  } else if (seen.counts.size() > 1) {
    // A flip in the log's header or in a frame makes SQLite's recovery drop
    // the log from there on, without an error: an older image, or none.
    const std::uint64_t back = seen.counts.back();
    RC_TAG(back == steps ? "restored the newest" : back == 0 ? "restored nothing (the log dropped)" : "restored an older image");
  } else {
    RC_TAG("restore refused");
    RC_ASSERT(!seen.refused.empty());
  }
}

// Commits waiting in the same window share one transaction: many checkpoints,
// few syncs.
TEST(Durability, GroupCommitSharesTransactions) {
  Observed seen;
  System system(system_config());
  system.use_durable_checkpoints(20'000);
  system.add_standard_servers();
  for (int i = 0; i < 8; ++i) {
    const std::string name = "c" + std::to_string(i);
    ASSERT_TRUE(system.add_program(name, counter(name, seen)).ok());
    system.add(manifest(name, name, {{"ckpt", "ckpt", ""}}));
  }
  ASSERT_TRUE(system.boot().ok());
  system.node().run({.until_ns = 100'000'000});
  const servers::CkptStats& stats = system.ckpt().stats;
  EXPECT_EQ(stats.commits, 8 * steps);
  EXPECT_LT(stats.transactions, stats.commits / 3) << "commits of the eight programs share transactions";
  EXPECT_GE(system.disk()->stats().syncs, stats.transactions);
}

}  // namespace
}  // namespace persim::persist
