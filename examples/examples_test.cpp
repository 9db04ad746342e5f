// The example programs under the supervisor, from their manifest files.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "examples/programs.hpp"
#include "servers/supervisor/manifest.hpp"

namespace persim::examples {
namespace {

using namespace persim::servers;

// Boots the standard servers, the examples, and the manifests of `file`.
void load(System& system, const std::string& file) {
  std::ifstream in(std::string(PERSIM_SOURCE_DIR) + "/examples/" + file);
  std::stringstream text;
  text << in.rdbuf();
  const auto parsed = parse_manifests(text.str(), file);
  ASSERT_TRUE(std::holds_alternative<std::vector<Manifest>>(parsed)) << std::get<ConfigError>(parsed).describe();
  system.add_standard_servers();
  register_examples(system);
  for (const Manifest& m : std::get<std::vector<Manifest>>(parsed)) system.add(m);
  ASSERT_TRUE(system.boot().ok());
}

std::string text(const TrustedStore::Bytes* b) {
  return b == nullptr ? "<none>" : std::string(reinterpret_cast<const char*>(b->data()), b->size());
}

// Property: the counter prints its ten steps, in order, once each.
TEST(Examples, CounterPrintsItsSteps) {
  System system;
  load(system, "counter.toml");
  (void)system.node().run({.until_ns = 50'000'000});
  std::string want;
  for (int i = 1; i <= 10; ++i) want += "count " + std::to_string(i) + "\n";
  EXPECT_EQ(system.console().output["counter"], want);
}

// Property: the logger's lines all reach the file, in order, once each, though
// the file server is killed mid-run: it re-binds through the supervisor.
TEST(Examples, LoggerSurvivesAFileServerCrash) {
  System system;
  load(system, "logger.toml");
  system.node().at(3'500'000, [&](kernel::Node& node) { ASSERT_TRUE(node.kill(*system.process_of("fs")).ok()); });
  (void)system.node().run({.until_ns = 50'000'000});
  std::string want;
  for (int i = 1; i <= 10; ++i) want += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(text(system.fs().store.get("file:/var/log/app")), want);
  EXPECT_EQ(system.console().output["logger"], "logger: done\n");
  ASSERT_EQ(system.supervisor().restarts.size(), 1u);
  EXPECT_EQ(system.supervisor().restarts[0].instance, "fs");
}

// Property: the bank's transactions keep the total, whatever the seed.
TEST(Examples, BankKeepsTheTotal) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    kernel::NodeConfig config;
    config.seed = seed;
    System system(config);
    load(system, "bank.toml");
    (void)system.node().run({.until_ns = 50'000'000});
    const long alice = std::stol(text(system.kv().store.get(std::string("kv:accounts\0alice", 17))));
    const long bob = std::stol(text(system.kv().store.get(std::string("kv:accounts\0bob", 15))));
    EXPECT_EQ(alice + bob, 200) << "seed " << seed;
    std::istringstream lines(system.console().output["bank"]);
    int steps = 0;
    for (std::string line; std::getline(lines, line); ++steps) EXPECT_TRUE(line.ends_with("total 200")) << line;
    EXPECT_EQ(steps, 10);
  }
}

}  // namespace
}  // namespace persim::examples
