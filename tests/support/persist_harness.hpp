// Helpers for tests of libpersist under a System: a program driven from the
// test, booted with the standard servers, restoring itself at each start.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>

#include "libpersist/persist.hpp"
#include "support/system_harness.hpp"

namespace persim::testing {

// A program driven from the test, with the Persistent it restores.
struct Driven {
  DrivenProgram program;
  persist::PersistStatus restored;
  persist::Restored found;
};

// Boots `manifest_grants` for a driven program "app" whose incarnations each
// run `body` (declarations then restore) before taking operations.
inline std::unique_ptr<System> boot_app(Driven& d, std::initializer_list<G> grants,
                                        std::function<void(Sys&, Driven&)> body) {
  auto system = std::make_unique<System>(system_config());
  system->add_standard_servers();
  auto entry = d.program.entry();
  EXPECT_TRUE(system->add_program("app", [&d, body, entry](Sys& sys) {
    body(sys, d);
    entry(sys);
  }).ok());
  Manifest m = manifest("app", "app", grants, RestartPolicy::always);
  m.backoff_ns_initial = 1'000;
  system->add(m);
  EXPECT_TRUE(system->boot().ok());
  return system;
}

}  // namespace persim::testing
