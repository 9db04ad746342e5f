// The world above the nodes: one node runs exactly as its own loop did; two
// nodes interleave in time order, within the lookahead; stop, time limits and
// world events.
#include "kernel/world.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "support/harness.hpp"

namespace persim::kernel {
namespace {

using persim::testing::test_config;

// A mixed workload on one node: a server waiting with receive_until deadlines,
// clients sleeping a random time between calls (hand-off chains between), and
// a host event that kills a client.
void build_workload(Node& node) {
  const ProcessId server = node.create_process("server").value();
  const Handle ep = node.create_endpoint(server).value();
  ASSERT_TRUE(node.start(server, [ep](Sys& sys) {
                    Message request, response;
                    for (;;) {
                      Result<Received> r = sys.receive_until(Cap<Endpoint>(ep), request, sys.now_ns() + 3'000);
                      if (!r) {
                        if (r.error() == Error::timed_out) continue;
                        return;
                      }
                      response.put<std::uint64_t>(0, request.get<std::uint64_t>(0) + 1);
                      (void)sys.reply(r->reply, response);
                    }
                  })
                  .ok());
  for (int i = 0; i < 4; ++i) {
    const ProcessId c = node.create_process("client").value();
    const Handle h = node.grant(server, ep, c, Rights::send()).value();
    ASSERT_TRUE(node.start(c, [h, i](Sys& sys) {
                      Message m{}, out{};
                      for (int k = 0; k < 40 + 10 * i; ++k) {
                        if (sys.random_below(4) == 0) (void)sys.sleep_for(sys.random_below(5'000));
                        m.put<std::uint64_t>(0, static_cast<std::uint64_t>(k));
                        if (!sys.call(Cap<Endpoint>(h), m, out)) return;
                      }
                    })
                    .ok());
  }
  node.at(7'000, [](Node& n) {
    for (const ProcessId p : n.process_ids())
      if (n.name(p) == "client" && n.alive(p)) {
        (void)n.kill(p);
        return;
      }
  });
}

struct Phase {
  RunOutcome outcome;
  std::uint64_t now_ns;
  std::uint64_t trace_hash;
  bool operator==(const Phase&) const = default;
};

// Three runs of the workload: to a time limit (the clock ends past it, by the
// call that crossed it), to a stop from a host event, to a later limit.
std::vector<Phase> run_phases(Node& node, World& world) {
  std::vector<Phase> phases;
  phases.push_back({world.run({.until_ns = 5'000}), node.now_ns(), node.trace_hash()});
  node.at(9'000, [](Node& n) { n.stop(); });
  phases.push_back({world.run({.until_ns = 20'000}), node.now_ns(), node.trace_hash()});
  phases.push_back({world.run({.until_ns = 60'000}), node.now_ns(), node.trace_hash()});
  return phases;
}

// Property: a node alone in a world runs exactly as the node's own run loop
// did before there was a world: the same outcomes, clocks and trace hashes,
// pinned from that loop (commit 7c98cda, default kernel call cost), whatever
// the world's lookahead, and the same for a node given no world.
TEST(World, OneNodeRunsAsTheNodeLoopDid) {
  const std::vector<Phase> pinned_seed_1 = {{RunOutcome::time_limit, 5'090, 0xeb64248dc53c3b00},
                                            {RunOutcome::stopped, 9'274, 0x322d146a592bbbe5},
                                            {RunOutcome::time_limit, 60'024, 0x3588fb6a7059dd97}};
  const std::vector<Phase> pinned_seed_2 = {{RunOutcome::time_limit, 5'200, 0x3612241d76ab02ee},
                                            {RunOutcome::stopped, 9'200, 0x2fcf6f679a57ce14},
                                            {RunOutcome::time_limit, 60'004, 0x33fd7a347b7e7a86}};
  for (const std::uint64_t lookahead_ns : {0, 1'000, 1'000'000}) {
    for (const std::uint64_t seed : {1, 2}) {
      NodeConfig config;
      config.seed = seed;
      World world(lookahead_ns);
      Node node(config, &world);
      build_workload(node);
      EXPECT_EQ(run_phases(node, world), seed == 1 ? pinned_seed_1 : pinned_seed_2) << "lookahead " << lookahead_ns;
      EXPECT_EQ(node.stats().kernel_calls, seed == 1 ? 461u : 463u);
      EXPECT_EQ(world.now_ns(), node.now_ns());
    }
  }
  Node alone;  // a world of its own
  ASSERT_EQ(alone.world().nodes().size(), 1u);
  EXPECT_EQ(alone.world().nodes()[0], &alone);
  build_workload(alone);
  EXPECT_EQ(run_phases(alone, alone.world()), pinned_seed_1);
}

// What the tickers of a world saw: (node, virtual time) at each wake, in the
// order the wakes happened.
using Log = std::vector<std::pair<int, std::uint64_t>>;

// A process on `node` that wakes every `period_ns`, `ticks` times (forever if 0), logging each wake.
void add_ticker(Node& node, int id, std::uint64_t period_ns, int ticks, Log& log) {
  ASSERT_TRUE(node.spawn("ticker", [id, period_ns, ticks, &log](Sys& sys) {
                    for (int i = 0; ticks == 0 || i < ticks; ++i) {
                      if (!sys.sleep_for(period_ns)) return;
                      log.emplace_back(id, sys.now_ns());
                    }
                  })
                  .ok());
}

struct TwoTickers {
  explicit TwoTickers(std::uint64_t lookahead_ns, int ticks_a = 50, int ticks_b = 30)
      : world(lookahead_ns), a(test_config(1), &world), b(test_config(2), &world) {
    add_ticker(a, 0, 70, ticks_a, log);
    add_ticker(b, 1, 110, ticks_b, log);
  }
  World world;
  Node a;
  Node b;
  Log log;
};

// The furthest any event ran ahead of a later event of another node: 0 if the
// wakes happened in time order.
std::uint64_t max_lag_ns(const Log& log) {
  std::uint64_t lag = 0;
  for (std::size_t i = 0; i < log.size(); ++i)
    for (std::size_t j = i + 1; j < log.size(); ++j)
      if (log[i].first != log[j].first && log[i].second > log[j].second)
        lag = std::max(lag, log[i].second - log[j].second);
  return lag;
}

// Property: with no lookahead, two nodes with independent events interleave
// in time order, the same way every run, and each node runs as it would alone
// (its trace hash is its hash in a world of its own).
TEST(World, TwoNodesInterleaveInTimeOrderDeterministically) {
  TwoTickers first(0);
  EXPECT_EQ(first.world.nodes().size(), 2u);
  EXPECT_EQ(first.world.run(), RunOutcome::quiescent);
  ASSERT_EQ(first.log.size(), 80u);
  EXPECT_TRUE(std::is_sorted(first.log.begin(), first.log.end(),
                             [](const auto& x, const auto& y) { return x.second < y.second; }));
  EXPECT_EQ(max_lag_ns(first.log), 0u);
  EXPECT_EQ(first.world.now_ns(), 3'500u);  // a's 50 wakes of 70 ns; b's end at 3,300
  EXPECT_EQ(first.b.now_ns(), 3'300u);

  TwoTickers second(0);
  (void)second.world.run();
  EXPECT_EQ(second.log, first.log);
  EXPECT_EQ(second.a.trace_hash(), first.a.trace_hash());

  Log alone_log;
  Node alone_a(test_config(1));
  add_ticker(alone_a, 0, 70, 50, alone_log);
  (void)alone_a.run();
  EXPECT_EQ(alone_a.trace_hash(), first.a.trace_hash());
}

// Property: with a lookahead, a node may run ahead of another, but never by
// more than the lookahead: no node's event comes after another node's event
// that is later by more than it.
TEST(World, LookaheadBoundsHowFarANodeRunsAhead) {
  for (const std::uint64_t lookahead_ns : {250, 1'000}) {
    TwoTickers t(lookahead_ns, 200, 130);
    EXPECT_EQ(t.world.run(), RunOutcome::quiescent);
    ASSERT_EQ(t.log.size(), 330u);
    const std::uint64_t lag = max_lag_ns(t.log);
    EXPECT_LE(lag, lookahead_ns);
    EXPECT_GT(lag, lookahead_ns / 2) << "the nodes ran in lock step: the lookahead was not used";
  }
}

// Property: stop() from a host event on one node ends the whole world's run at
// the next turn, before the other node runs past that time; a later run goes
// on, and a time limit leaves every clock at the limit.
TEST(World, StopAndTimeLimitHoldForEveryNode) {
  TwoTickers t(0, 0, 0);  // tickers that never end
  t.a.at(1'000, [](Node& n) { n.world().stop(); });
  EXPECT_EQ(t.world.run(), RunOutcome::stopped);
  EXPECT_EQ(t.a.now_ns(), 1'000u);
  EXPECT_LE(t.b.now_ns(), 1'000u);
  EXPECT_LE(t.log.back().second, 1'000u);
  EXPECT_EQ(t.world.run({.until_ns = 2'000}), RunOutcome::time_limit);
  EXPECT_EQ(t.a.now_ns(), 2'000u);
  EXPECT_EQ(t.b.now_ns(), 2'000u);
  EXPECT_EQ(t.world.now_ns(), 2'000u);
  EXPECT_EQ(t.log.back().second, 1'980u);  // b's 18th wake; a's 28th was at 1,960
}

// Property: a world event runs once every node has run its events before its
// time and none after it, with every clock at its time, even where the
// lookahead would let the nodes run far ahead; world events go in time, then
// posting, order.
TEST(World, PostedEventsRunBetweenEveryNodesEarlierAndLaterEvents) {
  TwoTickers t(100'000);
  std::vector<std::pair<int, std::size_t>> ran;  // (event, wakes logged before it)
  t.world.post(2'500, [&](World& w) {
    ran.emplace_back(2, t.log.size());
    EXPECT_EQ(w.now_ns(), 2'500u);
    EXPECT_EQ(t.a.now_ns(), 2'500u);
    EXPECT_EQ(t.b.now_ns(), 2'500u);
  });
  t.world.post(1'000, [&](World&) { ran.emplace_back(1, t.log.size()); });
  t.world.post(2'500, [&](World&) { ran.emplace_back(3, t.log.size()); });
  EXPECT_EQ(t.world.run(), RunOutcome::quiescent);
  ASSERT_EQ(ran.size(), 3u);
  EXPECT_EQ(ran[0].first, 1);
  EXPECT_EQ(ran[1].first, 2);
  EXPECT_EQ(ran[2].first, 3);
  for (const auto& [event, before] : ran) {
    const std::uint64_t at_ns = event == 1 ? 1'000 : 2'500;
    for (std::size_t i = 0; i < t.log.size(); ++i) {
      if (i < before) {
        EXPECT_LT(t.log[i].second, at_ns) << "event " << event << ", wake " << i;
      } else {
        EXPECT_GE(t.log[i].second, at_ns) << "event " << event << ", wake " << i;
      }
    }
  }
}

}  // namespace
}  // namespace persim::kernel
