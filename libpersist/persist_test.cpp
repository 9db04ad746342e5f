// libpersist under the supervisor: a program killed at any kernel call,
// restarted, continues where its last checkpoint left it; its effects since
// then happen again (at least once) or not (exactly once).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <array>
#include <memory>
#include <optional>
#include <sstream>

#include "libpersist/persist.hpp"
#include "support/persist_harness.hpp"

namespace persim::persist {
namespace {

using namespace persim::testing;
using servers::RestartPolicy;
using servers::System;

constexpr int steps = 10;
constexpr int every = 3;  // checkpoint after every third step

// Counts to `steps` on its console, checkpointing every `every` steps.
// With full_every above 1, images between whole ones are deltas.
kernel::Entry counter(Effects effects, std::uint32_t full_every) {
  return [effects, full_every](Sys& sys) {
    Persistent p(sys, {.program = "counter", .effects = effects, .full_every = full_every});
    std::uint64_t count = 0;
    p.field("count", count);
    Console& out = p.console("out");
    if (!p.restore()) throw std::runtime_error("restore failed");
    while (count < steps) {
      ++count;
      if (!out.write(sys, "count " + std::to_string(count) + "\n")) return;
      if (count % every == 0 && !p.checkpoint()) return;
      if (!sys.sleep_for(1'000)) return;
    }
  };
}

struct CounterRun {
  std::string output;
  bool killed = false;
  std::size_t restarts = 0;
};

// The standard servers and the counter under its manifest (console, ckpt;
// restarted on failure after 1 us).
bool add_counter(System& system, Effects effects, std::uint32_t full_every) {
  system.add_standard_servers();
  if (!system.add_program("counter", counter(effects, full_every)).ok()) return false;
  Manifest m = manifest("counter", "counter", {{"console", "console", ""}, {"ckpt", "ckpt", ""}}, RestartPolicy::on_failure);
  m.backoff_ns_initial = 1'000;
  system.add(m);
  return true;
}

CounterRun run_counter(Effects effects, std::uint64_t kill_at, std::uint32_t full_every) {
  System system(system_config());
  EXPECT_TRUE(add_counter(system, effects, full_every));
  if (kill_at != 0) system.node().faults().kill_at_call("counter#1", kill_at);
  EXPECT_TRUE(system.boot().ok());
  EXPECT_EQ(system.node().run({.until_ns = 1'000'000'000}), kernel::RunOutcome::quiescent);
  EXPECT_TRUE(system.node().check_invariants().empty());
  return {system.console().output["counter"], system.node().faults().kills_at_call_fired() > 0,
          system.supervisor().restarts.size()};
}

std::vector<int> counts(const std::string& output) {
  std::vector<int> out;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) out.push_back(std::stoi(line.substr(6)));
  return out;
}

std::string uninterrupted() {
  std::string s;
  for (int i = 1; i <= steps; ++i) s += "count " + std::to_string(i) + "\n";
  return s;
}

// Property (at least once): killed at any kernel call of its first incarnation
// and restarted, the counter's output is the uninterrupted output with, at each
// restart, the steps since the last checkpoint done again, and nothing else.
// Whole images, and incremental ones (every second image whole).
class PersistKilled : public ::testing::TestWithParam<std::uint32_t> {};
INSTANTIATE_TEST_SUITE_P(Images, PersistKilled, ::testing::Values(0u, 2u),
                         [](const auto& param_info) { return param_info.param == 0 ? std::string("whole") : std::string("incremental"); });

TEST_P(PersistKilled, AtEveryKernelCallResumesAtLeastOnce) {
  const std::uint32_t full_every = GetParam();
  EXPECT_EQ(run_counter(Effects::at_least_once, 0, full_every).output, uninterrupted());
  int kills = 0, redone = 0;
  for (std::uint64_t k = 1;; ++k) {
    const CounterRun run = run_counter(Effects::at_least_once, k, full_every);
    if (!run.killed) break;
    ++kills;
    SCOPED_TRACE("killed at kernel call " + std::to_string(k));
    EXPECT_EQ(run.restarts, 1u);
    const std::vector<int> seen = counts(run.output);
    if (run.output != uninterrupted()) ++redone;
    std::vector<int> first;
    for (std::size_t i = 0; i < seen.size(); ++i) {
      if (i > 0 && seen[i] <= seen[i - 1]) {
        // A restart: back to just after a checkpoint, at most `every` steps back.
        EXPECT_EQ((seen[i] - 1) % every, 0) << run.output;
        EXPECT_LE(seen[i - 1] - (seen[i] - 1), every) << run.output;
      } else if (seen[i] > (first.empty() ? 0 : first.back())) {
        first.push_back(seen[i]);
      }
    }
    std::vector<int> want(steps);
    for (int i = 0; i < steps; ++i) want[static_cast<std::size_t>(i)] = i + 1;
    EXPECT_EQ(first, want) << run.output;
  }
  EXPECT_GT(kills, 20) << "every kernel call of the first incarnation was a kill point";
  EXPECT_GT(redone, 0) << "some kills fell between a checkpoint and later effects";
}

// Property (exactly once): killed at any kernel call and restarted, the
// output is exactly the uninterrupted output.
TEST_P(PersistKilled, AtEveryKernelCallResumesExactlyOnce) {
  const std::uint32_t full_every = GetParam();
  EXPECT_EQ(run_counter(Effects::exactly_once, 0, full_every).output, uninterrupted());
  int kills = 0;
  for (std::uint64_t k = 1;; ++k) {
    const CounterRun run = run_counter(Effects::exactly_once, k, full_every);
    if (!run.killed) break;
    ++kills;
    EXPECT_EQ(run.output, uninterrupted()) << "killed at kernel call " << k;
  }
  EXPECT_GT(kills, 20);
}

// Property (invariant 5 beyond the first incarnation): the counter killed at
// a random kernel call of its first and of its second incarnation, and one of
// its servers (console or checkpoint store) killed at a random time as well:
// exactly once, the output is the uninterrupted one; at least once, every
// count appears, first in order, and nothing is skipped (a line may come
// again: re-done since a checkpoint, or re-sent to a console that died before
// acknowledging it).
// `claimed` is the mode whose promise is checked; the program runs in
// `effects` (the same, or a broken variant that claims more than it does).
void check_later_kills(std::optional<Effects> forced = std::nullopt) {
  const Effects claimed = *rc::gen::element(Effects::at_least_once, Effects::exactly_once);
  const Effects effects = forced.value_or(claimed);
  const auto full_every = *rc::gen::element(0u, 2u);
  const auto first_kill = *rc::gen::inRange<std::uint64_t>(1, 80);
  const auto second_kill = *rc::gen::inRange<std::uint64_t>(1, 80);
  const std::string server = *rc::gen::element(std::string(), std::string("console"), std::string("ckpt"));
  const auto server_kill_us = *rc::gen::inRange<std::uint64_t>(1, 12'000);
  System system(system_config());
  RC_ASSERT(add_counter(system, effects, full_every));
  system.node().faults().kill_at_call("counter#1", first_kill);
  system.node().faults().kill_at_call("counter#2", second_kill);
  bool server_killed = false;
  if (!server.empty())
    system.node().at(server_kill_us * 1'000, [&](kernel::Node& node) {
      if (const auto p = system.process_of(server)) server_killed = node.kill(*p).ok();
    });
  RC_ASSERT(system.boot().ok());
  RC_ASSERT(system.node().run({.until_ns = 1'000'000'000}) == kernel::RunOutcome::quiescent);
  RC_ASSERT(system.node().check_invariants().empty());
  RC_TAG(system.node().faults().kills_at_call_fired(), server_killed ? "server " + server + " killed" : "no server killed");
  const std::string output = system.console().output["counter"];
  if (claimed == Effects::exactly_once) {
    RC_ASSERT(output == uninterrupted());
    return;
  }
  int highest = 0;
  for (const int c : counts(output)) {
    RC_ASSERT(c <= highest + 1);  // nothing skipped
    highest = std::max(highest, c);
  }
  RC_ASSERT(highest == steps);
}

RC_GTEST_PROP(Persist, LaterIncarnationsAndServersKilledKeepTheOutput, ()) { check_later_kills(); }

// The property must fail on a program that runs at least once while exactly
// once is checked (its re-done console lines show).
TEST(Persist, LaterKillsCatchAProgramWithoutIdempotencyTokens) {
  bool held = true;
  for (int attempt = 0; attempt < 4 && held; ++attempt)
    held = rc::check("exactly once checked, at least once run", [] { check_later_kills(Effects::at_least_once); });
  EXPECT_FALSE(held) << "the property did not notice re-done effects";
}

// Property: a file session is rebuilt by re-opening and seeking to the offset
// the image recorded: positional writes re-done after a kill land where they
// did, so the file ends as in an uninterrupted run.
TEST(Persist, FileSessionRebuiltAtItsOffset) {
  Driven d;
  std::uint64_t count = 0;
  std::unique_ptr<Persistent> p;
  File* file = nullptr;
  auto system = boot_app(d, {{"data", "fs:/data/", "rwcd"}, {"ckpt", "ckpt", ""}}, [&](Sys& sys, Driven& dd) {
    p = std::make_unique<Persistent>(sys, Options{.program = "app"});
    p->field("count", count);
    file = &p->file("out", "data", "out", servers::fs_mode::read | servers::fs_mode::write | servers::fs_mode::create);
    dd.restored = p->restore(&dd.found);
  });
  ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 1; }));
  ASSERT_TRUE(d.restored.ok()) << d.restored.what;
  auto step = [&](Sys& sys) {
    ++count;
    ASSERT_TRUE(file->write(sys, "line " + std::to_string(count) + ";").ok());
  };
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(d.program.run(*system, step));
  ASSERT_TRUE(d.program.run(*system, [&](Sys&) { ASSERT_TRUE(p->checkpoint().ok()); }));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(d.program.run(*system, step));  // done again after the kill
  ASSERT_TRUE(system->node().kill(*system->process_of("app")).ok());
  ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 2; }));
  ASSERT_TRUE(d.restored.ok()) << d.restored.what;
  EXPECT_TRUE(d.found.from_image);
  EXPECT_EQ(count, 3u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(d.program.run(*system, step));
  const auto* data = system->fs().store.get("file:/data/out");
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(data->data()), data->size()),
            "line 1;line 2;line 3;line 4;line 5;line 6;");
}

// Property: restore fails, naming which, when a grant the program declares is
// missing, and when a server refuses to rebuild a recorded session.
TEST(Persist, RestoreNamesTheMissingGrantAndTheRefusedSession) {
  {
    Driven d;
    auto system = boot_app(d, {{"ckpt", "ckpt", ""}}, [](Sys& sys, Driven& dd) {
      Persistent p(sys, {.program = "app"});
      p.grant("log");
      dd.restored = p.restore();
    });
    ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 1; }));
    EXPECT_EQ(d.restored.error, PersistError::grant_missing);
    EXPECT_EQ(d.restored.what, "grant 'log': kernel: not_found");
  }
  {
    // The image records a file opened without create; the file is removed
    // before the restart: the server refuses the re-open.
    Driven d;
    auto system = boot_app(d, {{"data", "fs:/data/", "rwcd"}, {"ckpt", "ckpt", ""}}, [](Sys& sys, Driven& dd) {
      if (dd.program.incarnations() == 0) {  // the file exists before the program opens it
        servers::FsClient created;
        ASSERT_TRUE(servers::FsClient(servers::granted_session<servers::FsOp>(sys, "data").value())
                        .open(sys, "out", servers::fs_mode::write | servers::fs_mode::create, &created)
                        .ok());
      }
      Persistent p(sys, {.program = "app"});
      p.file("out", "data", "out", servers::fs_mode::write);
      dd.restored = p.restore();
      if (dd.restored) (void)p.checkpoint();
    });
    ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 1; }));
    ASSERT_TRUE(d.restored.ok()) << d.restored.what;
    ASSERT_TRUE(d.program.run(*system, [](Sys& sys) {
      ASSERT_TRUE(servers::FsClient(servers::granted_session<servers::FsOp>(sys, "data").value()).remove(sys, "out").ok());
    }));
    ASSERT_TRUE(system->node().kill(*system->process_of("app")).ok());
    ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 2; }));
    EXPECT_EQ(d.restored.error, PersistError::session_refused);
    EXPECT_EQ(d.restored.what, "file 'out' (data:out): open: not_found");
  }
}

