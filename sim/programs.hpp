// The programs a scenario can run, by name, with their parameters
// ([program.params] in a scenario file). Each is an ordinary program: it uses
// only what its manifest grants and libpersist.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kernel/process.hpp"
#include "libpersist/strategy.hpp"

namespace persim::sim {

using Params = std::map<std::string, std::string>;

struct ParamSpec {
  std::string name;
  std::string default_value;
  std::string meaning;
};

// What a program is built with: its parameters and the run's choices for it.
struct ProgramSetup {
  const Params& params;
  const persist::StrategyKind& strategy;  // how it restores itself (the scenario's)
};

struct ProgramKind {
  std::string name;
  std::string summary;
  std::vector<std::string> grants;           // what its manifest should grant, described
  std::vector<std::string> required_grants;  // the grant names it cannot start without
  std::vector<ParamSpec> params;
  // A program that checkpoints with a group names the parameter that sets
  // its cadence: it needs a manifest `group`, and every member of its group
  // must checkpoint at the same cadence (else an epoch waits for ever).
  std::string group_cadence;
  // Builds the entry for `setup` (every parameter name checked against `params`).
  // Returns an error message naming the bad parameter, or the entry.
  std::function<kernel::Entry(const ProgramSetup& setup, std::string* error)> make;
};

// Every built-in program, in name order.
const std::vector<ProgramKind>& programs();
const ProgramKind* find_program(std::string_view name);

}  // namespace persim::sim
