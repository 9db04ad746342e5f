// Fuzz target: scenario files and --set overrides, as a user or a script
// writes them. The input is a scenario's text, optionally followed by a line
// "#--set" and one override per line. Whatever the bytes: no crash; a refusal
// is a message naming where and what; an accepted scenario takes any override
// or refuses it with a message, and is checked again after.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "sim/scenario.hpp"

using namespace persim::sim;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find("\n#--set\n");
  const std::string_view text = input.substr(0, split);
  auto parsed = parse_scenario(text, "fuzz.toml");
  if (const auto* error = std::get_if<persim::servers::ConfigError>(&parsed)) {
    if (error->describe().empty()) __builtin_trap();
    return 0;
  }
  Scenario& s = std::get<Scenario>(parsed);
  if (split == std::string_view::npos) return 0;
  std::string_view rest = input.substr(split + 8);
  while (!rest.empty()) {
    const std::size_t end = rest.find('\n');
    const std::string_view line = rest.substr(0, end);
    if (const auto problem = apply_override(s, line); problem && problem->empty()) __builtin_trap();
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
  }
  (void)check_overridden(s);
  return 0;
}
