// Scenarios: every kind of bad input refused before anything runs, with
// file:line:column, the key and what was expected; overrides checked the same way.
#include <gtest/gtest.h>

#include "sim/runner.hpp"
#include "sim/scenario.hpp"

namespace persim::sim {
namespace {

constexpr std::string_view minimal = R"(
[[program]]
instance = "c"
program = "counter"
[program.grants]
console = "console"
ckpt = "ckpt"
)";

std::string error(std::string_view text) {
  const auto parsed = parse_scenario(text, "s.toml");
  if (std::holds_alternative<Scenario>(parsed)) return "accepted";
  return std::get<ConfigError>(parsed).describe();
}

TEST(Scenario, MinimalIsAccepted) {
  const auto parsed = parse_scenario(minimal, "s.toml");
  ASSERT_TRUE(std::holds_alternative<Scenario>(parsed)) << std::get<ConfigError>(parsed).describe();
  const Scenario& s = std::get<Scenario>(parsed);
  EXPECT_EQ(s.seed, 1u);
  EXPECT_EQ(s.programs.size(), 1u);
  EXPECT_NE(s.text_hash, 0u);
}

// Property: each kind of mistake is named with where and what.
TEST(Scenario, BadInputIsRefusedWithWhereAndWhat) {
  const std::string base(minimal);
  EXPECT_EQ(error("[scenario\n"), "s.toml:1:10: Error while parsing table header: expected ']', saw '\\n'");
  EXPECT_EQ(error("[scenario]\nsed = 3\n" + base),
            "s.toml:2:7: scenario.sed: unknown key (expected one of: name, seed, stop_ms, stop_ns, strategy)");
  EXPECT_EQ(error("[scenario]\nseed = \"three\"\n" + base), "s.toml:2:8: scenario.seed: expected an integer, got a string");
  EXPECT_EQ(error("[scenario]\nstrategy = \"sturdyref\"\n" + base),
            "s.toml:2:12: scenario.strategy: strategy \"sturdyref\" is not implemented yet (only regrant is)");
  EXPECT_EQ(error(base + "[program.params]\nsteps = \"ten\"\n"),
            "s.toml:9:9: program[0].params.steps: expected a whole number, got \"ten\"");
  EXPECT_EQ(error(base + "[program.params]\nsped = 3\n"),
            "s.toml:9:8: program[0].params.sped: unknown parameter of program 'counter'");
  EXPECT_EQ(error("[[program]]\nprogram = \"nosuch\"\n"),
            "s.toml:2:11: program[0].program: unknown program \"nosuch\" (known: bank, counter, echo, forger, ledger, logger, "
            "teller)");
  EXPECT_EQ(error("[[program]]\nprogram = \"counter\"\ngrants = { console = \"console\" }\n"),
            "s.toml:1:1: program[0].grants: program 'counter' needs a grant named 'ckpt'");
  EXPECT_EQ(error("[[program]]\nprogram = \"forger\"\ngrants = { console = \"console\", db = \"postgres:main\" }\n"),
            "s.toml:1:1: program[0].grants.db: no server provides service \"postgres\" (standard: console, fs, kv, "
            "ckpt)");
  EXPECT_EQ(error(base + "[[fault]]\nkind = \"kill\"\ntarget = \"ghost\"\nat_ms = 1\n"),
            "s.toml:10:10: fault[0].target: no instance named \"ghost\"");
  EXPECT_EQ(error(base + "[[fault]]\nkind = \"kill\"\ntarget = \"c\"\n"),
            "s.toml:8:1: fault[0]: give exactly one of at_ms (or at_ns), after_calls, rate_per_s (or rate_per_s_max)");
  EXPECT_EQ(error(base + "[[fault]]\nkind = \"meteor\"\nat_ms = 1\n"),
            "s.toml:9:8: fault[0].kind: expected one of kill, crash_server, power_loss, corrupt, delay, got \"meteor\"");
  EXPECT_EQ(error(base + "[[fault]]\nkind = \"kill\"\ntarget = \"c\"\nat_ms = -1\n"),
            "s.toml:11:9: fault[0].at_ms: expected a number of at least 0");
  EXPECT_EQ(error(base + "[expect]\nrestarts = { c = \"one\" }\n"), "s.toml:9:18: expect.restarts.c: expected a whole number");
  EXPECT_EQ(error("[scenario]\nseed = 1\n"), "s.toml:1:1: program: a scenario needs at least one [[program]]");
  EXPECT_EQ(error(base + "[[fault]]\nkind = \"power_loss\"\nat_ms = 1\n"),
            "s.toml:8:1: fault[0].kind: power_loss needs servers.checkpoint_store = \"durable\"");
  EXPECT_EQ(error("[servers]\ncheckpoint_store = \"durable\"\n" + base + "[[fault]]\nkind = \"power_loss\"\nrate_per_s = 1\n"),
            "s.toml:10:1: fault[0]: power_loss happens at a time: give at_ms or at_ns");
  EXPECT_EQ(error("bogus = 1\n" + base), "s.toml:1:9: bogus: unknown key (expected one of: scenario, node, servers, program, "
                                         "fault, input, expect)");
  EXPECT_EQ(error(base + "[[fault]]\nkind = \"kill\"\ntarget = \"c\"\nat_ms = 1\nat_ns = 5\n"),
            "s.toml:12:9: fault[0].at_ns: give at_ms or at_ns, not both");
}

// Property: a group member without a group, and members of one group that
// would checkpoint at different cadences (the group would wait for ever), are
// refused before anything runs.
TEST(Scenario, GroupMembersNeedTheirGroupAndOneCadence) {
  const std::string ledger = "[[program]]\ninstance = \"ledger\"\nprogram = \"ledger\"\nprovides = \"ledger\"\n";
  const std::string teller =
      "[[program]]\ninstance = \"teller\"\nprogram = \"teller\"\ngroup = \"bank\"\n"
      "grants = { ledger = \"ledger:main\", console = \"console\", ckpt = \"ckpt\" }\n";
  EXPECT_EQ(error(ledger + "grants = { ckpt = \"ckpt\" }\n" + teller),
            "s.toml:1:1: program[0].group: program 'ledger' checkpoints with a group: set group = \"NAME\"");
  EXPECT_EQ(error(ledger + "group = \"bank\"\ngrants = { ckpt = \"ckpt\" }\nparams = { every = 3 }\n" + teller),
            "s.toml:8:1: program[1].params.every: group \"bank\" checkpoints every 3 (as 'ledger' does); 'teller' "
            "would checkpoint every 2 and its group would wait for ever");
  EXPECT_EQ(error(ledger + "group = \"bank\"\ngrants = { ckpt = \"ckpt\" }\n" + teller), "accepted");

  // Overrides are checked once all are applied: one member's cadence alone is
  // refused, both together are not.
  Scenario s = std::get<Scenario>(parse_scenario(ledger + "group = \"bank\"\ngrants = { ckpt = \"ckpt\" }\n" + teller, "s.toml"));
  ASSERT_FALSE(apply_override(s, "program.teller.params.every=5").has_value());
  EXPECT_EQ(check_overridden(s).value_or("accepted"),
            "program.teller.params.every: group \"bank\": 'ledger' would checkpoint every 2 and 'teller' every 5; "
            "its members need one cadence, or the group waits for ever (set both)");
  ASSERT_FALSE(apply_override(s, "program.ledger.params.every=05").has_value());
  EXPECT_EQ(check_overridden(s).value_or("accepted"), "accepted") << "05 is 5";
}

// Property: --set overrides are checked like the file is.
TEST(Scenario, OverridesAreChecked) {
  Scenario s = std::get<Scenario>(parse_scenario(minimal, "s.toml"));
  EXPECT_FALSE(apply_override(s, "scenario.seed=9").has_value());
  EXPECT_EQ(s.seed, 9u);
  EXPECT_FALSE(apply_override(s, "program.c.params.every=5").has_value());
  EXPECT_EQ(s.programs[0].params.at("every"), "5");
  EXPECT_EQ(apply_override(s, "scenario.seed=x").value(), "scenario.seed: expected a whole number up to 2^62, got \"x\"");
  EXPECT_EQ(apply_override(s, "scenario.seed=-1").value(), "scenario.seed: expected a whole number up to 2^62, got \"-1\"");
  EXPECT_EQ(s.overrides, (std::vector<std::string>{"scenario.seed=9", "program.c.params.every=5"}));
  EXPECT_EQ(apply_override(s, "program.c.params.every=often").value(),
            "program.c.params.every: expected a whole number, got \"often\"");
  EXPECT_EQ(apply_override(s, "program.zz.params.every=1").value(), "program.zz.params.every: no instance named \"zz\"");
  EXPECT_EQ(apply_override(s, "seed").value(), "expected KEY=VALUE, got \"seed\"");
  EXPECT_EQ(apply_override(s, "program.c.params.cold_bytes=2000000").value(),
            "program.c.params.cold_bytes: at most 1048576 (1 MiB: four images must fit the slot's 4 MiB quota)");
  EXPECT_EQ(apply_override(s, "program.c.params.full_every=4294967296").value(),
            "program.c.params.full_every: at most 4294967295");
  EXPECT_FALSE(apply_override(s, "program.c.params.full_every=8").has_value());
}

// Property: the scenario's strategy is resolved from libpersist's registry,
// in the file and by --set; a design not yet built, and an unknown name, are
// refused by name and leave the scenario's strategy as it was.
TEST(Scenario, StrategyIsResolvedByName) {
  const std::string base(minimal);
  const Scenario plain = std::get<Scenario>(parse_scenario(base, "s.toml"));
  ASSERT_NE(plain.strategy, nullptr);
  EXPECT_EQ(plain.strategy->name, "regrant");
  Scenario s = std::get<Scenario>(parse_scenario("[scenario]\nstrategy = \"regrant\"\n" + base, "s.toml"));
  EXPECT_EQ(s.strategy, persist::find_strategy("regrant"));
  EXPECT_EQ(error("[scenario]\nstrategy = \"eros\"\n" + base),
            "s.toml:2:12: scenario.strategy: expected one of regrant, sturdyref, exported, whole-system, replay, got "
            "\"eros\"");
  EXPECT_EQ(apply_override(s, "scenario.strategy=replay").value(),
            "scenario.strategy: strategy \"replay\" is not implemented yet (only regrant is)");
  EXPECT_EQ(apply_override(s, "scenario.strategy=").value(),
            "scenario.strategy: expected one of regrant, sturdyref, exported, whole-system, replay, got \"\"");
  EXPECT_EQ(s.strategy, persist::find_strategy("regrant"));
  EXPECT_FALSE(apply_override(s, "scenario.strategy=regrant").has_value());
  EXPECT_EQ(s.overrides, (std::vector<std::string>{"scenario.strategy=regrant"}));
}

// Property: a delay fault holds back the named instance's calls (its output
// is the same, later); a delay with a time is refused.
TEST(Scenario, DelayFaultSlowsTheInstanceOnly) {
  const std::string base = std::string(minimal) + "[program.params]\nsteps = 3\nevery = 1\n";
  const auto plain = std::get<Scenario>(parse_scenario(base, "s.toml"));
  const auto slowed = std::get<Scenario>(
      parse_scenario(base + "[[fault]]\nkind = \"delay\"\ntarget = \"c\"\ndelay_ms_max = 2\n", "s.toml"));
  const RunResult a = run_scenario(plain, 1, {});
  const RunResult b = run_scenario(slowed, 1, {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_GT(b.metrics.virtual_ns, a.metrics.virtual_ns);
  EXPECT_EQ(error(base + "[[fault]]\nkind = \"delay\"\ntarget = \"c\"\ndelay_ms_max = 2\nat_ms = 1\n"),
            "s.toml:11:1: fault[0]: a delay fault lasts the whole run: no at_ms, after_calls, rate_per_s or rate_per_s_max");
}

}  // namespace
}  // namespace persim::sim