// Property: a declaration no image could hold (a name or path over the
// format's limit) is refused at restore and at checkpoint, naming it, and no
// image is written: the program does not find out at its next restart that
// none of its images can be read.
TEST(Persist, OverLongDeclarationsAreRefusedBeforeAnyImage) {
  Driven d;
  PersistStatus checkpointed;
  std::vector<servers::CkptKept> versions{{9, 9, 0}};
  auto system = boot_app(d, {{"ckpt", "ckpt", ""}, {"console", "console", ""}}, [&](Sys& sys, Driven& dd) {
    Persistent p(sys, {.program = "app"});
    std::uint64_t fine = 0;
    p.field("fine", fine);
    p.console(std::string(declared_name_bytes_max + 1, 'c'), "console");
    dd.restored = p.restore();
    checkpointed = p.checkpoint();
    ASSERT_TRUE(servers::CkptClient(servers::granted_session<servers::CkptOp>(sys, "ckpt").value()).list(sys, &versions).ok());
  });
  ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 1; }));
  EXPECT_EQ(d.restored.error, PersistError::bad_declaration);
  EXPECT_EQ(d.restored.what, "console 'cccccccccccccccccccccccc...': 241 bytes, over the 240 an image holds");
  EXPECT_EQ(checkpointed.error, PersistError::bad_declaration);
  EXPECT_TRUE(versions.empty());
}

