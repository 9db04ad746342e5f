// Manifests as TOML: what a scenario file's [[program]] tables say, and the
// errors a malformed one gets (file:line:column, the key, what was expected).
// The format is documented in docs/manifests.md.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "servers/supervisor/supervisor.hpp"

namespace toml {
inline namespace v3 {
class table;
}
}  // namespace toml

namespace persim::servers {

// Where and what: "app.toml:4:9: program[1].restart: expected one of never,
// always, on_failure, got \"sometimes\"".
struct ConfigError {
  std::string source;  // file name, or what the text came from
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string key;  // dotted path of the offending key; empty for a syntax error
  std::string message;
  std::string describe() const;
};

template <class T>
using Parsed = std::variant<T, ConfigError>;

// Parses the [[program]] tables of a TOML document. Every key is checked: an
// unknown key, a wrong type, a bad value or a duplicate instance is an error.
Parsed<std::vector<Manifest>> parse_manifests(std::string_view toml_text, std::string_view source);

// The same, from a table already parsed (a scenario file's root).
Parsed<std::vector<Manifest>> manifests_from(const toml::table& root, std::string_view source);

}  // namespace persim::servers
