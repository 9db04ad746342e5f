#include "sim/runner.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "kernel/rng.hpp"
#include "kernel/world.hpp"
#include "servers/system.hpp"
#include "sim/programs.hpp"

namespace persim::sim {

using kernel::Op;
using kernel::TraceEvent;
using servers::SupervisorEventKind;
using servers::System;

namespace {

struct TimelineEntry {
  std::uint64_t time_ns;
  std::string who;
  std::string what;
};

std::string ms(std::uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(ns) / 1e6);
  return buf;
}

std::string hex64(std::uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Watches every kernel event: names processes, collects JSON Lines events,
// builds the Chrome trace, and notes deaths and refused handles for the timeline.
class Recorder : public kernel::TraceSink {
 public:
  Recorder(const kernel::Node& node, const Outputs& out)
      : node_(node), events_enabled_(!out.events_path.empty()), trace_enabled_(!out.trace_path.empty()) {}

  void on_event(const TraceEvent& e) override {
    if (e.op == Op::spawn) {
      const std::string spawned = node_.name({e.process, e.process_generation});
      names_[key(e.process, e.process_generation)] = spawned;
      newest_[e.process] = spawned;
    }
    const std::string name = name_of(e);
    // A process that never ran (a start refused) does not count as a death.
    if (e.op == Op::start) started_.insert(key(e.process, e.process_generation));
    if (e.op == Op::process_start && e.peer != 0) started_.insert(key(e.peer, current_generation(e.peer)));
    const bool ran = started_.contains(key(e.process, e.process_generation));
    if (events_enabled_) {
      nlohmann::ordered_json j;
      j["t_ns"] = e.time_ns;
      j["source"] = "kernel";
      j["process"] = name;
      j["op"] = std::string(kernel::to_string(e.op));
      if (e.error != 0) j["error"] = std::string(kernel::to_string(static_cast<kernel::Error>(e.error)));
      if (e.peer != 0) j["peer"] = peer_name(e.peer);
      j["arg"] = e.arg;
      add_event(e.time_ns, std::move(j));
    }
    if (ran && e.op == Op::death) timeline.push_back({e.time_ns, name, "killed"});
    if (ran && e.op == Op::crash) timeline.push_back({e.time_ns, name, "crashed"});
    if (ran && (e.op == Op::death || e.op == Op::crash)) ++deaths;
    if (e.error != 0 && kernel::is_lookup_error(static_cast<kernel::Error>(e.error)) &&
        e.error != static_cast<std::uint8_t>(kernel::Error::severed))
      timeline.push_back({e.time_ns, name,
                          std::string(kernel::to_string(e.op)) + " refused: " +
                              std::string(kernel::to_string(static_cast<kernel::Error>(e.error)))});
    if (trace_enabled_) chrome(e, name);
  }

  void add_event(std::uint64_t time_ns, nlohmann::ordered_json j) {
    if (events_enabled_) events_.emplace_back(time_ns, j.dump());
  }

  // All events, in time order (the kernel's and the supervisor's, merged).
  bool write_events(const std::string& path) {
    std::ofstream out(path);
    std::stable_sort(events_.begin(), events_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [t, line] : events_) out << line << '\n';
    return static_cast<bool>(out);
  }

  // The Chrome trace: one track per process incarnation, IPC as flows from
  // the replier to the caller.
  void chrome(const TraceEvent& e, const std::string& name) {
    const std::uint32_t tid = e.process == 0 ? 0 : track(key(e.process, e.process_generation), name);
    const double ts = static_cast<double>(e.time_ns) / 1000.0;
    const std::string op(kernel::to_string(e.op));
    if (e.op == Op::reply && e.peer != 0 && e.error == 0) {
      const std::uint32_t caller = track(key(e.peer, current_generation(e.peer)), peer_name(e.peer));
      const std::uint64_t id = ++flows_;
      trace_.push_back({{"ph", "X"}, {"pid", 1}, {"tid", tid}, {"ts", ts}, {"dur", 0.05}, {"name", "reply"}});
      trace_.push_back({{"ph", "s"}, {"pid", 1}, {"tid", tid}, {"ts", ts}, {"id", id}, {"name", "ipc"}, {"cat", "ipc"}});
      trace_.push_back({{"ph", "X"}, {"pid", 1}, {"tid", caller}, {"ts", ts + 0.05}, {"dur", 0.05}, {"name", "call returns"}});
      trace_.push_back({{"ph", "f"}, {"bp", "e"}, {"pid", 1}, {"tid", caller}, {"ts", ts + 0.05}, {"id", id},
                        {"name", "ipc"}, {"cat", "ipc"}});
      return;
    }
    if (e.op == Op::spawn || e.op == Op::exit || e.op == Op::death || e.op == Op::crash || e.op == Op::grant ||
        e.error != 0)
      trace_.push_back({{"ph", "i"}, {"s", "t"}, {"pid", 1}, {"tid", tid}, {"ts", ts},
                        {"name", e.error != 0 ? op + " " + std::string(kernel::to_string(static_cast<kernel::Error>(e.error))) : op}});
  }

  void add_instant(std::uint64_t time_ns, const std::string& name, const std::string& what) {
    if (trace_enabled_)
      trace_.push_back({{"ph", "i"}, {"s", "g"}, {"pid", 1}, {"tid", 0}, {"ts", static_cast<double>(time_ns) / 1000.0},
                        {"name", name + ": " + what}});
  }

  bool write_trace(const std::string& path) {
    nlohmann::json doc;
    trace_.push_back({{"ph", "M"}, {"pid", 1}, {"name", "process_name"}, {"args", {{"name", "node"}}}});
    doc["traceEvents"] = std::move(trace_);
    doc["displayTimeUnit"] = "ns";
    std::ofstream out(path);
    out << doc.dump() << '\n';
    return static_cast<bool>(out);
  }

  std::vector<TimelineEntry> timeline;
  std::uint64_t deaths = 0;
  std::uint64_t power_losses = 0;

 private:
  static std::uint64_t key(std::uint32_t index, std::uint32_t generation) {
    return static_cast<std::uint64_t>(generation) << 32 | index;
  }
  std::string name_of(const TraceEvent& e) const {
    if (e.process == 0) return "node";
    const auto it = names_.find(key(e.process, e.process_generation));
    return it != names_.end() ? it->second : "#" + std::to_string(e.process);
  }
  // The peer of an event is named by slot only: the process spawned there last.
  std::string peer_name(std::uint32_t index) const {
    const auto it = newest_.find(index);
    return it != newest_.end() ? it->second : "#" + std::to_string(index);
  }
  std::uint32_t current_generation(std::uint32_t index) const {
    for (const auto& [k, n] : names_)
      if (static_cast<std::uint32_t>(k) == index && n == peer_name(index)) return static_cast<std::uint32_t>(k >> 32);
    return 0;
  }
  // A track per incarnation, numbered in order of appearance.
  std::uint32_t track(std::uint64_t process_key, const std::string& name) {
    const auto [it, fresh] = tracks_.emplace(process_key, static_cast<std::uint32_t>(tracks_.size() + 1));
    if (fresh)
      trace_.push_back({{"ph", "M"}, {"pid", 1}, {"tid", it->second}, {"name", "thread_name"}, {"args", {{"name", name}}}});
    return it->second;
  }

  const kernel::Node& node_;
  std::map<std::uint64_t, std::string> names_;
  std::map<std::uint32_t, std::string> newest_;
  std::set<std::uint64_t> started_;
  bool events_enabled_;
  std::vector<std::pair<std::uint64_t, std::string>> events_;
  bool trace_enabled_;
  nlohmann::json trace_ = nlohmann::json::array();
  std::map<std::uint64_t, std::uint32_t> tracks_;
  std::uint64_t flows_ = 0;
};

// Schedules the scenario's faults on the node.
// A power loss at the fault's time, clean or torn; its own seed for what is lost.
void schedule_power_loss(const Fault& f, std::uint64_t loss_seed, System& system, Recorder& rec) {
  auto loss = [&system, &rec, f, loss_seed](kernel::Node& n) {
    rec.timeline.push_back({n.now_ns(), "fault", std::string("power loss") + (f.torn ? " (torn write)" : "")});
    rec.add_instant(n.now_ns(), "fault", "power loss");
    ++rec.power_losses;
    (void)system.power_loss(f.torn ? servers::PowerLoss::torn : servers::PowerLoss::clean, loss_seed);
  };
  if (f.at_ns) system.node().at(*f.at_ns, loss);
}

// A bit flipped at the fault's time in a byte anywhere in the store's files
// (its database and its write-ahead log, where recent commits live), uniform
// over their bytes.
void schedule_corrupt(const Fault& f, kernel::Rng rng, System& system, Recorder& rec) {
  auto corrupt = [&system, &rec, rng](kernel::Node& n) mutable {
    const auto files = system.disk()->files();
    std::uint64_t total = 0;
    for (const auto& [name, size] : files) total += size;
    if (total == 0) return;
    std::uint64_t offset = rng.below(total);
    for (const auto& [name, size] : files) {
      if (offset >= size) {
        offset -= size;
        continue;
      }
      system.disk()->corrupt(name, offset, static_cast<int>(rng.below(8)));
      rec.timeline.push_back({n.now_ns(), "fault", "corrupt " + name + " at byte " + std::to_string(offset)});
      return;
    }
  };
  if (f.at_ns) system.node().at(*f.at_ns, corrupt);
}

// Kills of the fault's target: at a time, at a kernel call of one
// incarnation, and at random times with a rate (exponential gaps from `rng`,
// this fault's own stream; with rate_from_seed the rate itself is drawn, so a
// sweep covers calm and stormy runs).
void schedule_kills(const Scenario& s, const Fault& f, kernel::Rng rng, System& system, Recorder& rec) {
  kernel::Node& node = system.node();
  auto kill = [&system, &rec, f](kernel::Node& n) {
    const auto pid = system.process_of(f.target);
    if (!pid) return;  // between incarnations, or done: nothing to kill
    rec.timeline.push_back({n.now_ns(), "fault", "kill " + f.target});
    rec.add_instant(n.now_ns(), "fault", "kill " + f.target);
    (void)n.kill(*pid);
  };
  if (f.at_ns) node.at(*f.at_ns, kill);
  if (f.after_calls) {
    const std::string process = f.target + "#" + std::to_string(f.incarnation);
    node.faults().kill_at_call(process, *f.after_calls);
    rec.timeline.push_back({0, "fault", "armed: kill " + process + " at its kernel call " + std::to_string(*f.after_calls)});
  }
  if (!f.rate_per_s) return;
  const double rate = f.rate_from_seed ? *f.rate_per_s * static_cast<double>(rng.below(1'000'001)) / 1e6 : *f.rate_per_s;
  if (f.rate_from_seed) {
    char text[64];
    std::snprintf(text, sizeof text, "%.1f", rate);
    rec.timeline.push_back({0, "fault", "kills of " + f.target + " at " + text + " per second (drawn from the seed)"});
  }
  if (rate <= 0) return;
  const double mean_gap_ns = 1e9 / rate;
  for (double t = 0;;) {
    const double u = (static_cast<double>(rng.next() >> 11) + 0.5) / 9007199254740992.0;
    t += -mean_gap_ns * std::log(u);
    if (t >= static_cast<double>(s.stop_ns)) break;
    node.at(static_cast<std::uint64_t>(t), kill);
  }
}

void schedule_faults(const Scenario& s, std::uint64_t seed, System& system, Recorder& rec) {
  const kernel::Rng faults_rng = kernel::Rng(seed).split(0xfa017);
  for (std::size_t i = 0; i < s.faults.size(); ++i) {
    const Fault& f = s.faults[i];
    switch (f.kind) {
      case FaultKind::delay:
        system.node().faults().delay_calls(f.target + "#", f.delay_ns_max,
                                           static_cast<std::uint32_t>(f.probability * 1e6 + 0.5));
        break;
      case FaultKind::power_loss: schedule_power_loss(f, faults_rng.split(1000 + i).next(), system, rec); break;
      case FaultKind::corrupt: schedule_corrupt(f, faults_rng.split(2000 + i), system, rec); break;
      case FaultKind::kill: schedule_kills(s, f, faults_rng.split(i), system, rec); break;
    }
  }
}

std::string quote_text(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::vector<std::string> check(const Scenario& s, System& system, const Metrics& m) {
  std::vector<std::string> failed;
  const Expectations& x = s.expect;
  for (const auto& [stream, want] : x.console) {
    const std::string got = system.console().output[stream];
    if (got != want) failed.push_back("console." + stream + ": expected " + quote_text(want) + ", got " + quote_text(got));
  }
  for (const auto& [stream, want] : x.console_contains) {
    const std::string got = system.console().output[stream];
    if (got.find(want) == std::string::npos)
      failed.push_back("console_contains." + stream + ": " + quote_text(want) + " not in " + quote_text(got));
  }
  for (const auto& [stream, want] : x.console_every_line) {
    std::istringstream lines(system.console().output[stream]);
    for (std::string line; std::getline(lines, line);)
      if (line.find(want) == std::string::npos) {
        failed.push_back("console_every_line." + stream + ": " + quote_text(line) + " lacks " + quote_text(want));
        break;
      }
  }
  if (x.no_refused_grant.value_or(false) && m.refused_grants > 0)
    failed.push_back("no_refused_grant: " + std::to_string(m.refused_grants) + " starts were refused");
  for (const auto& [instance, want] : x.restarts) {
    std::uint64_t got = 0;
    for (const servers::RestartRecord& r : system.supervisor().restarts) got += r.instance == instance ? 1 : 0;
    if (got != want)
      failed.push_back("restarts." + instance + ": expected " + std::to_string(want) + ", got " + std::to_string(got));
  }
  if (x.forgeries_accepted_max && m.forgeries_accepted > *x.forgeries_accepted_max)
    failed.push_back("forgeries_accepted_max: " + std::to_string(m.forgeries_accepted) + " forgeries got through");
  for (const auto& [path, want] : x.files) {
    const std::optional<std::string> got = system.fs().contents(path);
    if (got != want)
      failed.push_back("files." + path + ": expected " + quote_text(want) + ", got " + (got ? quote_text(*got) : "no such file"));
  }
  return failed;
}

std::uint64_t count_redone_lines(System& system) {
  std::uint64_t redone = 0;
  for (const auto& [stream, text] : system.console().output) {
    std::set<std::string> seen;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) redone += seen.insert(line).second ? 0 : 1;
  }
  return redone;
}

std::uint64_t count_forgeries(System& system) {
  std::uint64_t n = 0;
  for (const auto& [stream, text] : system.console().output) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);)
      // What the forger program reports: a made-up handle accepted, or a restore answered ok.
      n += ((line.rfind("made-up handle ", 0) == 0 && line.ends_with(": ACCEPTED")) ||
            (line.rfind("restore through ", 0) == 0 && line.ends_with(": ok")))
               ? 1
               : 0;
  }
  return n;
}