// Numbers the lines it reads ("N text"), checkpointing after every third.
kernel::Entry numberer(Effects effects) {
  return [effects](Sys& sys) {
    Persistent p(sys, {.program = "numberer", .effects = effects});
    std::uint64_t lines = 0;
    p.field("lines", lines);
    Console& console = p.console("console");
    if (!p.restore()) throw std::runtime_error("restore failed");
    std::string line;
    bool end = false;
    while (!end && console.read_line(sys, &line, &end).ok()) {
      if (line.empty()) continue;  // the end of the input, with nothing before it
      ++lines;
      if (!console.write(sys, std::to_string(lines) + " " + line)) return;  // the line keeps its newline
      if (lines % 3 == 0 && !p.checkpoint()) return;
    }
  };
}

// Property: input is part of where a program left off. Killed at any kernel
// call (before its first checkpoint too) and restarted, the program reads on
// from its last checkpoint's input position, or from the start if it had
// none: every line it numbers is the input line of that number, whole.
TEST(Persist, ConsoleInputResumesWithTheStateAtEveryKillPoint) {
  const std::vector<std::string> input = {"milk", "eggs", "flour", "sugar", "butter", "salt", "yeast"};
  std::string text;
  for (const std::string& l : input) text += l + "\n";
  for (const Effects effects : {Effects::at_least_once, Effects::exactly_once}) {
    int kills = 0;
    for (std::uint64_t k = 1;; ++k) {
      SCOPED_TRACE("killed at kernel call " + std::to_string(k));
      System system(system_config());
      system.add_standard_servers();
      EXPECT_TRUE(system.add_program("numberer", numberer(effects)).ok());
      Manifest m = manifest("numberer", "numberer", {{"console", "console", ""}, {"ckpt", "ckpt", ""}},
                            RestartPolicy::on_failure);
      m.backoff_ns_initial = 1'000;
      system.add(m);
      system.node().faults().kill_at_call("numberer#1", k);
      system.console_input("numberer", text, true);
      ASSERT_TRUE(system.boot().ok());
      system.node().run({.until_ns = 1'000'000'000});
      if (system.node().faults().kills_at_call_fired() == 0) break;
      ++kills;
      std::istringstream out(system.console().output["numberer"]);
      std::uint64_t last = 0;
      for (std::string line; std::getline(out, line);) {
        const std::size_t space = line.find(' ');
        ASSERT_TRUE(space != std::string::npos && space > 0 && line.find_first_not_of("0123456789") == space)
            << system.console().output["numberer"];
        const std::uint64_t n = std::stoull(line.substr(0, space));
        ASSERT_TRUE(n >= 1 && n <= input.size()) << line;
        EXPECT_EQ(line.substr(space + 1), input[n - 1]) << "line " << n;
        last = n;
      }
      EXPECT_EQ(last, input.size()) << "ran to the end of the input";
    }
    EXPECT_GT(kills, 10);
  }
}

// Property: a damaged newest image is detected and the previous valid one is used.
TEST(Persist, DamagedNewestImageFallsBackToThePrevious) {
  Driven d;
  std::uint64_t count = 0;
  std::unique_ptr<Persistent> p;
  auto system = boot_app(d, {{"ckpt", "ckpt", ""}}, [&](Sys& sys, Driven& dd) {
    p = std::make_unique<Persistent>(sys, Options{.program = "app"});
    p->field("count", count);
    dd.restored = p->restore(&dd.found);
  });
  ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 1; }));
  for (std::uint64_t c : {1, 2}) {
    ASSERT_TRUE(d.program.run(*system, [&, c](Sys&) {
      count = c;
      ASSERT_TRUE(p->checkpoint().ok());
    }));
  }
  // Flip a byte of version 2 on the store's disk, and make the store reread it.
  servers::TrustedStore& disk = system->ckpt().store;
  const std::string key = std::string("ckpt:app\0", 9) + "0000000000000002";
  ASSERT_NE(disk.get(key), nullptr);
  servers::TrustedStore::Bytes damaged = *disk.get(key);
  damaged[damaged.size() / 2] ^= std::byte{0x40};
  disk.put(key, damaged);
  ASSERT_TRUE(system->node().kill(*system->process_of("ckpt")).ok());
  ASSERT_TRUE(system->node().kill(*system->process_of("app")).ok());
  ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 2; }));
  ASSERT_TRUE(d.restored.ok()) << d.restored.what;
  EXPECT_EQ(count, 1u);
  EXPECT_EQ(d.found.version, 1u);
  ASSERT_EQ(d.found.passed_over.size(), 1u);
  EXPECT_EQ(d.found.passed_over[0], "version 2: byte 24: checksum mismatch (corrupt)");
}

