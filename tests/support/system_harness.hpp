// Helpers for tests of a System (servers under a supervisor): manifests in one
// line, running until something holds, and a program the test drives from the
// host one operation at a time.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "servers/system.hpp"

namespace persim::testing {

using namespace persim::servers;
using kernel::Cap;
using kernel::Endpoint;
using kernel::ProcessId;
using kernel::Sys;

inline kernel::NodeConfig system_config(std::uint64_t seed = 7) {
  kernel::NodeConfig c;
  c.seed = seed;
  return c;
}

struct G {
  std::string name, source, mode;
};

inline Manifest manifest(std::string instance, std::string program, std::initializer_list<G> grants,
                         RestartPolicy restart = RestartPolicy::never) {
  Manifest m;
  m.instance = std::move(instance);
  m.program = std::move(program);
  m.restart = restart;
  m.backoff_ns_initial = 10'000;
  for (const G& g : grants) {
    const kernel::Result<GrantSpec> spec = parse_grant(g.name, g.source, g.mode);
    EXPECT_TRUE(spec.ok()) << g.name;
    if (spec) m.grants.push_back(*spec);
  }
  return m;
}

// Runs the node in small steps until `done` holds; false if `limit_ns` of
// virtual time pass first.
// Real I/O, if any, is polled as the node runs (`real_io`).
inline bool run_until(System& system, const std::function<bool()>& done, std::uint64_t limit_ns = 100'000'000,
                      kernel::RealIo* real_io = nullptr) {
  kernel::Node& node = system.node();
  const std::uint64_t end = node.now_ns() + limit_ns;
  while (!done()) {
    if (node.now_ns() >= end) return false;
    (void)node.run({.until_ns = node.now_ns() + 1'000, .real_io = real_io});
  }
  return true;
}

// A program the test drives: each incarnation takes the operations the host
// posts, one at a time, between sleeps of a microsecond.
class DrivenProgram {
 public:
  using Operation = std::function<void(Sys&)>;

  kernel::Entry entry() {
    return [this](Sys& sys) {
      ++incarnations_;
      while (sys.sleep_for(1'000).ok()) {
        if (Operation op = std::exchange(next_, nullptr)) {
          op(sys);
          ++done_;
        }
      }
    };
  }

  // Posts `op` and runs until it has completed; false if it has not within
  // `limit_ns` of virtual time (it blocked, or its process died).
  bool run(System& system, Operation op, std::uint64_t limit_ns = 100'000'000) {
    next_ = std::move(op);
    const std::uint64_t target = done_ + 1;
    const bool finished = run_until(system, [&] { return done_ >= target; }, limit_ns);
    next_ = nullptr;
    return finished;
  }

  int incarnations() const { return incarnations_; }

 private:
  Operation next_;
  std::uint64_t done_ = 0;
  int incarnations_ = 0;
};

}  // namespace persim::testing
