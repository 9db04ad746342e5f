// Fuzz target: manifests (TOML), as an operator writes them for the
// supervisor. Whatever the bytes: no crash; a refusal is a message naming
// where and what; every accepted grant names a service and a grant name.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "servers/supervisor/manifest.hpp"

using namespace persim::servers;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = parse_manifests(text, "fuzz.toml");
  if (const auto* error = std::get_if<ConfigError>(&parsed)) {
    if (error->describe().empty()) __builtin_trap();
    return 0;
  }
  for (const Manifest& m : std::get<std::vector<Manifest>>(parsed))
    for (const GrantSpec& g : m.grants)
      if (g.name.empty() || g.service.empty()) __builtin_trap();
  return 0;
}
