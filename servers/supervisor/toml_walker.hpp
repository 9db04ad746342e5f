// Reading a TOML document key by key with precise errors: every key checked,
// every type named, the first mistake reported with file:line:column and the
// dotted path of the key. Shared by manifests and scenarios.
#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <toml++/toml.h>

#include "servers/supervisor/manifest.hpp"

namespace persim::servers {

// Thrown inside a walk only, to leave it at the first error; caught at the
// entry points (manifests_from, parse_scenario) and returned as a value.
struct ConfigFailure {
  ConfigError error;
};

class Walker {
 public:
  explicit Walker(std::string_view source) : source_(source) {}

  [[noreturn]] void fail(const toml::source_region& where, std::string key, std::string message) const {
    throw ConfigFailure{{std::string(source_), where.begin.line, where.begin.column, std::move(key), std::move(message)}};
  }

  // Refuses any key of `t` not in `known`.
  void only(const toml::table& t, const std::string& path, std::initializer_list<std::string_view> known) const {
    for (auto&& [k, v] : t) {
      bool ok = false;
      for (const std::string_view name : known) ok = ok || k.str() == name;
      if (!ok) {
        std::string expected;
        for (const std::string_view name : known) expected += (expected.empty() ? "" : ", ") + std::string(name);
        fail(v.source(), (path.empty() ? "" : path + ".") + std::string(k.str()),
             "unknown key (expected one of: " + expected + ")");
      }
    }
  }

  std::optional<std::string> string(const toml::table& t, const std::string& path, std::string_view key,
                                    bool required) const {
    const toml::node* n = t.get(key);
    const std::string where = path + "." + std::string(key);
    if (n == nullptr) {
      if (required) fail(t.source(), where, "missing (expected a string)");
      return std::nullopt;
    }
    if (!n->is_string()) fail(n->source(), where, std::string("expected a string, got ") + type_name(*n));
    return n->as_string()->get();
  }

  std::optional<std::int64_t> integer(const toml::table& t, const std::string& path, std::string_view key,
                                      std::int64_t min, std::int64_t max) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    const std::string where = path + "." + std::string(key);
    if (!n->is_integer()) fail(n->source(), where, std::string("expected an integer, got ") + type_name(*n));
    const std::int64_t v = n->as_integer()->get();
    if (v < min || v > max)
      fail(n->source(), where,
           "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + std::to_string(v));
    return v;
  }

  // An integer or a float.
  std::optional<double> real(const toml::table& t, const std::string& path, std::string_view key, double min) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    const std::string where = path + "." + std::string(key);
    double v = 0;
    if (n->is_integer()) {
      v = static_cast<double>(n->as_integer()->get());
    } else if (n->is_floating_point()) {
      v = n->as_floating_point()->get();
    } else {
      fail(n->source(), where, std::string("expected a number, got ") + type_name(*n));
    }
    if (!(v >= min)) {
      char text[32];
      std::snprintf(text, sizeof text, "%g", min);
      fail(n->source(), where, std::string("expected a number of at least ") + text);
    }
    return v;
  }

  std::optional<bool> boolean(const toml::table& t, const std::string& path, std::string_view key) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (!n->is_boolean()) fail(n->source(), path + "." + std::string(key), std::string("expected true or false, got ") + type_name(*n));
    return n->as_boolean()->get();
  }

  // The table under `key`, if there is one (and it is a table).
  const toml::table* table(const toml::table& t, const std::string& path, std::string_view key) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return nullptr;
    if (!n->is_table()) fail(n->source(), path + "." + std::string(key), std::string("expected a table, got ") + type_name(*n));
    return n->as_table();
  }

  static const char* type_name(const toml::node& n) {
    switch (n.type()) {
      case toml::node_type::table: return "a table";
      case toml::node_type::array: return "an array";
      case toml::node_type::string: return "a string";
      case toml::node_type::integer: return "an integer";
      case toml::node_type::floating_point: return "a float";
      case toml::node_type::boolean: return "a boolean";
      case toml::node_type::date: return "a date";
      case toml::node_type::time: return "a time";
      case toml::node_type::date_time: return "a date-time";
      case toml::node_type::none: break;
    }
    return "nothing";
  }

  std::string_view source() const { return source_; }

 private:
  std::string_view source_;
};


}  // namespace persim::servers
