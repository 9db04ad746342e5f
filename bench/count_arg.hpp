// A count given on a counter's command line (round trips, restarts).
#pragma once

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>

namespace persim::bench {

// Digits only, greater than 0, in range: "-1" (which strtoull would take as
// 2^64 - 1), " 5", "20x" and "0" are refused.
inline std::optional<std::uint64_t> parse_count(const char* text) {
  if (std::isdigit(static_cast<unsigned char>(text[0])) == 0) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(text, &end, 10);
  if (*end != '\0' || errno == ERANGE || n == 0) return std::nullopt;
  return n;
}

// The one argument of a round-trip counter (persim-ipc-rounds,
// persim-fiber-rounds); prints the usage and gives nothing if it is not a count.
inline std::optional<std::uint64_t> rounds_argument(int argc, char** argv) {
  const std::optional<std::uint64_t> rounds = argc == 2 ? parse_count(argv[1]) : std::nullopt;
  if (!rounds) std::fprintf(stderr, "usage: %s ROUNDS   (round trips: a number > 0)\n", argv[0]);
  return rounds;
}

}  // namespace persim::bench
