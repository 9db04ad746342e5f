// libpersist under the supervisor: a program killed at any kernel call,
// restarted, continues where its last checkpoint left it; its effects since
// then happen again (at least once) or not (exactly once).
#include <gtest/gtest.h>

#include <sstream>

#include "libpersist/persist.hpp"
#include "support/system_harness.hpp"

namespace persim::persist {
namespace {

using namespace persim::testing;
using servers::RestartPolicy;
using servers::System;

constexpr int steps = 10;
constexpr int every = 3;  // checkpoint after every third step

// Counts to `steps` on its console, checkpointing every `every` steps.
kernel::Entry counter(Effects effects) {
  return [effects](Sys& sys) {
    Persistent p(sys, {.program = "counter", .effects = effects});
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

CounterRun run_counter(Effects effects, std::uint64_t kill_at) {
  System system(system_config());
  system.add_standard_servers();
  EXPECT_TRUE(system.add_program("counter", counter(effects)).ok());
  Manifest m = manifest("counter", "counter", {{"console", "console", ""}, {"ckpt", "ckpt", ""}}, RestartPolicy::on_failure);
  m.backoff_ns_initial = 1'000;
  system.add(m);
  if (kill_at != 0) system.node().kill_at_call("counter#1", kill_at);
  EXPECT_TRUE(system.boot().ok());
  EXPECT_EQ(system.node().run({.until_ns = 1'000'000'000}), kernel::RunOutcome::quiescent);
  EXPECT_TRUE(system.node().check_invariants().empty());
  return {system.console().output["counter"], system.node().kills_at_call_fired() > 0,
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
TEST(Persist, KilledAtEveryKernelCallResumesAtLeastOnce) {
  EXPECT_EQ(run_counter(Effects::at_least_once, 0).output, uninterrupted());
  int kills = 0, redone = 0;
  for (std::uint64_t k = 1;; ++k) {
    const CounterRun run = run_counter(Effects::at_least_once, k);
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
TEST(Persist, KilledAtEveryKernelCallResumesExactlyOnce) {
  EXPECT_EQ(run_counter(Effects::exactly_once, 0).output, uninterrupted());
  int kills = 0;
  for (std::uint64_t k = 1;; ++k) {
    const CounterRun run = run_counter(Effects::exactly_once, k);
    if (!run.killed) break;
    ++kills;
    EXPECT_EQ(run.output, uninterrupted()) << "killed at kernel call " << k;
  }
  EXPECT_GT(kills, 20);
}

}  // namespace
}  // namespace persim::persist
