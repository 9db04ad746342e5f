// A scenario: one node's system (servers, programs with manifests and
// parameters), the faults to inject, when to stop, and what must hold at the
// end. Read from TOML; the format is documented in docs/scenarios.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "libpersist/strategy.hpp"
#include "servers/supervisor/manifest.hpp"

namespace persim::sim {

using servers::ConfigError;
using servers::Parsed;

enum class FaultKind : std::uint8_t {
  kill,          // kill an instance's process (a program or a server)
  power_loss,    // the node loses power: every process dies, unsynced writes go
  corrupt,       // flip a bit of the checkpoint store's durable database
  delay,         // hold back an instance's calls (message delay), for the whole run
};

// When a fault fires: at a virtual time, at the n-th kernel call of one
// incarnation, or at random times with a rate (drawn from the run's seed).
struct Fault {
  FaultKind kind = FaultKind::kill;
  std::string target;  // instance (kill)
  std::optional<std::uint64_t> at_ns;
  std::optional<std::uint64_t> after_calls;
  std::uint32_t incarnation = 1;    // after_calls: of which incarnation
  std::optional<double> rate_per_s;  // random kills: mean events per virtual second
  bool rate_from_seed = false;       // swarm testing: the rate is drawn from the seed, uniform in [0, rate_per_s]
  bool torn = false;                 // power_loss: tear the write in progress
  std::uint64_t delay_ns_max = 0;    // delay: each delayed call waits 1..delay_ns_max
  double probability = 1;            // delay: the share of calls delayed
  std::string where;                 // "fault[2]", for messages
};

// Input typed on a console stream at a virtual time ([[input]]).
struct Input {
  std::string stream;
  std::uint64_t at_ns = 0;
  std::string text;
  bool end = false;  // the end of input after `text`
};

struct Expectations {
  std::map<std::string, std::string> console;           // stream -> exact output
  std::map<std::string, std::string> console_contains;   // stream -> substring
  std::map<std::string, std::string> console_every_line;  // stream -> substring every line has
  std::optional<bool> no_refused_grant;
  std::map<std::string, std::uint64_t> restarts;          // instance -> exact number of restarts
  std::optional<std::uint64_t> forgeries_accepted_max;    // made-up handles or restores that got through
  std::map<std::string, std::string> files;               // path -> exact contents
};

struct Scenario {
  std::string name;
  std::string source;     // file name
  std::uint64_t text_hash = 0;  // of the file's bytes: the "scenario hash" in the reproduce line
  std::uint64_t seed = 1;
  std::uint64_t stop_ns = 100'000'000;
  const persist::StrategyKind* strategy = &persist::regrant_strategy();  // never null
  std::uint64_t kernel_call_cost_ns = 100;
  servers::RestartPolicy server_restart = servers::RestartPolicy::always;
  bool durable_store = false;
  std::uint64_t group_commit_window_ns = 0;
  std::vector<servers::Manifest> programs;
  std::vector<Fault> faults;
  std::vector<Input> inputs;
  Expectations expect;
  std::vector<std::string> overrides;  // --set assignments applied, in order
};

// Parses and checks a scenario: syntax, every key, every type, programs and
// their parameters, faults naming instances that exist. Nothing runs before
// it is accepted.
Parsed<Scenario> parse_scenario(std::string_view text, std::string_view source);
Parsed<Scenario> load_scenario(const std::string& path);

// Applies `key=value` overrides (--set): scenario.seed, scenario.stop_ns,
// program.INSTANCE.params.NAME, ... Error: the key or value that is wrong.
std::optional<std::string> apply_override(Scenario& s, std::string_view assignment);

// Checks what overrides could break that the file's checks cover, once all
// are applied: a checkpoint group's members keep one cadence. Error: which
// parameter and why.
std::optional<std::string> check_overridden(const Scenario& s);

}  // namespace persim::sim
