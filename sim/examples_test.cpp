// The example scenarios: each runs deterministically (the determinism self-check),
// its expectations hold, and its timeline and metrics are stable for its seed
// (golden files under examples/scenarios/golden/, regenerated with
// PERSIM_UPDATE_GOLDEN=1). Seeds swept over many runs keep every expectation.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sim/runner.hpp"

namespace persim::sim {
namespace {

const std::string dir = std::string(PERSIM_SOURCE_DIR) + "/examples/scenarios";

std::vector<std::string> scenario_files() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".toml") out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

Scenario load(const std::string& name) {
  auto parsed = load_scenario(dir + "/" + name + ".toml");
  if (auto* e = std::get_if<ConfigError>(&parsed)) ADD_FAILURE() << e->describe();
  return std::get<Scenario>(parsed);
}

// The timeline and summary of a run, without wall-clock figures.
std::string report(const Scenario& s) {
  char* buf = nullptr;
  std::size_t len = 0;
  std::FILE* mem = open_memstream(&buf, &len);
  Outputs out;
  out.timeline = mem;
  const RunResult r = run_scenario(s, s.seed, out);
  std::fclose(mem);
  std::string text(buf, len);
  std::free(buf);
  EXPECT_TRUE(r.ok()) << text;
  // Wall time varies from run to run: drop it from the golden text.
  std::istringstream lines(text);
  std::string stable;
  for (std::string line; std::getline(lines, line);) {
    const std::size_t wall = line.find(" virtual in ");
    if (wall != std::string::npos) line = line.substr(0, wall) + " virtual" + line.substr(line.find(';'));
    stable += line + "\n";
  }
  return stable;
}

class ExampleScenario : public ::testing::TestWithParam<std::string> {};

// Property: the same scenario and seed give the same trace hash.
TEST_P(ExampleScenario, IsDeterministic) {
  const Scenario s = load(GetParam());
  const RunResult a = run_scenario(s, s.seed, {});
  const RunResult b = run_scenario(s, s.seed, {});
  EXPECT_EQ(a.metrics.trace_hash, b.metrics.trace_hash);
  EXPECT_EQ(a.metrics.kernel_calls, b.metrics.kernel_calls);
  EXPECT_TRUE(a.ok());
}

// Property: the timeline and metrics of the scenario's own seed match the golden file.
TEST_P(ExampleScenario, MatchesItsGoldenTimeline) {
  const Scenario s = load(GetParam());
  const std::string got = report(s);
  const std::string path = dir + "/golden/" + GetParam() + ".txt";
  if (std::getenv("PERSIM_UPDATE_GOLDEN") != nullptr) {
    std::filesystem::create_directories(dir + "/golden");
    std::ofstream(path) << got;
    GTEST_SKIP() << "golden file written: " << path;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "no golden file " << path << " (run with PERSIM_UPDATE_GOLDEN=1)";
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(got, want.str());
}

// Property: across many seeds (random kill times among them) the expectations hold.
TEST_P(ExampleScenario, ExpectationsHoldAcrossSeeds) {
  const Scenario s = load(GetParam());
  for (std::uint64_t seed = 1; seed <= 50; ++seed) {
    const RunResult r = run_scenario(s, seed, {});
    EXPECT_TRUE(r.ok()) << GetParam() << " seed " << seed << ": " << (r.failed.empty() ? r.error : r.failed[0]);
  }
}

std::string test_name(const ::testing::TestParamInfo<std::string>& p) {
  std::string n = p.param;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

INSTANTIATE_TEST_SUITE_P(Examples, ExampleScenario, ::testing::ValuesIn(scenario_files()), test_name);

}  // namespace
}  // namespace persim::sim
