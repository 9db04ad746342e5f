// Runs a scenario deterministically from a seed and reports what happened: a
// timeline, a summary, the expectations checked, and optionally JSON Lines
// events, a Chrome trace (Perfetto) and metrics as JSON or CSV.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "sim/scenario.hpp"

namespace persim::sim {

struct Outputs {
  std::FILE* timeline = nullptr;  // the human timeline and summary (null: none)
  std::string events_path;        // JSON Lines, one event a line
  std::string trace_path;         // Chrome trace event JSON
  std::string metrics_path;       // .json or .csv by extension
};

// Figures of one run. Virtual time is the simulation's; wall time is the host's.
struct Metrics {
  std::uint64_t seed = 0;
  std::uint64_t scenario_hash = 0;
  std::uint64_t trace_hash = 0;
  std::uint64_t virtual_ns = 0;
  double wall_s = 0;
  std::uint64_t kernel_calls = 0;
  std::uint64_t processes_started = 0;
  std::uint64_t deaths = 0;                 // processes killed or crashed
  std::uint64_t restarts = 0;               // restarts the supervisor made
  std::uint64_t refused_grants = 0;         // starts refused for a grant
  std::uint64_t failed_lookups = 0;         // the kernel's audit: made-up, stale, wrong-type, under-privileged handles
  std::uint64_t refused_restores = 0;       // servers refusing client-supplied state
  std::uint64_t forgeries_accepted = 0;     // a made-up handle or a restore that got through (must stay 0)
  std::uint64_t redone_lines = 0;           // console lines printed more than once: effects re-done
  std::uint64_t recovery_virtual_ns_max = 0;  // death to the next incarnation's start, worst case
  std::uint64_t recovery_virtual_ns_total = 0;
  std::uint64_t recoveries = 0;
  std::string overrides;  // the --set assignments of the run, ';'-separated
  std::uint64_t checkpoints = 0;            // images the checkpoint store committed
  std::uint64_t checkpoint_bytes = 0;
  std::uint64_t delta_checkpoints = 0;      // of the checkpoints, deltas (incremental images)
  std::uint64_t group_commits = 0;          // group epochs committed
  std::uint64_t group_aborts = 0;           // group epochs aborted (a member died while others waited)
  std::uint64_t group_rollbacks = 0;        // groups taken back an epoch (a member's image of it damaged)
  std::uint64_t checkpoint_transactions = 0;  // backend commits (durable: one sync each, shared by a group)
  std::uint64_t disk_syncs = 0;             // the durable store's disk
  std::uint64_t power_losses = 0;
};

struct RunResult {
  Metrics metrics;
  std::vector<std::string> failed;  // expectations that did not hold, each saying what and why
  std::string error;                // the run could not be set up (empty: it ran)
  bool ok() const { return error.empty() && failed.empty(); }
};

// The reproduce line printed first: version, scenario hash, seed, command.
std::string reproduce_line(const Scenario& s, std::uint64_t seed, const std::vector<std::string>& overrides);

RunResult run_scenario(const Scenario& s, std::uint64_t seed, const Outputs& outputs);

// One CSV header and row (sweeps merge rows of many runs).
std::string metrics_csv_header();
std::string metrics_csv_row(const Metrics& m, bool ok);
std::string metrics_json(const Metrics& m, const std::vector<std::string>& failed);

}  // namespace persim::sim
