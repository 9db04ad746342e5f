// The run loop: virtual time, timers, host events, limits, fairness, determinism.
#include <gtest/gtest.h>

#include "support/harness.hpp"

namespace persim::kernel {
namespace {

using persim::testing::echo_server;
using persim::testing::expect_consistent;
using persim::testing::test_config;

// Property: sleepers wake in deadline order, at their deadlines, in virtual time.
TEST(RunLoop, SleepersWakeInDeadlineOrder) {
  Node node(test_config());
  std::vector<std::pair<std::uint64_t, int>> woke;
  for (int i : {3, 1, 2}) {
    node.spawn("sleeper", [&woke, i](Sys& sys) {
          (void)sys.sleep_for(static_cast<std::uint64_t>(i) * 1000);
          woke.emplace_back(sys.now_ns(), i);
        })
        .ok();
  }
  EXPECT_EQ(node.run(), RunOutcome::quiescent);
  EXPECT_EQ(woke, (std::vector<std::pair<std::uint64_t, int>>{{1000, 1}, {2000, 2}, {3000, 3}}));
  EXPECT_EQ(node.now_ns(), 3000u);
}

// Property: host events run at their time; ties go in registration order.
TEST(RunLoop, HostEventsInTimeThenRegistrationOrder) {
  Node node(test_config());
  std::vector<int> order;
  node.at(200, [&](Node&) { order.push_back(3); });
  node.at(100, [&](Node&) { order.push_back(1); });
  node.at(100, [&](Node&) { order.push_back(2); });
  node.run();
  EXPECT_EQ(order, (std::vector{1, 2, 3}));
}

// Property: run stops at the time limit, and a later run continues from there.
TEST(RunLoop, TimeLimitStopsAndResumes) {
  Node node(test_config());
  int ticks = 0;
  node.spawn("ticker", [&](Sys& sys) {
        for (int i = 0; i < 10; ++i) {
          (void)sys.sleep_for(100);
          ++ticks;
        }
      })
      .ok();
  EXPECT_EQ(node.run({.until_ns = 450}), RunOutcome::time_limit);
  EXPECT_EQ(ticks, 4);
  EXPECT_EQ(node.now_ns(), 450u);
  EXPECT_EQ(node.run(), RunOutcome::quiescent);
  EXPECT_EQ(ticks, 10);
}

// Property: stop() from a host event ends the run.
TEST(RunLoop, StopFromEvent) {
  Node node(test_config());
  node.spawn("ticker", [](Sys& sys) {
        for (;;) (void)sys.sleep_for(100);
      })
      .ok();
  node.at(1000, [](Node& n) { n.stop(); });
  EXPECT_EQ(node.run(), RunOutcome::stopped);
  EXPECT_EQ(node.now_ns(), 1000u);
}

// Property: each kernel call costs kernel_call_cost_ns of virtual time.
TEST(RunLoop, KernelCallsCostVirtualTime) {
  NodeConfig config = test_config();
  config.kernel_call_cost_ns = 250;
  Node node(config);
  std::uint64_t at_end = 0;
  node.spawn("p", [&](Sys& sys) {
        for (int i = 0; i < 4; ++i) (void)sys.yield();
        at_end = sys.now_ns();
      })
      .ok();
  node.run();
  EXPECT_EQ(at_end, 1000u);
}

// Property: a call/reply ping-pong pair, which hands the processor back and forth
// directly, cannot starve another ready process.
TEST(RunLoop, HandoffCannotStarveOthers) {
  Node node(test_config());
  const ProcessId server = node.create_process("server").value();
  const ProcessId client = node.create_process("client").value();
  const Handle ep = node.create_endpoint(server).value();
  const Handle cep = node.grant(server, ep, client, Rights::send()).value();
  node.start(server, echo_server(ep)).ok();
  int calls = 0;
  bool other_ran = false;
  int calls_when_other_ran = -1;
  node.start(client, [&](Sys& sys) {
        Message m{}, out{};
        while (calls < 10'000 && sys.call(Cap<Endpoint>(cep), m, out)) ++calls;
      })
      .ok();
  node.spawn("other", [&](Sys&) {
        other_ran = true;
        calls_when_other_ran = calls;
      })
      .ok();
  node.run();
  EXPECT_TRUE(other_ran);
  EXPECT_LT(calls_when_other_ran, static_cast<int>(handoff_budget_max));
  EXPECT_EQ(calls, 10'000);
}

// Property: a timer coming due interrupts a ping-pong pair promptly.
TEST(RunLoop, DueTimerInterruptsHandoffChain) {
  NodeConfig config = test_config();
  config.kernel_call_cost_ns = 10;
  Node node(config);
  const ProcessId server = node.create_process("server").value();
  const ProcessId client = node.create_process("client").value();
  const Handle ep = node.create_endpoint(server).value();
  const Handle cep = node.grant(server, ep, client, Rights::send()).value();
  node.start(server, echo_server(ep)).ok();
  node.start(client, [&](Sys& sys) {
        Message m{}, out{};
        for (;;) (void)sys.call(Cap<Endpoint>(cep), m, out);
      })
      .ok();
  std::uint64_t fired_at = 0;
  node.at(5000, [&](Node& n) {
    fired_at = n.now_ns();
    n.stop();
  });
  node.run();
  EXPECT_GE(fired_at, 5000u);
  EXPECT_LT(fired_at, 5000u + 10 * 4) << "fired within a call/reply of its deadline";
}

// Property: the same seed gives the same trace hash; another seed another hash.
TEST(RunLoop, TraceHashDependsOnSeedOnly) {
  auto run = [](std::uint64_t seed) {
    Node node(test_config(seed));
    const ProcessId server = node.create_process("server").value();
    const Handle ep = node.create_endpoint(server).value();
    node.start(server, echo_server(ep)).ok();
    for (int i = 0; i < 3; ++i) {
      const ProcessId c = node.create_process("client").value();
      const Handle h = node.grant(server, ep, c, Rights::send()).value();
      node.start(c, [h](Sys& sys) {
            for (int k = 0; k < 5; ++k) {
              Message m{}, out{};
              (void)sys.sleep_for(sys.random_below(1000));
              (void)sys.call(Cap<Endpoint>(h), m, out);
            }
          })
          .ok();
    }
    node.run();
    return node.trace_hash();
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

// Property: split random streams are reproducible and independent of each other.
TEST(Rng, SplitStreamsAreStableAndDistinct) {
  const Rng root(123);
  Rng a1 = root.split(1), a2 = root.split(1), b = root.split(2);
  for (int i = 0; i < 100; ++i) {
    const std::uint64_t x = a1.next();
    EXPECT_EQ(x, a2.next());
    EXPECT_NE(x, b.next());
  }
  Rng r(5);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(r.below(7), 7u);
}

// Property: a sleeper killed before its deadline leaves no timer that moves
// virtual time: the run ends when the rest of the node is done.
TEST(RunLoop, KilledSleeperDoesNotMoveTime) {
  Node node(test_config());
  const ProcessId sleeper = node.spawn("sleeper", [](Sys& sys) { (void)sys.sleep_for(1'000'000'000); }).value();
  node.at(10, [sleeper](Node& n) { EXPECT_TRUE(n.kill(sleeper).ok()); });
  EXPECT_EQ(node.run(), RunOutcome::quiescent);
  EXPECT_EQ(node.now_ns(), 10u);
  EXPECT_EQ(node.stats().timers, 0u);
}

// Property: the message delay fault holds back the calls of the processes it
// names, for virtual time drawn from the seed: the same seed delays the same
// calls by the same amounts; other processes are untouched.
TEST(RunLoop, DelayedCallsTakeLongerDeterministically) {
  auto run = [](std::uint64_t seed, bool delay) {
    Node node(test_config(seed));
    if (delay) node.faults().delay_calls("slow", 5'000, 500'000);  // half the calls, up to 5 us
    const ProcessId server = node.create_process("server").value();
    const Handle ep = node.create_endpoint(server).value();
    node.start(server, echo_server(ep)).ok();
    std::vector<std::uint64_t> returned;
    for (const char* name : {"slow-client", "fast-client"}) {
      const ProcessId c = node.create_process(name).value();
      const Handle cap = node.grant(server, ep, c, Rights::send()).value();
      node.start(c, [cap, &returned, name](Sys& sys) {
            for (int i = 0; i < 20; ++i) {
              Message out{};
              EXPECT_TRUE(sys.call(Cap<Endpoint>(cap), Message{}, out).ok());
            }
            if (std::string_view(name) == "slow-client") returned.push_back(sys.now_ns());
          })
          .ok();
    }
    node.run();
    return std::pair(returned.at(0), node.faults().calls_delayed());
  };
  const auto [plain_ns, plain_delayed] = run(1, false);
  const auto [slow_ns, delayed] = run(1, true);
  EXPECT_EQ(plain_delayed, 0u);
  EXPECT_GT(delayed, 3u);
  EXPECT_LT(delayed, 20u);
  EXPECT_GT(slow_ns, plain_ns);
  EXPECT_EQ(run(1, true), std::pair(slow_ns, delayed)) << "the same seed, the same delays";
  EXPECT_NE(run(2, true).first, slow_ns) << "another seed, other delays";
}

}  // namespace
}  // namespace persim::kernel
