// Consistent group checkpoints (invariant 6): a sender and a receiver that
// talk over IPC checkpoint as a group; killed at random points (either of
// them, at any kernel call), the group restarts from its last committed epoch
// and no restored state has received a message the sender's state did not
// send. The same programs checkpointing on their own (no group) restore
// inconsistent cuts: the check catches that too.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <sqlite3.h>

#include <algorithm>

#include "libpersist/persist.hpp"
#include "support/system_harness.hpp"

namespace persim::persist {
namespace {

using namespace persim::testing;
using servers::System;

struct Observed {
  std::map<std::uint64_t, std::uint64_t> sent_at_epoch;      // what the sender restored, by group epoch
  std::map<std::uint64_t, std::uint64_t> received_at_epoch;  // what the receiver restored, by group epoch
  std::vector<std::pair<std::uint64_t, std::uint64_t>> restores;  // (sent, received) as each pair restarted
  std::uint64_t sent = 0, received = 0;  // the latest values of the running incarnations
  std::string restore_error;              // the last restore that failed, and why
};

void restore_or_throw(Persistent& p, Observed& seen) {
  if (const PersistStatus s = p.restore(); !s) {
    seen.restore_error = std::string(to_string(s.error)) + ": " + s.what;
    throw std::runtime_error("restore");
  }
}

struct Pair {
  std::uint64_t messages;
  std::uint64_t every;
  bool grouped;
  std::uint32_t full_every = 0;  // asks for incremental images (each member also holds 2 KiB that never change)
};

// Sends messages 1..n to the receiver, checkpointing after every `every`.
kernel::Entry sender(Pair s, Observed& seen) {
  return [s, &seen](Sys& sys) {
    Persistent p(sys, {.program = "sender", .group = s.grouped, .full_every = s.full_every});
    std::uint64_t sent = 0;
    p.field("sent", sent);
    std::vector<std::byte> cold(2048, std::byte{1});
    p.region("cold", cold);
    restore_or_throw(p, seen);
    seen.sent_at_epoch[p.group_epoch()] = sent;
    seen.sent = sent;
    const Cap<Endpoint> peer = sys.granted<Endpoint>("peer").value();
    while (sent < s.messages) {
      kernel::Message request{}, reply{};
      request.label = 1;
      servers::wire::Writer(request).u64(sent + 1);
      if (!servers::call(sys, peer, request, reply)) throw std::runtime_error("peer gone");
      seen.sent = ++sent;
      if (sent % s.every == 0 && !p.checkpoint()) throw std::runtime_error("checkpoint");
    }
  };
}

// Serves "peer" sessions; counts what it receives, checkpointing after every `every`.
kernel::Entry receiver(Pair s, Observed& seen) {
  return [s, &seen](Sys& sys) {
    Persistent p(sys, {.program = "receiver", .group = s.grouped, .full_every = s.full_every});
    std::uint64_t received = 0;
    p.field("received", received);
    std::vector<std::byte> cold(2048, std::byte{2});
    p.region("cold", cold);
    restore_or_throw(p, seen);
    seen.received_at_epoch[p.group_epoch()] = received;
    seen.received = received;
    // Counts each request; the checkpoint due after every `every` is taken once the reply is out.
    struct Peer : servers::BasicService {
      Peer(Sys& sys, Cap<Endpoint> ep, Persistent& persistent, std::uint64_t& count, std::uint64_t cadence,
           Observed& observed)
          : BasicService(sys, ep), p(persistent), received(count), every(cadence), seen(observed) {}
      servers::ServiceError handle(servers::ClientSession&, servers::Request&, kernel::Message&) {
        seen.received = ++received;
        due = received % every == 0;
        return servers::ServiceError::ok;
      }
      void replied() {
        if (std::exchange(due, false) && !p.checkpoint()) throw std::runtime_error("checkpoint");
      }
      Persistent& p;
      std::uint64_t& received;
      std::uint64_t every;
      Observed& seen;
      bool due = false;
    };
    const Cap<Endpoint> ep = sys.endpoint_create().value();
    Peer peer(sys, ep, p, received, s.every, seen);
    servers::ServerAudit audit;
    servers::announce_and_serve(sys, "peer", ep, peer, audit);
  };
}

// The sender and the receiver under `system`'s supervisor, restarted on
// failure (after `backoff_ns`), checkpointing as the group "pair" if s.grouped.
void add_pair(System& system, const Pair& s, Observed& seen, std::uint64_t backoff_ns = 10'000) {
  EXPECT_TRUE(system.add_program("sender", sender(s, seen)).ok());
  EXPECT_TRUE(system.add_program("receiver", receiver(s, seen)).ok());
  Manifest a = manifest("sender", "sender", {{"ckpt", "ckpt", ""}, {"peer", "peer:x", ""}}, RestartPolicy::on_failure);
  Manifest b = manifest("receiver", "receiver", {{"ckpt", "ckpt", ""}}, RestartPolicy::on_failure);
  b.provides = "peer";
  if (s.grouped) a.group = b.group = "pair";
  a.backoff_ns_initial = b.backoff_ns_initial = backoff_ns;
  system.add(a);
  system.add(b);
}

// Every epoch both restored from has the receiver not ahead of the sender,
// and in the end every message was sent and received.
void expect_consistent_and_complete(const Observed& seen, const Pair& s) {
  for (const auto& [epoch, received] : seen.received_at_epoch) {
    const auto sent = seen.sent_at_epoch.find(epoch);
    if (sent != seen.sent_at_epoch.end()) {
      EXPECT_LE(received, sent->second) << "epoch " << epoch;
    }
  }
  EXPECT_EQ(seen.sent, s.messages);
  EXPECT_EQ(seen.received, s.messages);
}

struct RunOutcome {
  Observed seen;
  std::uint64_t restarts;
  std::uint64_t kills;
  std::uint64_t deltas;  // images the store committed as deltas
};

RunOutcome run(Pair s, const std::string& victim, std::uint64_t kill_at, std::uint64_t seed) {
  RunOutcome out;
  System system(system_config(seed));
  system.add_standard_servers();
  add_pair(system, s, out.seen, 1'000);
  system.node().faults().kill_at_call(victim + "#1", kill_at);
  EXPECT_TRUE(system.boot().ok());
  system.node().run({.until_ns = 1'000'000'000});
  out.restarts = system.supervisor().restarts.size();
  out.kills = system.node().faults().kills_at_call_fired();
  out.deltas = system.ckpt().stats.deltas;
  return out;
}

RC_GTEST_PROP(GroupCheckpoint, KillsNeverRestoreAnInconsistentCut, ()) {
  // Whole rounds: the last message ends with a group checkpoint too, so the
  // sender's final state is committed with the receiver's.
  const auto every = *rc::gen::inRange<std::uint64_t>(1, 4);
  const Pair s{every * *rc::gen::inRange<std::uint64_t>(1, 6), every, true, *rc::gen::element(0u, 3u)};
  const std::string victim = *rc::gen::element(std::string("sender"), std::string("receiver"));
  const auto kill_at = *rc::gen::inRange<std::uint64_t>(1, 60);
  const RunOutcome o = run(s, victim, kill_at, *rc::gen::inRange<std::uint64_t>(1, 1000));
  RC_TAG(o.kills > 0 ? "killed" : "kill point past the end", s.full_every == 0 ? "whole images" : "incremental");
  // Every epoch both restored from: the receiver never ahead of the sender.
  for (const auto& [epoch, received] : o.seen.received_at_epoch) {
    const auto sent = o.seen.sent_at_epoch.find(epoch);
    if (sent != o.seen.sent_at_epoch.end()) RC_ASSERT(received <= sent->second);
  }
  // And in the end every message was received exactly as often as it was sent.
  RC_ASSERT(o.seen.sent == s.messages);
  RC_ASSERT(o.seen.received == s.messages);
  // Asked for incremental images, group members still write whole ones (a
  // group rollback needs every member to keep the same epochs).
  RC_ASSERT(o.deltas == 0u);
}

// Property: on the durable store, a power cut at any disk write (the store
// writing on after the instant, as a disk's cache would, until the power is
// found gone) leaves the group's committed epoch and its members' images
// consistent: the group restarts from an epoch it has images for, and runs to
// the end consistently.
TEST(GroupCheckpoint, PowerCutAtAnyDiskWriteKeepsEpochAndImagesTogether) {
  const Pair s{12, 3, true};
  for (std::uint64_t cut = 1; cut <= 60; ++cut) {
    SCOPED_TRACE("power cut at disk write " + std::to_string(cut));
    Observed seen;
    System system(system_config(cut));
    system.use_durable_checkpoints(0);
    system.add_standard_servers();
    add_pair(system, s, seen);
    system.disk()->on_crash = [&system] { system.node().stop(); };
    system.disk()->crash_at_write(cut);
    ASSERT_TRUE(system.boot().ok());
    system.node().run({.until_ns = 100'000'000});
    ASSERT_TRUE(system.power_loss(servers::PowerLoss::clean, cut).ok());
    system.node().run({.until_ns = system.node().now_ns() + 100'000'000});
    expect_consistent_and_complete(seen, s);
  }
}

// Property: a member whose image of the group's committed epoch is damaged
// does not restore its older image alone (an inconsistent cut with the
// members that restore the committed epoch): it takes the whole group back to
// that older epoch (the store erasing every member's later images), crashes,
// and the group restarts from there and runs to the end consistently.
TEST(GroupCheckpoint, ADamagedImageTakesTheWholeGroupBack) {
  for (const bool durable : {false, true}) {
    SCOPED_TRACE(durable ? "durable store" : "memory store");
    const Pair s{12, 3, true};
    Observed seen;
    System system(system_config());
    if (durable) system.use_durable_checkpoints(0);
    system.add_standard_servers();
    add_pair(system, s, seen);
    ASSERT_TRUE(system.boot().ok());
    ASSERT_TRUE(run_until(system, [&] { return system.ckpt().groups["pair"].committed_epoch >= 2; }));
    const std::uint64_t epoch = system.ckpt().groups["pair"].committed_epoch;
    ASSERT_LT(epoch, 4u) << "stopped before the end";
    // The receiver's newest image (of that epoch), damaged where the store keeps it.
    std::uint64_t version = 0;
    if (durable) {
      for (const auto& [v, bytes] : system.ckpt().live->slots.at("receiver").images) version = v;
      const std::vector<std::byte> image = system.ckpt().live->slots.at("receiver").images.at(version);
      // Every process dies; the store reads its database again as it starts.
      ASSERT_TRUE(system.power_loss(servers::PowerLoss::clean, 1).ok());
      // The image rewritten with one bit of its checksum flipped, through SQLite (a flip
      // in the log's frames would be caught by SQLite itself, which drops the
      // transaction: see Durability.AFlippedBitOnTheDiskIsNeverRestoredAsState).
      std::vector<std::byte> damaged = image;
      damaged[24] ^= std::byte{1};
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open_v2("ckpt.db", &db, SQLITE_OPEN_READWRITE, system.disk()->vfs_name().c_str()), SQLITE_OK);
      // As the store opens it: the log's index in the process (the disk has no shared memory).
      ASSERT_EQ(sqlite3_exec(db, "PRAGMA locking_mode=EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
      sqlite3_stmt* update = nullptr;
      ASSERT_EQ(sqlite3_prepare_v2(db, "UPDATE images SET bytes = ?1 WHERE slot = 'receiver' AND version = ?2", -1,
                                   &update, nullptr),
                SQLITE_OK);
      sqlite3_bind_blob64(update, 1, damaged.data(), damaged.size(), SQLITE_STATIC);
      sqlite3_bind_int64(update, 2, static_cast<sqlite3_int64>(version));
      EXPECT_EQ(sqlite3_step(update), SQLITE_DONE);
      EXPECT_EQ(sqlite3_changes(db), 1);
      sqlite3_finalize(update);
      sqlite3_close(db);
    } else {
      servers::TrustedStore& store = system.ckpt().store;
      const std::string prefix("ckpt:receiver\0", 14);
      std::string newest;
      for (const auto& [key, bytes] : store.records())
        if (key.starts_with(prefix)) newest = key;
      ASSERT_FALSE(newest.empty());
      servers::TrustedStore::Bytes bytes = *store.get(newest);
      bytes[24] ^= std::byte{1};
      store.put(newest, bytes);
      version = std::stoull(newest.substr(prefix.size()), nullptr, 16);
      ASSERT_TRUE(system.node().kill(*system.process_of("ckpt")).ok());  // it rereads its storage
      ASSERT_TRUE(system.node().kill(*system.process_of("receiver")).ok());
    }
    system.node().run({.until_ns = system.node().now_ns() + 100'000'000});
    EXPECT_EQ(system.ckpt().group_rollbacks, 1u);
    EXPECT_EQ(seen.restore_error, "group_rolled_back: group epoch " + std::to_string(epoch) +
                                      ": this member has no valid image of it (version " + std::to_string(version) +
                                      ": byte 24: checksum mismatch (corrupt)); the group goes back to epoch " +
                                      std::to_string(epoch - 1) + " (version " + std::to_string(version - 1) +
                                      ") and restarts");
    // Both restored the epoch before, and ran to the end from there.
    for (const auto& [e, received] : seen.received_at_epoch) {
      const auto sent = seen.sent_at_epoch.find(e);
      if (sent != seen.sent_at_epoch.end()) {
        EXPECT_LE(received, sent->second) << "epoch " << e;
      }
    }
    EXPECT_EQ(seen.received_at_epoch.count(epoch - 1), 1u);
    EXPECT_EQ(seen.sent_at_epoch.count(epoch - 1), 1u);
    EXPECT_EQ(seen.sent, s.messages);
    EXPECT_EQ(seen.received, s.messages);
  }
}

// Property: a rollback goes no further back than asked, to the newest epoch
// of which every member keeps an image: here the sender's image of epoch 4 is
// damaged (its newest usable one is of epoch 3), but the receiver's image of
// epoch 3 is gone, so the group goes back to 0 and starts fresh, and runs to
// the end consistently.
TEST(GroupCheckpoint, ARollbackGoesToAnEpochEveryMemberKeeps) {
  const Pair s{12, 3, true};
  Observed seen;
  System system(system_config());
  system.add_standard_servers();
  add_pair(system, s, seen);
  ASSERT_TRUE(system.boot().ok());
  system.node().run({.until_ns = 100'000'000});
  ASSERT_EQ(system.ckpt().groups["pair"].committed_epoch, 4u);
  servers::TrustedStore& store = system.ckpt().store;
  auto key = [](std::string_view prefix, std::string_view slot, std::uint64_t version) {
    char digits[17];
    std::snprintf(digits, sizeof digits, "%016llx", static_cast<unsigned long long>(version));
    return std::string(prefix) + std::string(slot) + std::string(1, '\0') + digits;
  };
  // Each slot keeps versions 3 and 4 (epochs 3 and 4).
  ASSERT_NE(store.get(key("ckpt:", "sender", 4)), nullptr);
  ASSERT_NE(store.get(key("ckpt:", "receiver", 3)), nullptr);
  servers::TrustedStore::Bytes damaged = *store.get(key("ckpt:", "sender", 4));
  damaged[24] ^= std::byte{1};
  store.put(key("ckpt:", "sender", 4), damaged);
  store.erase(key("ckpt:", "receiver", 3));
  store.erase(key("ckpt-meta:", "receiver", 3));
  ASSERT_TRUE(system.node().kill(*system.process_of("ckpt")).ok());  // it rereads its storage
  // Both finished: start them again as after a crash of the node's programs.
  ASSERT_TRUE(system.power_loss(servers::PowerLoss::clean, 1).ok());
  seen.sent_at_epoch.clear();
  seen.received_at_epoch.clear();
  system.node().run({.until_ns = system.node().now_ns() + 100'000'000});
  EXPECT_EQ(system.ckpt().group_rollbacks, 1u);
  EXPECT_EQ(seen.restore_error,
            "group_rolled_back: group epoch 4: this member has no valid image of it (version 4: byte 24: checksum "
            "mismatch (corrupt)); the group goes back to epoch 0 (the newest every member has) and restarts");
  EXPECT_EQ(seen.sent_at_epoch.count(0), 1u);
  EXPECT_EQ(seen.received_at_epoch.count(0), 1u);
  expect_consistent_and_complete(seen, s);
}

// Property: the checkpoint store crashing while a group checkpoints (some
// members prepared, or none) costs the members nothing: each asks the
// supervisor for the restarted store and prepares again, and the pair runs
// to the end without a restart of its own, consistently.
TEST(GroupCheckpoint, MembersPrepareAgainOnARestartedStore) {
  const Pair s{12, 3, true};
  int crashes = 0;
  for (std::uint64_t at_us = 5; at_us <= 200; at_us += 5) {
    SCOPED_TRACE("store killed at " + std::to_string(at_us) + " us");
    Observed seen;
    System system(system_config());
    system.add_standard_servers();
    add_pair(system, s, seen);
    ASSERT_TRUE(system.boot().ok());
    bool killed = false;
    system.node().at(at_us * 1'000, [&](kernel::Node& node) {
      if (const auto store = system.process_of("ckpt")) killed = node.kill(*store).ok();
    });
    system.node().run({.until_ns = 100'000'000});
    crashes += killed ? 1 : 0;
    for (const servers::RestartRecord& r : system.supervisor().restarts) EXPECT_EQ(r.instance, "ckpt");
    EXPECT_EQ(seen.sent, s.messages);
    EXPECT_EQ(seen.received, s.messages);
  }
  EXPECT_GT(crashes, 0);
}

// Serves "late" sessions, announced only after 1 ms: a program granted one
// starts then.
kernel::Entry late_provider() {
  return [](Sys& sys) {
    if (!sys.sleep_for(1'000'000)) return;
    struct Late : servers::BasicService {
      using BasicService::BasicService;
      servers::ServiceError handle(servers::ClientSession&, servers::Request&, kernel::Message&) {
        return servers::ServiceError::unknown_operation;
      }
    };
    const Cap<Endpoint> ep = sys.endpoint_create().value();
    Late late(sys, ep);
    servers::ServerAudit audit;
    servers::announce_and_serve(sys, "late", ep, late, audit);
  };
}

// Property: a group's epoch waits for every member the group has, including
// one that has not started yet (its slot not opened): the early member's first
// checkpoint commits with the late member's, both as epoch 1.
TEST(GroupCheckpoint, AnEpochWaitsForMembersNotStartedYet) {
  System system(system_config());
  system.add_standard_servers();
  struct Seen {
    PersistStatus status;
    std::uint64_t epoch = 0;
    std::uint64_t done_ns = 0;
  };
  std::map<std::string, Seen> seen;
  auto member = [&seen](std::string name) -> kernel::Entry {
    return [&seen, name](Sys& sys) {
      Persistent p(sys, {.program = name, .group = true});
      std::uint64_t x = 1;
      p.field("x", x);
      if (!p.restore()) throw std::runtime_error("restore");
      seen[name].status = p.checkpoint();
      seen[name].epoch = p.group_epoch();
      seen[name].done_ns = sys.now_ns();
    };
  };
  ASSERT_TRUE(system.add_program("early", member("early")).ok());
  ASSERT_TRUE(system.add_program("late", member("late")).ok());
  ASSERT_TRUE(system.add_program("provider", late_provider()).ok());
  Manifest early = manifest("early", "early", {{"ckpt", "ckpt", ""}});
  Manifest late = manifest("late", "late", {{"ckpt", "ckpt", ""}, {"late", "late:x", ""}});
  Manifest provider = manifest("provider", "provider", {});
  provider.provides = "late";
  early.group = late.group = "pair";
  system.add(early);
  system.add(late);
  system.add(provider);
  ASSERT_TRUE(system.boot().ok());
  system.node().run({.until_ns = 100'000'000});
  for (const char* name : {"early", "late"}) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(seen[name].status.ok()) << seen[name].status.what;
    EXPECT_EQ(seen[name].epoch, 1u);
    EXPECT_GE(seen[name].done_ns, 1'000'000u) << "committed before the late member started";
  }
}

// The broken variant: the same programs checkpointing alone, restarted alone.
// Some kill point leaves the receiver having counted messages its sender's
// restored state will send again: the check above must see it.
TEST(GroupCheckpoint, WithoutTheGroupAnInconsistentCutIsCaught) {
  const Pair alone{12, 3, false};
  bool caught = false;
  for (std::uint64_t k = 1; k < 120 && !caught; ++k) {
    const RunOutcome o = run(alone, "sender", k, 1);
    caught = o.seen.received != o.seen.sent;
  }
  EXPECT_TRUE(caught) << "no kill point showed the inconsistency";
  // With the group, every one of those kill points is consistent.
  for (std::uint64_t k = 1; k < 120; ++k) {
    const RunOutcome o = run(Pair{12, 3, true}, "sender", k, 1);
    EXPECT_EQ(o.seen.received, o.seen.sent) << "kill at " << k;
    EXPECT_EQ(o.seen.sent, 12u) << "kill at " << k;
  }
}

}  // namespace
}  // namespace persim::persist