// Property: with incremental images, a delta holds only what changed since the
// whole image it is on (a small count, not the region that stayed), a delta
// larger than the policy allows is written whole, every full_every-th image
// is whole, and a restart restores the newest state from delta and base.
// Damage to the delta falls back to its base; damage to the base, which the
// newest points share, to the older whole image the store kept for that.
TEST(Persist, IncrementalImagesHoldWhatChangedAndRestoreWhole) {
  for (const std::uint64_t damaged : {0, 7, 5}) {
    SCOPED_TRACE("damaged version " + std::to_string(damaged));
    Driven d;
    std::uint64_t count = 0;
    std::array<std::byte, 4096> big{};
    std::unique_ptr<Persistent> p;
    auto system = boot_app(d, {{"ckpt", "ckpt", ""}}, [&](Sys& sys, Driven& dd) {
      count = 0;
      big.fill(std::byte{0});
      p = std::make_unique<Persistent>(sys, Options{.program = "app", .full_every = 3});
      p->field("count", count);
      p->region("big", big);
      dd.restored = p->restore(&dd.found);
    });
    ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 1; }));
    for (std::uint64_t c = 1; c <= 7; ++c) {
      ASSERT_TRUE(d.program.run(*system, [&, c](Sys&) {
        count = c;
        if (c == 5) big.fill(std::byte{5});  // most of the state: its delta is written whole
        ASSERT_TRUE(p->checkpoint().ok());
      }));
    }
    EXPECT_EQ(p->deltas_written(), 4u);
    std::vector<servers::CkptKept> kept;
    ASSERT_TRUE(d.program.run(*system, [&](Sys& sys) {
      ASSERT_TRUE(servers::CkptClient(servers::granted_session<servers::CkptOp>(sys, "ckpt").value()).list(sys, &kept).ok());
    }));
    // Whole: 1, 4 (every third), 5 (too big a delta). Deltas: 2, 3 on 1; 6, 7 on 5.
    // Kept: 7 with its base 5, and 4, which shares nothing with them.
    ASSERT_EQ(kept.size(), 3u);
    EXPECT_EQ(kept[0].version, 4u);
    EXPECT_EQ(kept[0].base, 0u);
    EXPECT_EQ(kept[1].version, 5u);
    EXPECT_EQ(kept[1].base, 0u);
    EXPECT_EQ(kept[2].version, 7u);
    EXPECT_EQ(kept[2].base, 5u);
    EXPECT_GT(kept[1].size, big.size());
    EXPECT_LT(kept[2].size, 200u) << "a delta of the count alone";

    servers::TrustedStore& disk = system->ckpt().store;
    if (damaged != 0) {
      std::string key = std::string("ckpt:app\0", 9) + "000000000000000" + std::to_string(damaged);
      ASSERT_NE(disk.get(key), nullptr);
      servers::TrustedStore::Bytes bytes = *disk.get(key);
      bytes[bytes.size() - 1] ^= std::byte{0x40};
      disk.put(key, bytes);
    }
    ASSERT_TRUE(system->node().kill(*system->process_of("ckpt")).ok());  // it rereads its storage
    ASSERT_TRUE(system->node().kill(*system->process_of("app")).ok());
    ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 2; }));
    ASSERT_TRUE(d.restored.ok()) << d.restored.what;
    if (damaged == 0) {
      EXPECT_EQ(count, 7u);
      EXPECT_EQ(big[4095], std::byte{5});
      EXPECT_EQ(d.found.version, 7u);
      EXPECT_EQ(d.found.base, 5u);
      EXPECT_TRUE(d.found.passed_over.empty());
    } else if (damaged == 7) {
      EXPECT_EQ(count, 5u);
      EXPECT_EQ(d.found.version, 5u);
      EXPECT_EQ(d.found.passed_over, std::vector<std::string>{"version 7: byte 24: checksum mismatch (corrupt)"});
    } else {
      EXPECT_EQ(count, 4u);
      EXPECT_EQ(big[0], std::byte{0});
      EXPECT_EQ(d.found.version, 4u);
      EXPECT_EQ(d.found.passed_over,
                (std::vector<std::string>{"version 7: its base, version 5: byte 24: checksum mismatch (corrupt)",
                                          "version 5: byte 24: checksum mismatch (corrupt)"}));
    }
    // The next checkpoint goes on from the state restored: a delta on its base.
    std::uint64_t v = 0;
    ASSERT_TRUE(d.program.run(*system, [&](Sys&) { ASSERT_TRUE(p->checkpoint(&v).ok()); }));
    EXPECT_EQ(v, 8u);
    EXPECT_EQ(p->deltas_written(), damaged == 0 ? 0u : 1u) << "after 7 (two deltas on 5) the next image is whole";
  }
}

