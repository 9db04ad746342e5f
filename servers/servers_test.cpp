// Servers under the supervisor: boot, grants, sessions.
#include <gtest/gtest.h>

#include "servers/system.hpp"

namespace persim::servers {
namespace {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Sys;

kernel::NodeConfig config() {
  kernel::NodeConfig c;
  c.seed = 7;
  return c;
}

// Property: a program started from a manifest finds its grants and can use them.
TEST(Supervisor, StartsProgramWithItsGrants) {
  System system(config());
  system.add_standard_servers();
  ASSERT_TRUE(system.add_program("hello", [](Sys& sys) {
    const ConsoleClient console(sys.granted<Endpoint>("console").value());
    EXPECT_TRUE(console.write(sys, "hello\n").ok());
  }).ok());
  Manifest m;
  m.instance = "hello";
  m.program = "hello";
  m.grants.push_back(parse_grant("console", "console", "").value());
  system.add(m);
  ASSERT_TRUE(system.boot().ok());
  system.node().run({.until_ns = 1'000'000'000});
  EXPECT_EQ(system.console().output["hello"], "hello\n");
}

}  // namespace
}  // namespace persim::servers
