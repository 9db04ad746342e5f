#include "libpersist/strategy.hpp"

#include <cassert>

#include "libpersist/regrant.hpp"

namespace persim::persist {

const std::vector<StrategyKind>& strategies() {
  static const std::vector<StrategyKind> all = {
      {"regrant",
       "the process's own image; the supervisor re-grants by manifest and sessions are rebuilt by requests",
       []() -> std::unique_ptr<Strategy> { return std::make_unique<Regrant>(); }},
  };
  return all;
}

const StrategyKind* find_strategy(std::string_view name) {
  for (const StrategyKind& k : strategies())
    if (k.name == name) return &k;
  return nullptr;
}

const StrategyKind& regrant_strategy() {
  const StrategyKind* k = find_strategy("regrant");
  assert(k != nullptr);
  return *k;
}

}  // namespace persim::persist
