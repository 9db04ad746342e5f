// Small helpers for kernel tests: build a node, run processes, collect what they saw.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernel/node.hpp"
#include "kernel/sys.hpp"

namespace persim::testing {

using namespace persim::kernel;

// A node with deterministic defaults for tests: a small stack, zero-cost calls
// unless a test wants time to flow.
inline NodeConfig test_config(std::uint64_t seed = 1) {
  NodeConfig c;
  c.seed = seed;
  c.kernel_call_cost_ns = 0;
  return c;
}

// Fails the current test with every inconsistency the node reports.
inline void expect_consistent(const Node& node) {
  for (const std::string& problem : node.check_invariants()) ADD_FAILURE() << problem;
}

// Blocks the calling process for good (on a notification nobody signals), so it
// keeps its capabilities while the test inspects them. The node stays quiescent.
inline void park(Sys& sys) {
  const Result<Cap<Notification>> n = sys.notification_create();
  if (n) (void)sys.wait(n.value());
}

inline Message text_message(std::string_view s, std::uint64_t label = 0) {
  Message m{};
  m.label = label;
  EXPECT_TRUE(m.set_text(s));
  return m;
}

// A server that answers every call with its request's text prefixed by `prefix`,
// forever (until killed or its endpoint goes).
inline Entry echo_server(Handle ep, std::string prefix = "echo:") {
  return [ep, prefix](Sys& sys) {
    Message request{}, response{};
    Result<Received> r = sys.receive(Cap<Endpoint>(ep), request);
    while (r) {
      response = {};
      response.label = r->badge;
      const std::string text = prefix + std::string(request.text());
      (void)response.set_text(text.substr(0, msg_bytes_max));
      r = sys.reply_receive(r->reply, response, Cap<Endpoint>(ep), request);
    }
  };
}

}  // namespace persim::testing
