// The IPC figure's floor as a plain program, for callgrind instruction counts
// and for timing beside persim-ipc-rounds: a fixed number of raw Boost.Context
// round trips (a resume into a peer fiber and back), as
// ipc_call_reply/floor_fiber_round_trip in ipc_bench.cpp does. Instructions per
// round trip are the difference of two runs divided by the difference of their
// counts (see docs/performance.md and bench/ipc_budget.py).
#include <boost/context/fiber.hpp>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace ctx = boost::context;

int main(int argc, char** argv) {
  char* end = nullptr;
  // Digits only: strtoull alone would take "-1" (as 2^64 - 1) and leading blanks.
  const bool digits = argc == 2 && std::isdigit(static_cast<unsigned char>(argv[1][0])) != 0;
  const std::uint64_t rounds = digits ? std::strtoull(argv[1], &end, 10) : 0;
  if (!digits || *end != '\0' || rounds == 0) {
    std::fprintf(stderr, "usage: %s ROUNDS   (round trips: a number > 0)\n", argv[0]);
    return 2;
  }
  bool stop = false;
  std::uint64_t returns = 0;  // resumes that came back: the round trips made
  ctx::fiber peer{[&stop](ctx::fiber&& back) {
    while (!stop) back = std::move(back).resume();
    return std::move(back);
  }};
  for (std::uint64_t i = 0; i < rounds; ++i) {
    peer = std::move(peer).resume();
    if (peer) ++returns;  // the peer is suspended again, not finished
  }
  stop = true;
  peer = std::move(peer).resume();  // the peer returns; its stack is freed
  std::printf("%llu round trips\n", static_cast<unsigned long long>(returns));
  return returns == rounds && !peer ? 0 : 1;
}