void print_timeline(std::FILE* out, std::vector<TimelineEntry> entries) {
  std::stable_sort(entries.begin(), entries.end(),
                   [](const TimelineEntry& a, const TimelineEntry& b) { return a.time_ns < b.time_ns; });
  for (const TimelineEntry& e : entries)
    std::fprintf(out, "%10s ms  %-14s %s\n", ms(e.time_ns).c_str(), e.who.c_str(), e.what.c_str());
}

// One run in progress: a world of one node, the system on it, and what the
// run records. The world is declared first: the system's node leaves it when
// destroyed.
struct Run {
  Run(const kernel::NodeConfig& config, const Outputs& out) : system(config, &world), rec(system.node(), out) {}
  kernel::World world;
  System system;
  Recorder rec;
};

kernel::NodeConfig node_config(const Scenario& s, std::uint64_t seed) {
  kernel::NodeConfig config;
  config.seed = seed;
  config.kernel_call_cost_ns = s.kernel_call_cost_ns;
  return config;
}

// Each program instance registered under its own name (the program with its
// parameters and the scenario's strategy) and added with its manifest. An
// error names the instance.
std::string add_programs(const Scenario& s, System& system) {
  for (const servers::Manifest& manifest : s.programs) {
    std::string error;
    kernel::Entry entry = find_program(manifest.program)->make({manifest.params, *s.strategy}, &error);
    if (!error.empty()) return "program " + manifest.instance + ": " + error;
    servers::Manifest m2 = manifest;
    m2.program = manifest.program + "@" + manifest.instance;
    if (!system.add_program(m2.program, std::move(entry))) return "program " + manifest.instance + ": cannot register";
    system.add(std::move(m2));
  }
  return {};
}