// Property: a newer program version reads an older image (new fields keep their
// initial values); an older version refuses a newer image; a field whose type
// changed is refused by name; another program's image is refused.
TEST(Persist, VersionsAndTypesAreChecked) {
  Image old_image;
  old_image.program = "app";
  old_image.program_version = 1;
  old_image.sequence = 1;
  Entry count;
  count.kind = EntryKind::u64;
  count.name = "count";
  count.number = 5;
  old_image.entries.push_back(count);
  struct Case {
    Options options;
    bool string_count;
    PersistError want;
    std::string what;
  };
  const Case cases[] = {
      {{.program = "app", .version = 2}, false, PersistError::none, ""},
      {{.program = "app", .version = 2, .oldest_readable = 2}, false, PersistError::version_refused,
       "image of app version 1; this version 2 reads versions 2 to 2"},
      {{.program = "app", .version = 1}, true, PersistError::wrong_type,
       "field 'count': the image has u64, the program declares bytes"},
      {{.program = "other", .version = 1}, false, PersistError::wrong_program, "image of program 'app', this is 'other'"},
  };
  for (const Case& c : cases) {
    Driven d;
    std::uint64_t n = 0, added = 77;
    std::string s;
    auto system = boot_app(d, {{"ckpt", "ckpt", ""}}, [&](Sys& sys, Driven& dd) {
      if (dd.program.incarnations() == 0) {
        // The first incarnation writes the old image as is.
        servers::CkptClient store(servers::granted_session<servers::CkptOp>(sys, "ckpt").value());
        ASSERT_TRUE(store.write(sys, encode(old_image), nullptr).ok());
        return;
      }
      Persistent p(sys, c.options);
      if (c.string_count) {
        p.field("count", s);
      } else {
        p.field("count", n);
      }
      p.field("added", added);
      dd.restored = p.restore();
    });
    ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 1; }));
    ASSERT_TRUE(system->node().kill(*system->process_of("app")).ok());
    ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 2; }));
    EXPECT_EQ(d.restored.error, c.want) << c.what;
    EXPECT_EQ(d.restored.what, c.what);
    if (c.want == PersistError::none) {
      EXPECT_EQ(n, 5u);
      EXPECT_EQ(added, 77u) << "a field the old image lacks keeps its initial value";
    }
  }
}

}  // namespace
}  // namespace persim::persist
