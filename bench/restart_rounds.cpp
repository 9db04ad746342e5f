// A fixed number of restarts of the restart figure's program
// (bench/restart_rig.hpp), for instruction counting under callgrind, one part
// of a restart at a time:
//
//   valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file=/tmp/restart.cg
//       build/bench/bench/persim-restart-rounds regrant_restore 1000
//
// collects only the re-grant + restore of each of the 1000 restarts
// (`teardown`: only the kill, the unwinding and the supervisor's exit
// handling; `whole`: both); instructions per restart = the "Collected" count /
// 1000, and callgrind_annotate on the output file says where they go. The
// parts are switched on and off with callgrind's client requests
// (valgrind/callgrind.h, Debian package valgrind); built without that header
// it refuses a part and runs `whole` only (count it without
// --collect-atstart=no then). See docs/performance.md.
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string_view>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define PERSIM_TOGGLE_COLLECT() CALLGRIND_TOGGLE_COLLECT
#define PERSIM_CAN_SELECT_PARTS 1
#else
#define PERSIM_TOGGLE_COLLECT() ((void)0)
#define PERSIM_CAN_SELECT_PARTS 0
#endif

#include "bench/count_arg.hpp"
#include "bench/restart_rig.hpp"

namespace {

enum class Part : std::uint8_t { teardown, regrant_restore, whole };
// Where a restart is: each goes teardown -> regrant_restore -> rest (the
// program's check and wait after its restore, and the setup: never collected).
enum class Phase : std::uint8_t { rest, teardown, regrant_restore };

// Switches callgrind's collection on while the restart is in the part asked for.
class Collector {
 public:
  explicit Collector(Part part) : part_(part) {}
  void killing() { enter(Phase::teardown); }
  void scheduled() { enter(Phase::regrant_restore); }
  void running_again() { enter(Phase::rest); }

 private:
  bool collects(Phase phase) const {
    switch (phase) {
      case Phase::rest: return false;
      case Phase::teardown: return part_ != Part::regrant_restore;
      case Phase::regrant_restore: return part_ != Part::teardown;
    }
    return false;
  }
  void enter(Phase phase) {
    if (collects(phase) != collects(phase_)) PERSIM_TOGGLE_COLLECT();
    phase_ = phase;
  }
  Part part_;
  Phase phase_ = Phase::rest;
};

int usage(const char* self) {
  std::fprintf(stderr, "usage: %s teardown|regrant_restore|whole [restarts: a number > 0, default 1000]\n", self);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view name = argc > 1 ? argv[1] : "whole";
  std::uint64_t n = 1000;
  if (argc > 2) {
    const std::optional<std::uint64_t> count = persim::bench::parse_count(argv[2]);
    if (!count) return usage(argv[0]);
    n = *count;
  }
  Part part = Part::whole;
  if (name == "teardown") {
    part = Part::teardown;
  } else if (name == "regrant_restore") {
    part = Part::regrant_restore;
  } else if (name != "whole") {
    return usage(argv[0]);
  }
  if (!PERSIM_CAN_SELECT_PARTS && part != Part::whole) {
    std::fprintf(stderr, "%s: built without valgrind/callgrind.h (Debian package valgrind): cannot count a part\n",
                 argv[0]);
    return 2;
  }
  Collector collector(part);
  persim::bench::RestartRig rig([&collector] { collector.scheduled(); }, [&collector] { collector.running_again(); });
  if (!rig.boot()) {
    std::fprintf(stderr, "%s\n", rig.failure().c_str());
    return 1;
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto pid = rig.program_process();
    collector.killing();
    if (!rig.restart(pid)) {
      std::fprintf(stderr, "restart %llu: %s\n", static_cast<unsigned long long>(i), rig.failure().c_str());
      return 1;
    }
  }
  std::printf("%llu restarts\n", static_cast<unsigned long long>(n));
  return 0;
}