// Build: the servers, the programs, the recorder, the faults and the input
// the scenario schedules, then boot. An error says what could not be built.
std::string build(const Scenario& s, std::uint64_t seed, Run& run) {
  System& system = run.system;
  Recorder& rec = run.rec;
  if (s.durable_store) system.use_durable_checkpoints(s.group_commit_window_ns);
  system.add_standard_servers(s.server_restart);
  if (std::string error = add_programs(s, system); !error.empty()) return error;
  system.node().set_trace_sink(&rec);
  schedule_faults(s, seed, system, rec);
  for (const Input& in : s.inputs) {
    system.node().at(in.at_ns, [&system, &rec, in](kernel::Node& n) {
      rec.timeline.push_back({n.now_ns(), "input", in.stream + " <- " + quote_text(in.text) + (in.end ? " (end)" : "")});
      system.console_input(in.stream, in.text, in.end);
    });
  }
  if (const kernel::Status b = system.boot(); !b) return "boot: " + std::string(kernel::to_string(b.error()));
  return {};
}

// Run: the world until the scenario's stop, timed on the host's clock
// (outside the simulated world).
void run_world(const Scenario& s, Run& run, Metrics& m) {
  const auto wall_start = std::chrono::steady_clock::now();
  (void)run.world.run({.until_ns = s.stop_ns});
  m.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  run.system.node().set_trace_sink(nullptr);
}

