#include "servers/supervisor/manifest.hpp"

#include <optional>
#include <set>
#include <toml++/toml.h>

#include "servers/standard.hpp"
#include "servers/supervisor/toml_walker.hpp"

namespace persim::servers {

std::string ConfigError::describe() const {
  // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, wrongly) about "a" + b chains here.
  std::string out = source;
  if (line != 0) {
    out.append(":").append(std::to_string(line)).append(":").append(std::to_string(column));
  }
  out.append(": ");
  if (!key.empty()) out.append(key).append(": ");
  return out.append(message);
}

namespace {

constexpr std::int64_t ns_max = std::int64_t{1} << 62;

RestartPolicy policy(const Walker& w, const toml::table& t, const std::string& path) {
  const std::optional<std::string> s = w.string(t, path, "restart", false);
  if (!s || *s == "never") return RestartPolicy::never;
  if (*s == "always") return RestartPolicy::always;
  if (*s == "on_failure") return RestartPolicy::on_failure;
  w.fail(t.get("restart")->source(), path + ".restart",
         "expected one of never, always, on_failure, got \"" + *s + "\"");
}

GrantSpec grant(const Walker& w, std::string_view name, const toml::node& value, const std::string& path) {
  std::string source, mode;
  const toml::source_region* mode_at = &value.source();
  if (value.is_string()) {
    source = value.as_string()->get();
  } else if (const toml::table* t = value.as_table()) {
    w.only(*t, path, {"source", "mode"});
    source = *w.string(*t, path, "source", true);
    mode = w.string(*t, path, "mode", false).value_or("");
    if (const toml::node* m = t->get("mode")) mode_at = &m->source();
  } else {
    w.fail(value.source(), path,
           std::string("expected \"service:argument\" or { source = ..., mode = ... }, got ") + Walker::type_name(value));
  }
  const kernel::Result<GrantSpec> g = parse_grant(name, source, mode);
  if (!g)
    w.fail(value.source(), path,
           name == "supervisor" ? "the name 'supervisor' is reserved (every program is granted it)"
                                : "expected \"service:argument\" with a service name, got \"" + source + "\"");
  if (const StandardService* standard = find_standard_service(g->service)) {
    if (const std::optional<GrantProblem> problem = standard->check_grant(g->argument, mode)) {
      if (problem->where == GrantProblem::Where::mode) w.fail(*mode_at, path + ".mode", problem->message);
      w.fail(value.source(), path, problem->message);
    }
  }
  return *g;
}

Manifest manifest(const Walker& w, const toml::table& t, const std::string& path) {
  w.only(t, path,
         {"instance", "program", "restart", "backoff_ns", "backoff_max_ns", "restarts_max", "provides", "grants",
          "params", "group"});
  Manifest m;
  m.program = *w.string(t, path, "program", true);
  m.instance = w.string(t, path, "instance", false).value_or(m.program);
  m.provides = w.string(t, path, "provides", false).value_or("");
  m.group = w.string(t, path, "group", false).value_or("");
  m.restart = policy(w, t, path);
  m.backoff_ns_initial = static_cast<std::uint64_t>(w.integer(t, path, "backoff_ns", 0, ns_max).value_or(1'000'000));
  m.backoff_ns_max =
      static_cast<std::uint64_t>(w.integer(t, path, "backoff_max_ns", 0, ns_max).value_or(1'000'000'000));
  m.restarts_max = static_cast<std::uint32_t>(w.integer(t, path, "restarts_max", 0, 1'000'000).value_or(1000));
  if (m.instance.empty() || m.program.empty()) w.fail(t.source(), path, "instance and program must not be empty");
  // Its processes are named "instance#incarnation", within the kernel's name limit.
  if (m.instance.size() > instance_bytes_max)
    w.fail(t.source(), path + ".instance", "longer than " + std::to_string(instance_bytes_max) + " bytes");
  if (const toml::node* params = t.get("params")) {
    const toml::table* table = params->as_table();
    if (table == nullptr)
      w.fail(params->source(), path + ".params", std::string("expected a table, got ") + Walker::type_name(*params));
    for (auto&& [k, v] : *table) {
      std::string text;
      if (v.is_string()) {
        text = v.as_string()->get();
      } else if (v.is_integer()) {
        text = std::to_string(v.as_integer()->get());
      } else if (v.is_boolean()) {
        text = v.as_boolean()->get() ? "true" : "false";
      } else {
        w.fail(v.source(), path + ".params." + std::string(k.str()),
               std::string("expected a string, an integer or a boolean, got ") + Walker::type_name(v));
      }
      m.params.emplace(std::string(k.str()), std::move(text));
    }
  }
  if (const toml::node* g = t.get("grants")) {
    const toml::table* grants = g->as_table();
    if (grants == nullptr)
      w.fail(g->source(), path + ".grants", std::string("expected a table, got ") + Walker::type_name(*g));
    for (auto&& [k, v] : *grants)
      m.grants.push_back(grant(w, k.str(), v, path + ".grants." + std::string(k.str())));
  }
  return m;
}

}  // namespace

Parsed<std::vector<Manifest>> manifests_from(const toml::table& root, std::string_view source) {
  const Walker w(source);
  try {
    std::vector<Manifest> out;
    const toml::node* programs = root.get("program");
    if (programs == nullptr) return out;
    const toml::array* list = programs->as_array();
    if (list == nullptr || !list->is_array_of_tables())
      w.fail(programs->source(), "program", "expected [[program]] tables");
    std::set<std::string> instances;
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string path = "program[" + std::to_string(i) + "]";
      const toml::table& t = *list->get(i)->as_table();
      Manifest m = manifest(w, t, path);
      if (!instances.insert(m.instance).second)
        w.fail(t.source(), path + ".instance", "duplicate instance \"" + m.instance + "\"");
      out.push_back(std::move(m));
    }
    return out;
  } catch (const ConfigFailure& f) {
    return f.error;
  }
}

Parsed<std::vector<Manifest>> parse_manifests(std::string_view toml_text, std::string_view source) {
  try {
    const toml::table root = toml::parse(toml_text, source);
    return manifests_from(root, source);
  } catch (const toml::parse_error& e) {
    return ConfigError{std::string(source), e.source().begin.line, e.source().begin.column, "",
                       std::string(e.description())};
  }
}

}  // namespace persim::servers
