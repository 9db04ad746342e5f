// The system of the restart figure (restart_1), shared by the timed benchmark
// (persist_bench.cpp) and the instruction counter (restart_rounds.cpp): a
// program under the supervisor, restarted on every exit with no backoff
// (backoff_ns 0: the backoff is virtual time, not wall time, and would only
// make the run loop jump its clock). Its manifest grants "data" (a directory
// session fs:/data/), "console" and "ckpt". The program declares a u64 field,
// a file "log" opened through "data" (read, write, create), and a console
// session; it restores; the first incarnation writes 12 bytes to the file and
// a line to its console and checkpoints (the image records the file at offset
// 12), every later one restores from that image, checks its state (count,
// file offset) and waits for ever.
//
// Compiled once (restart_rig.cpp), so that the benchmark and the counter run
// the same machine code: how long a kill's unwinding takes depends on the
// program's frames (their unwind tables), which inlining changes.
//
// One restart (restart()), in two parts:
//   teardown, from the kill to the supervisor's restart_scheduled event:
//   - Node::kill of the running program (its stack unwinds, every capability
//     it held goes, the supervisor's watch is signalled);
//   - the supervisor notices the exit (process_status), logs what was severed,
//     tells each of the four servers the client is gone (each closes that
//     client's sessions by revoking them), schedules the restart;
//   re-grant + restore (the brief's figure), from that event to restore()
//   returning in the new process:
//   - the re-grant: a new process, the supervisor's own grant, then each
//     manifest grant resolved afresh with its server (fs open of /data/,
//     console open, ckpt open of the slot) and installed;
//   - the new process's restore: list the slot's images, read the newest into
//     its kernel buffer, decode and check it (checksum, names, types), load
//     the field, map the console grant and seek the console's input to where
//     the image recorded it, re-open the file through the directory grant and
//     seek it to offset 12.
// After that the program checks its state and blocks (one stat, one
// endpoint_create, one receive); the node runs to quiescence.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "kernel/node.hpp"
#include "kernel/sys.hpp"
#include "servers/system.hpp"

namespace persim::bench {

class RestartRig {
 public:
  // `scheduled`: called when the supervisor schedules the restart (the end of
  // the teardown); `running_again`: in the new process, just after restore()
  // returns. Both on the node's fibers: they must not call into the node.
  RestartRig(std::function<void()> scheduled, std::function<void()> running_again)
      : scheduled_(std::move(scheduled)), running_again_(std::move(running_again)) {}

  // Sets the system up and runs the first incarnation (it checkpoints).
  // False, with failure() saying why, if anything went wrong.
  bool boot();

  // The program's running process (looked up by the supervisor's name for it:
  // not part of a restart, so not timed).
  std::optional<kernel::ProcessId> program_process() const { return system_.process_of("app"); }

  // Kills `pid` (program_process()) and runs the node until the restarted
  // program waits again. False, with failure() saying why, if it did not
  // restart and restore.
  bool restart(std::optional<kernel::ProcessId> pid);

  const std::string& failure() const { return failure_; }
  kernel::Node& node() { return system_.node(); }

 private:
  bool failed(std::string why) {
    failure_ = std::move(why);
    return false;
  }
  void program(kernel::Sys& sys);

  std::function<void()> scheduled_;
  std::function<void()> running_again_;
  servers::System system_;
  std::uint64_t incarnations_ = 0;
  std::string failure_;
};

}  // namespace persim::bench