// Supervisor events into the timeline; recovery from each death to the next start.
void collect_supervisor(Run& run, Metrics& m) {
  System& system = run.system;
  Recorder& rec = run.rec;
  std::map<std::string, std::uint64_t> died_at;
  for (const servers::SupervisorEvent& e : system.supervisor().events) {
    if (e.kind == SupervisorEventKind::started) ++m.processes_started;
    if (e.kind == SupervisorEventKind::start_refused) ++m.refused_grants;
    if (e.kind == SupervisorEventKind::exited) died_at[e.instance] = e.time_ns;
    if (e.kind == SupervisorEventKind::started && died_at.contains(e.instance)) {
      const std::uint64_t recovery = e.time_ns - died_at[e.instance];
      m.recovery_virtual_ns_max = std::max(m.recovery_virtual_ns_max, recovery);
      m.recovery_virtual_ns_total += recovery;
      ++m.recoveries;
      died_at.erase(e.instance);
    }
    if (e.kind == SupervisorEventKind::announced || e.kind == SupervisorEventKind::waiting) continue;
    rec.timeline.push_back({e.time_ns, "supervisor",
                            e.instance + " #" + std::to_string(e.incarnation) + " " + std::string(to_string(e.kind)) +
                                (e.detail.empty() ? "" : ": " + e.detail)});
    rec.add_instant(e.time_ns, "supervisor", e.instance + " " + std::string(to_string(e.kind)));
    nlohmann::ordered_json j{{"t_ns", e.time_ns}, {"source", "supervisor"}, {"instance", e.instance},
                             {"incarnation", e.incarnation}, {"kind", std::string(to_string(e.kind))},
                             {"detail", e.detail}};
    rec.add_event(e.time_ns, std::move(j));
  }
  for (const servers::RestartRecord& r : system.supervisor().restarts) {
    ++m.restarts;
    std::string severed, regranted, refused;
    for (const std::string& g : r.severed) severed += (severed.empty() ? "" : ", ") + g;
    for (const std::string& g : r.regranted) regranted += (regranted.empty() ? "" : ", ") + g;
    for (const auto& [g, why] : r.refused) refused += (refused.empty() ? "" : "; ") + g + " (" + why + ")";
    rec.timeline.push_back({r.time_ns, "restart log",
                            r.instance + " #" + std::to_string(r.incarnation) + " after " +
                                kernel::to_string(r.cause) + ": severed [" + severed + "] + " +
                                std::to_string(r.severed_other) + " others; re-granted [" + regranted + "]" +
                                (refused.empty() ? "" : "; refused [" + refused + "]")});
  }
}

