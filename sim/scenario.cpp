#include "sim/scenario.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <set>
#include <sstream>

#include "servers/standard.hpp"
#include "servers/supervisor/toml_walker.hpp"
#include "sim/programs.hpp"

namespace persim::sim {

using servers::ConfigFailure;
using servers::Walker;

namespace {

constexpr std::int64_t ns_max = std::int64_t{1} << 62;

std::uint64_t ms_to_ns(double ms) { return static_cast<std::uint64_t>(ms * 1e6 + 0.5); }

// The designs the brief compares ("Strategies"); those not yet built are
// refused by name, any other name as unknown.
constexpr std::array<std::string_view, 5> designs = {"regrant", "sturdyref", "exported", "whole-system", "replay"};

const persist::StrategyKind* find_strategy(const std::string& name, std::string* problem) {
  if (const persist::StrategyKind* k = persist::find_strategy(name)) return k;
  std::string built;
  for (const persist::StrategyKind& k : persist::strategies()) built += (built.empty() ? "" : ", ") + std::string(k.name);
  if (std::find(designs.begin(), designs.end(), name) != designs.end()) {
    *problem = "strategy \"" + name + "\" is not implemented yet (only " + built +
               (persist::strategies().size() == 1 ? " is)" : " are)");
  } else {
    std::string all;
    for (std::string_view d : designs) all += (all.empty() ? "" : ", ") + std::string(d);
    *problem = "expected one of " + all + ", got \"" + name + "\"";
  }
  return nullptr;
}

void read_scenario_table(const Walker& w, const toml::table& t, Scenario& s) {
  const std::string path = "scenario";
  w.only(t, path, {"name", "seed", "stop_ms", "stop_ns", "strategy"});
  s.name = w.string(t, path, "name", false).value_or("");
  if (const auto seed = w.integer(t, path, "seed", 0, ns_max)) s.seed = static_cast<std::uint64_t>(*seed);
  if (t.get("stop_ms") != nullptr && t.get("stop_ns") != nullptr)
    w.fail(t.get("stop_ns")->source(), path + ".stop_ns", "give stop_ms or stop_ns, not both");
  if (const auto ms = w.real(t, path, "stop_ms", 0)) s.stop_ns = ms_to_ns(*ms);
  if (const auto ns = w.integer(t, path, "stop_ns", 0, ns_max)) s.stop_ns = static_cast<std::uint64_t>(*ns);
  if (const auto name = w.string(t, path, "strategy", false)) {
    std::string problem;
    if (const persist::StrategyKind* k = find_strategy(*name, &problem)) s.strategy = k;
    else w.fail(t.get("strategy")->source(), path + ".strategy", problem);
  }
}

void read_servers_table(const Walker& w, const toml::table& t, Scenario& s) {
  const std::string path = "servers";
  w.only(t, path, {"restart", "checkpoint_store", "group_commit_window_ns"});
  if (const auto ns = w.integer(t, path, "group_commit_window_ns", 0, ns_max))
    s.group_commit_window_ns = static_cast<std::uint64_t>(*ns);
  if (const auto r = w.string(t, path, "restart", false)) {
    if (*r == "never") {
      s.server_restart = servers::RestartPolicy::never;
    } else if (*r == "always") {
      s.server_restart = servers::RestartPolicy::always;
    } else if (*r == "on_failure") {
      s.server_restart = servers::RestartPolicy::on_failure;
    } else {
      w.fail(t.get("restart")->source(), path + ".restart", "expected one of never, always, on_failure, got \"" + *r + "\"");
    }
  }
  if (const auto store = w.string(t, path, "checkpoint_store", false)) {
    if (*store != "memory" && *store != "durable")
      w.fail(t.get("checkpoint_store")->source(), path + ".checkpoint_store",
             "expected memory or durable, got \"" + *store + "\"");

    s.durable_store = *store == "durable";
  }
}

// Programs: each manifest's program must be a built-in one, with valid parameters.
void check_programs(const Walker& w, const toml::table& root, const Scenario& s) {
  const toml::array* list = root.get("program") != nullptr ? root.get("program")->as_array() : nullptr;
  for (std::size_t i = 0; i < s.programs.size(); ++i) {
    const servers::Manifest& m = s.programs[i];
    const toml::table& t = *list->get(i)->as_table();
    const std::string path = "program[" + std::to_string(i) + "]";
    if (servers::find_standard_service(m.instance) != nullptr)
      w.fail(t.source(), path + ".instance", "\"" + m.instance + "\" is a standard server's instance name");
    const ProgramKind* kind = find_program(m.program);
    if (kind == nullptr) {
      std::string known;
      for (const ProgramKind& k : programs()) known += (known.empty() ? "" : ", ") + k.name;
      w.fail(t.get("program")->source(), path + ".program", "unknown program \"" + m.program + "\" (known: " + known + ")");
    }
    std::string error;
    (void)kind->make({m.params, *s.strategy}, &error);
    if (!error.empty()) {
      // "params.NAME: what": point at that key if the file has it.
      const std::string key = error.substr(0, error.find(':'));
      const toml::table* params = t.get("params") != nullptr ? t.get("params")->as_table() : nullptr;
      const toml::node* at = params != nullptr ? params->get(key.substr(7)) : nullptr;
      w.fail(at != nullptr ? at->source() : t.source(), path + "." + key, error.substr(error.find(':') + 2));
    }
    for (const std::string& needed : kind->required_grants) {
      const bool granted = std::any_of(m.grants.begin(), m.grants.end(),
                                       [&](const servers::GrantSpec& g) { return g.name == needed; });
      if (!granted)
        w.fail(t.source(), path + ".grants", "program '" + m.program + "' needs a grant named '" + needed + "'");
    }
    for (const servers::GrantSpec& g : m.grants) {
      const bool standard_service = servers::find_standard_service(g.service) != nullptr;
      const bool provided = std::any_of(s.programs.begin(), s.programs.end(),
                                        [&](const servers::Manifest& p) { return p.provides == g.service; });
      if (!standard_service && !provided)
        w.fail(t.source(), path + ".grants." + g.name,
               "no server provides service \"" + g.service + "\" (standard: " + servers::standard_service_names() + ")");
    }
  }
  // Group members: each needs its group, and a group's members one cadence
  // (an epoch commits once every member has prepared it: a member that
  // checkpoints at another cadence would leave the others waiting for ever).
  std::map<std::string, std::pair<std::string, std::string>> cadence;  // group -> (value, which program set it)
  for (std::size_t i = 0; i < s.programs.size(); ++i) {
    const servers::Manifest& m = s.programs[i];
    const ProgramKind& kind = *find_program(m.program);
    if (kind.group_cadence.empty()) continue;
    const toml::table& t = *list->get(i)->as_table();
    const std::string path = "program[" + std::to_string(i) + "]";
    if (m.group.empty())
      w.fail(t.source(), path + ".group", "program '" + m.program + "' checkpoints with a group: set group = \"NAME\"");
    const auto given = m.params.find(kind.group_cadence);
    std::string value;
    if (given != m.params.end()) value = given->second;
    for (const ParamSpec& spec : kind.params)
      if (spec.name == kind.group_cadence && given == m.params.end()) value = spec.default_value;
    const auto [it, first] = cadence.try_emplace(m.group, value, m.instance);
    if (!first && it->second.first != value) {
      const toml::table* params = t.get("params") != nullptr ? t.get("params")->as_table() : nullptr;
      const toml::node* at = params != nullptr ? params->get(kind.group_cadence) : nullptr;
      w.fail(at != nullptr ? at->source() : t.source(), path + ".params." + kind.group_cadence,
             "group \"" + m.group + "\" checkpoints every " + it->second.first + " (as '" + it->second.second +
                 "' does); '" + m.instance + "' would checkpoint every " + value + " and its group would wait for ever");
    }
  }
}

Fault read_fault(const Walker& w, const toml::table& t, const std::string& path, const Scenario& s) {
  w.only(t, path, {"kind", "target", "at_ms", "at_ns", "after_calls", "incarnation", "rate_per_s",
                   "rate_per_s_max", "mode", "delay_ms_max", "delay_ns_max", "probability"});
  Fault f;
  f.where = path;
  const std::string kind = *w.string(t, path, "kind", true);
  if (kind == "kill" || kind == "crash_server") {
    f.kind = FaultKind::kill;
  } else if (kind == "power_loss") {
    f.kind = FaultKind::power_loss;
  } else if (kind == "corrupt") {
    f.kind = FaultKind::corrupt;
  } else if (kind == "delay") {
    f.kind = FaultKind::delay;
  } else {
    const bool planned = kind == "cut_link" || kind == "torn_write";
    w.fail(t.get("kind")->source(), path + ".kind",
           planned ? "fault \"" + kind + "\" is not implemented yet"
                   : "expected one of kill, crash_server, power_loss, corrupt, delay, got \"" + kind + "\"");
  }
  if (t.get("at_ms") != nullptr && t.get("at_ns") != nullptr)
    w.fail(t.get("at_ns")->source(), path + ".at_ns", "give at_ms or at_ns, not both");
  if (const auto ms = w.real(t, path, "at_ms", 0)) f.at_ns = ms_to_ns(*ms);
  if (const auto ns = w.integer(t, path, "at_ns", 0, ns_max)) f.at_ns = static_cast<std::uint64_t>(*ns);
  if (const auto n = w.integer(t, path, "after_calls", 1, ns_max)) f.after_calls = static_cast<std::uint64_t>(*n);
  if (const auto n = w.integer(t, path, "incarnation", 1, 1'000'000)) f.incarnation = static_cast<std::uint32_t>(*n);
  f.rate_per_s = w.real(t, path, "rate_per_s", 0);
  if (const auto max = w.real(t, path, "rate_per_s_max", 0)) {
    if (f.rate_per_s) w.fail(t.get("rate_per_s_max")->source(), path + ".rate_per_s_max", "give rate_per_s or rate_per_s_max, not both");
    f.rate_per_s = *max;
    f.rate_from_seed = true;
  }
  const int whens = (f.at_ns ? 1 : 0) + (f.after_calls ? 1 : 0) + (f.rate_per_s ? 1 : 0);
  if (f.kind == FaultKind::delay) {
    if (whens != 0)
      w.fail(t.source(), path, "a delay fault lasts the whole run: no at_ms, after_calls, rate_per_s or rate_per_s_max");
    if (const auto ms = w.real(t, path, "delay_ms_max", 0)) f.delay_ns_max = ms_to_ns(*ms);
    if (const auto ns = w.integer(t, path, "delay_ns_max", 1, ns_max)) f.delay_ns_max = static_cast<std::uint64_t>(*ns);
    if (f.delay_ns_max == 0) w.fail(t.source(), path, "give delay_ms_max (or delay_ns_max), above 0");
    f.probability = w.real(t, path, "probability", 0).value_or(1);
    if (f.probability > 1) w.fail(t.get("probability")->source(), path + ".probability", "expected at most 1");
  } else if (t.get("delay_ms_max") != nullptr || t.get("delay_ns_max") != nullptr || t.get("probability") != nullptr) {
    w.fail(t.source(), path, "only delay faults take delay_ms_max, delay_ns_max and probability");
  } else if (whens != 1) {
    w.fail(t.source(), path, "give exactly one of at_ms (or at_ns), after_calls, rate_per_s (or rate_per_s_max)");
  }
  if (f.kind == FaultKind::kill || f.kind == FaultKind::delay) {
    f.target = *w.string(t, path, "target", true);
    const bool standard = servers::find_standard_service(f.target) != nullptr;
    const bool known = standard || std::any_of(s.programs.begin(), s.programs.end(),
                                               [&](const servers::Manifest& m) { return m.instance == f.target; });
    if (!known) w.fail(t.get("target")->source(), path + ".target", "no instance named \"" + f.target + "\"");
  } else if (t.get("target") != nullptr) {
    w.fail(t.get("target")->source(), path + ".target", "a " + kind + " fault has no target (it hits the node)");
  }
  if (f.kind != FaultKind::kill && f.after_calls)
    w.fail(t.get("after_calls")->source(), path + ".after_calls", "only kill faults count kernel calls");
  if ((f.kind == FaultKind::power_loss || f.kind == FaultKind::corrupt) && !f.at_ns)
    w.fail(t.source(), path, kind + " happens at a time: give at_ms or at_ns");
  if (const auto mode = w.string(t, path, "mode", false)) {
    if (f.kind != FaultKind::power_loss) w.fail(t.get("mode")->source(), path + ".mode", "only power_loss takes a mode");
    if (*mode != "clean" && *mode != "torn")
      w.fail(t.get("mode")->source(), path + ".mode", "expected clean or torn, got \"" + *mode + "\"");
    f.torn = *mode == "torn";
  }
  if ((f.kind == FaultKind::power_loss || f.kind == FaultKind::corrupt) && !s.durable_store)
    w.fail(t.source(), path + ".kind", kind + " needs servers.checkpoint_store = \"durable\"");
  return f;
}

std::map<std::string, std::string> string_map(const Walker& w, const toml::table& t, const std::string& path) {
  std::map<std::string, std::string> out;
  for (auto&& [k, v] : t) {
    if (!v.is_string())
      w.fail(v.source(), path + "." + std::string(k.str()), std::string("expected a string, got ") + Walker::type_name(v));
    out.emplace(std::string(k.str()), v.as_string()->get());
  }
  return out;
}

void read_expect(const Walker& w, const toml::table& t, Scenario& s) {
  const std::string path = "expect";
  w.only(t, path, {"console", "console_contains", "console_every_line", "no_refused_grant", "restarts",
                   "forgeries_accepted_max", "files"});
  if (const toml::table* c = w.table(t, path, "console")) s.expect.console = string_map(w, *c, path + ".console");
  if (const toml::table* c = w.table(t, path, "console_contains"))
    s.expect.console_contains = string_map(w, *c, path + ".console_contains");
  if (const toml::table* c = w.table(t, path, "files")) s.expect.files = string_map(w, *c, path + ".files");
  if (const toml::table* c = w.table(t, path, "console_every_line"))
    s.expect.console_every_line = string_map(w, *c, path + ".console_every_line");
  s.expect.no_refused_grant = w.boolean(t, path, "no_refused_grant");
  if (const auto n = w.integer(t, path, "forgeries_accepted_max", 0, ns_max))
    s.expect.forgeries_accepted_max = static_cast<std::uint64_t>(*n);
  if (const toml::table* r = w.table(t, path, "restarts")) {
    for (auto&& [k, v] : *r) {
      const std::string where = path + ".restarts." + std::string(k.str());
      if (!v.is_integer() || v.as_integer()->get() < 0) w.fail(v.source(), where, "expected a whole number");
      s.expect.restarts.emplace(std::string(k.str()), static_cast<std::uint64_t>(v.as_integer()->get()));
    }
  }
}

}  // namespace

Parsed<Scenario> parse_scenario(std::string_view text, std::string_view source) {
  const Walker w(source);
  Scenario s;
  s.source = std::string(source);
  s.text_hash = XXH3_64bits(text.data(), text.size());
  try {
    const toml::table root = toml::parse(text, source);
    w.only(root, "", {"scenario", "node", "servers", "program", "fault", "input", "expect"});
    if (const toml::table* t = w.table(root, "", "scenario")) read_scenario_table(w, *t, s);
    if (const toml::table* t = w.table(root, "", "node")) {
      w.only(*t, "node", {"kernel_call_cost_ns"});
      if (const auto c = w.integer(*t, "node", "kernel_call_cost_ns", 0, 1'000'000'000))
        s.kernel_call_cost_ns = static_cast<std::uint64_t>(*c);
    }
    if (const toml::table* t = w.table(root, "", "servers")) read_servers_table(w, *t, s);
    auto manifests = servers::manifests_from(root, source);
    if (auto* e = std::get_if<ConfigError>(&manifests)) return *e;
    s.programs = std::move(std::get<std::vector<servers::Manifest>>(manifests));
    if (s.programs.empty()) w.fail(root.source(), "program", "a scenario needs at least one [[program]]");
    check_programs(w, root, s);
    if (const toml::node* faults = root.get("fault")) {
      const toml::array* list = faults->as_array();
      if (list == nullptr || !list->is_array_of_tables()) w.fail(faults->source(), "fault", "expected [[fault]] tables");
      for (std::size_t i = 0; i < list->size(); ++i)
        s.faults.push_back(read_fault(w, *list->get(i)->as_table(), "fault[" + std::to_string(i) + "]", s));
    }
    if (const toml::node* inputs = root.get("input")) {
      const toml::array* list = inputs->as_array();
      if (list == nullptr || !list->is_array_of_tables()) w.fail(inputs->source(), "input", "expected [[input]] tables");
      for (std::size_t i = 0; i < list->size(); ++i) {
        const toml::table& t = *list->get(i)->as_table();
        const std::string path = "input[" + std::to_string(i) + "]";
        w.only(t, path, {"stream", "at_ms", "at_ns", "text", "end"});
        Input in;
        in.stream = *w.string(t, path, "stream", true);
        in.text = w.string(t, path, "text", false).value_or("");
        in.end = w.boolean(t, path, "end").value_or(false);
        if (const auto ms = w.real(t, path, "at_ms", 0)) in.at_ns = ms_to_ns(*ms);
        if (const auto ns = w.integer(t, path, "at_ns", 0, ns_max)) in.at_ns = static_cast<std::uint64_t>(*ns);
        s.inputs.push_back(std::move(in));
      }
    }
    if (const toml::table* t = w.table(root, "", "expect")) read_expect(w, *t, s);
    return s;
  } catch (const toml::parse_error& e) {
    return ConfigError{std::string(source), e.source().begin.line, e.source().begin.column, "",
                       std::string(e.description())};
  } catch (const ConfigFailure& f) {
    return f.error;
  }
}

Parsed<Scenario> load_scenario(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ConfigError{path, 0, 0, "", "cannot open the file"};
  std::stringstream text;
  text << in.rdbuf();
  return parse_scenario(text.str(), path);
}

namespace {

std::optional<std::string> apply_one(Scenario& s, std::string_view assignment) {
  const std::size_t eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) return "expected KEY=VALUE, got \"" + std::string(assignment) + "\"";
  const std::string key(assignment.substr(0, eq));
  const std::string value(assignment.substr(eq + 1));
  auto number = [&](std::uint64_t* out) -> std::optional<std::string> {
    try {
      std::size_t used = 0;
      const std::uint64_t v = value.empty() || value[0] < '0' || value[0] > '9' ? 0 : std::stoull(value, &used);
      if (used == value.size() && used > 0 && v <= static_cast<std::uint64_t>(ns_max)) {
        *out = v;
        return std::nullopt;
      }
    } catch (const std::exception&) {
    }
    return key + ": expected a whole number up to 2^62, got \"" + value + "\"";
  };
  if (key == "scenario.seed") return number(&s.seed);
  if (key == "scenario.stop_ns") return number(&s.stop_ns);
  if (key == "scenario.strategy") {
    std::string problem;
    const persist::StrategyKind* k = find_strategy(value, &problem);
    if (k == nullptr) return key + ": " + problem;
    s.strategy = k;
    return std::nullopt;
  }
  if (key == "node.kernel_call_cost_ns") return number(&s.kernel_call_cost_ns);
  // program.INSTANCE.params.NAME
  const std::string prefix = "program.";
  const std::size_t params_at = key.find(".params.");
  if (key.starts_with(prefix) && params_at != std::string::npos) {
    const std::string instance = key.substr(prefix.size(), params_at - prefix.size());
    const std::string name = key.substr(params_at + 8);
    for (servers::Manifest& m : s.programs) {
      if (m.instance != instance) continue;
      servers::Manifest changed = m;
      changed.params[name] = value;
      std::string error;
      (void)find_program(m.program)->make({changed.params, *s.strategy}, &error);
      if (!error.empty()) return key + ": " + error.substr(error.find(':') + 2);
      m = std::move(changed);
      return std::nullopt;
    }
    return key + ": no instance named \"" + instance + "\"";
  }
  return key + ": unknown key (known: scenario.seed, scenario.stop_ns, scenario.strategy, node.kernel_call_cost_ns, "
               "program.INSTANCE.params.NAME)";
}

}  // namespace

std::optional<std::string> apply_override(Scenario& s, std::string_view assignment) {
  std::optional<std::string> error = apply_one(s, assignment);
  if (!error) s.overrides.emplace_back(assignment);
  return error;
}

std::optional<std::string> check_overridden(const Scenario& s) {
  std::map<std::string, std::pair<std::string, std::string>> cadence;  // group -> (value, which instance set it)
  for (const servers::Manifest& m : s.programs) {
    const ProgramKind& kind = *find_program(m.program);
    if (kind.group_cadence.empty() || m.group.empty()) continue;
    const auto given = m.params.find(kind.group_cadence);
    std::string value;
    for (const ParamSpec& spec : kind.params)
      if (spec.name == kind.group_cadence) value = spec.default_value;
    if (given != m.params.end()) value = given->second;
    const auto [it, first] = cadence.try_emplace(m.group, value, m.instance);
    // Compared as numbers ("02" is 2); the programs have checked they are numbers.
    auto number = [](const std::string& v) { return v.empty() ? 0 : std::stoull(v); };
    if (!first && number(it->second.first) != number(value)) {
      // Named by the instance whose cadence an override set, if one did.
      const std::string key = kind.group_cadence;
      auto overridden = [&](const std::string& instance) {
        return std::any_of(s.overrides.begin(), s.overrides.end(), [&](const std::string& o) {
          return o.starts_with("program." + instance + ".params." + key + "=");
        });
      };
      const std::string named = overridden(m.instance) ? m.instance : it->second.second;
      return "program." + named + ".params." + key + ": group \"" + m.group + "\": '" + it->second.second +
             "' would checkpoint every " + it->second.first + " and '" + m.instance + "' every " + value +
             "; its members need one cadence, or the group waits for ever (set both)";
    }
  }
  return std::nullopt;
}

}  // namespace persim::sim
