// How a run meets the world outside the simulation, and where it ends.
//
// RealIo is the one door out: host I/O (a terminal, later a real network
// link) whose handlers run on the run loop between processes. The kernel only
// knows this interface; an implementation over Boost.Asio lives with the
// servers (servers/asio_io.hpp). Simulations pass none, and then nothing in a
// run depends on anything but the seed and the host's calls.
#pragma once

#include <cstddef>
#include <cstdint>

namespace persim::kernel {

class RealIo {
 public:
  virtual ~RealIo() = default;
  // Runs the handlers that are ready now, without blocking; how many ran.
  virtual std::size_t poll() = 0;
  // Blocks until one handler has run (1), or returns 0 at once when no
  // handler could ever run (no I/O outstanding).
  virtual std::size_t wait_one() = 0;
};

// What a run does when nothing is ready and no timer is pending anywhere.
enum class WhenIdle : std::uint8_t {
  return_quiescent,  // return RunOutcome::quiescent
  // Interactive runs: wait for real I/O (wall time passes, virtual time does
  // not) until it has no work left, then return quiescent.
  wait_for_real_io,
};

struct RunLimits {
  std::uint64_t until_ns = UINT64_MAX;
  // Polled when no process is ready; null in simulations.
  RealIo* real_io = nullptr;
  WhenIdle when_idle = WhenIdle::return_quiescent;  // wait_for_real_io needs real_io
};

enum class RunOutcome : std::uint8_t {
  quiescent,   // nothing ready and no timer pending: every process is blocked or gone
  time_limit,  // the next event is past RunLimits::until_ns
  stopped,     // World::stop() (or Node::stop()) was called
};

}  // namespace persim::kernel