// Collect: the metrics the node, the servers and the supervisor kept.
void collect(Run& run, Metrics& m) {
  System& system = run.system;
  Recorder& rec = run.rec;
  const kernel::NodeStats stats = system.node().stats();
  m.trace_hash = system.node().trace_hash();
  m.virtual_ns = run.world.now_ns();
  m.kernel_calls = stats.kernel_calls;
  m.deaths = rec.deaths;
  m.failed_lookups = system.node().audit().total();
  m.refused_restores = system.supervisor().audit.refused_restores;
  for (const auto& host : system.hosts()) m.refused_restores += host->audit.refused_restores;
  m.redone_lines = count_redone_lines(system);
  m.forgeries_accepted = count_forgeries(system);
  m.checkpoints = system.ckpt().stats.commits;
  m.checkpoint_bytes = system.ckpt().stats.bytes;
  m.delta_checkpoints = system.ckpt().stats.deltas;
  m.group_commits = system.ckpt().group_commits;
  m.group_aborts = system.ckpt().group_aborts;
  m.group_rollbacks = system.ckpt().group_rollbacks;
  m.checkpoint_transactions = system.ckpt().stats.transactions;
  m.disk_syncs = system.disk() != nullptr ? system.disk()->stats().syncs : 0;
  m.power_losses = rec.power_losses;
  collect_supervisor(run, m);
}

void print_summary(std::FILE* out, const Metrics& m, const std::vector<std::string>& failed) {
  const double ratio = m.wall_s > 0 ? static_cast<double>(m.virtual_ns) / 1e9 / m.wall_s : 0;
  const std::string groups = m.group_commits + m.group_aborts + m.group_rollbacks == 0
                                 ? std::string()
                                 : "; group epochs: " + std::to_string(m.group_commits) + " committed, " +
                                       std::to_string(m.group_aborts) + " aborted, " +
                                       std::to_string(m.group_rollbacks) + " rolled back";
  std::fprintf(out,
               "\nsummary: %s ms virtual in %.4f s wall (virtual/wall %.1fx); %llu kernel calls; %llu deaths, "
               "%llu restarts, %llu refused starts\n"
               "  work re-done: %llu console lines; recovery (death to restart, virtual): mean %s ms, max %s ms\n"
               "  audit: %llu failed lookups, %llu refused restores, %llu forgeries accepted\n"
               "  checkpoints: %llu (%llu bytes, %llu deltas) in %llu transactions, %llu disk syncs, %llu power "
               "losses%s; trace hash %s\n",
               ms(m.virtual_ns).c_str(), m.wall_s, ratio, static_cast<unsigned long long>(m.kernel_calls),
               static_cast<unsigned long long>(m.deaths), static_cast<unsigned long long>(m.restarts),
               static_cast<unsigned long long>(m.refused_grants), static_cast<unsigned long long>(m.redone_lines),
               ms(m.recoveries == 0 ? 0 : m.recovery_virtual_ns_total / m.recoveries).c_str(),
               ms(m.recovery_virtual_ns_max).c_str(), static_cast<unsigned long long>(m.failed_lookups),
               static_cast<unsigned long long>(m.refused_restores),
               static_cast<unsigned long long>(m.forgeries_accepted),
               static_cast<unsigned long long>(m.checkpoints), static_cast<unsigned long long>(m.checkpoint_bytes),
               static_cast<unsigned long long>(m.delta_checkpoints),
               static_cast<unsigned long long>(m.checkpoint_transactions), static_cast<unsigned long long>(m.disk_syncs),
               static_cast<unsigned long long>(m.power_losses), groups.c_str(), hex64(m.trace_hash).c_str());
  if (failed.empty()) {
    std::fprintf(out, "expectations: all held\n");
  } else {
    for (const std::string& f : failed) std::fprintf(out, "FAILED %s\n", f.c_str());
  }
}

// Report: the trace and events files, the timeline with the console and the
// summary, and the metrics file, as `out` asks.
void report(Run& run, RunResult& result, const Outputs& out) {
  const Metrics& m = result.metrics;
  Recorder& rec = run.rec;
  if (!out.trace_path.empty() && !rec.write_trace(out.trace_path)) result.error = out.trace_path + ": cannot write";
  if (!out.events_path.empty() && !rec.write_events(out.events_path)) result.error = out.events_path + ": cannot write";
  if (out.timeline != nullptr) {
    print_timeline(out.timeline, rec.timeline);
    std::fprintf(out.timeline, "\nconsole\n");
    for (const auto& [stream, text] : run.system.console().output) {
      std::istringstream lines(text);
      for (std::string line; std::getline(lines, line);) std::fprintf(out.timeline, "  %-12s| %s\n", stream.c_str(), line.c_str());
    }
    print_summary(out.timeline, m, result.failed);
  }
  if (!out.metrics_path.empty()) {
    std::ofstream metrics(out.metrics_path);
    if (out.metrics_path.ends_with(".csv")) {
      metrics << metrics_csv_header() << '\n' << metrics_csv_row(m, result.failed.empty()) << '\n';
    } else {
      metrics << metrics_json(m, result.failed) << '\n';
    }
  }
}

}  // namespace

std::string reproduce_line(const Scenario& s, std::uint64_t seed, const std::vector<std::string>& overrides) {
  std::string line = "persim " PERSIM_VERSION "  scenario " + s.source + " (" + hex64(s.text_hash) + ")" +
                     (s.name.empty() ? "" : " \"" + s.name + "\"") + "  seed " +
                     std::to_string(seed) + "  reproduce: persim run " + s.source + " --seed " + std::to_string(seed);
  for (const std::string& o : overrides) line += " --set " + o;
  return line;
}

RunResult run_scenario(const Scenario& s, std::uint64_t seed, const Outputs& out) {
  RunResult result;
  Metrics& m = result.metrics;
  m.seed = seed;
  m.scenario_hash = s.text_hash;
  for (const std::string& o : s.overrides) m.overrides += (m.overrides.empty() ? "" : ";") + o;
  Run run(node_config(s, seed), out);
  result.error = build(s, seed, run);
  if (!result.error.empty()) return result;
  run_world(s, run, m);
  collect(run, m);
  result.failed = check(s, run.system, m);
  report(run, result, out);
  return result;
}

std::string metrics_csv_header() {
  return "seed,scenario_hash,ok,trace_hash,virtual_ns,wall_s,kernel_calls,processes_started,deaths,restarts,"
         "refused_grants,failed_lookups,refused_restores,forgeries_accepted,redone_lines,recovery_virtual_ns_max,"
         "recoveries,checkpoints,checkpoint_bytes,delta_checkpoints,checkpoint_transactions,disk_syncs,power_losses,"
         "group_commits,group_aborts,group_rollbacks,overrides";
}

std::string metrics_csv_row(const Metrics& m, bool ok) {
  std::ostringstream row;
  row << m.seed << ',' << hex64(m.scenario_hash) << ',' << (ok ? 1 : 0) << ',' << hex64(m.trace_hash) << ','
      << m.virtual_ns << ',' << m.wall_s << ',' << m.kernel_calls << ',' << m.processes_started << ',' << m.deaths
      << ',' << m.restarts << ',' << m.refused_grants << ',' << m.failed_lookups << ',' << m.refused_restores << ','
      << m.forgeries_accepted << ',' << m.redone_lines << ',' << m.recovery_virtual_ns_max << ',' << m.recoveries
      << ',' << m.checkpoints << ',' << m.checkpoint_bytes << ',' << m.delta_checkpoints << ','
      << m.checkpoint_transactions << ',' << m.disk_syncs << ',' << m.power_losses << ',' << m.group_commits << ','
      << m.group_aborts << ',' << m.group_rollbacks << ",\"" << m.overrides << '"';
  return row.str();
}

std::string metrics_json(const Metrics& m, const std::vector<std::string>& failed) {
  nlohmann::ordered_json j;
  j["seed"] = m.seed;
  j["scenario_hash"] = hex64(m.scenario_hash);
  j["ok"] = failed.empty();
  j["failed"] = failed;
  j["trace_hash"] = hex64(m.trace_hash);
  j["virtual_ns"] = m.virtual_ns;
  j["wall_s"] = m.wall_s;
  j["kernel_calls"] = m.kernel_calls;
  j["processes_started"] = m.processes_started;
  j["deaths"] = m.deaths;
  j["restarts"] = m.restarts;
  j["refused_grants"] = m.refused_grants;
  j["failed_lookups"] = m.failed_lookups;
  j["refused_restores"] = m.refused_restores;
  j["forgeries_accepted"] = m.forgeries_accepted;
  j["redone_lines"] = m.redone_lines;
  j["recovery_virtual_ns_max"] = m.recovery_virtual_ns_max;
  j["checkpoints"] = m.checkpoints;
  j["checkpoint_bytes"] = m.checkpoint_bytes;
  j["delta_checkpoints"] = m.delta_checkpoints;
  j["checkpoint_transactions"] = m.checkpoint_transactions;
  j["disk_syncs"] = m.disk_syncs;
  j["power_losses"] = m.power_losses;
  j["group_commits"] = m.group_commits;
  j["group_aborts"] = m.group_aborts;
  j["group_rollbacks"] = m.group_rollbacks;
  j["recoveries"] = m.recoveries;
  j["overrides"] = m.overrides;
  return j.dump(2);
}

}  // namespace persim::sim
