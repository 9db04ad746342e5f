// Interactive mode: one console stream bridged to real file descriptors (the
// terminal's stdin and stdout) through an AsioIo (servers/asio_io.hpp), so a
// program that only uses its console can be used from a real terminal, killed
// and restarted. Run the world with that AsioIo as RunLimits::real_io and
// WhenIdle::wait_for_real_io while it is open.
//
// Two input lines are commands to the bridge, not input:
//   !kill INSTANCE   kill the instance's process (the supervisor decides the rest)
//   !quit            end of input
// Any other line, "!" or not, is input.
#pragma once

#include <boost/asio/posix/stream_descriptor.hpp>
#include <array>
#include <string>

#include "servers/asio_io.hpp"
#include "servers/system.hpp"

namespace persim::servers {

class TerminalBridge {
 public:
  // Bridges console stream `stream` to `in_fd` and `out_fd` (not owned: left
  // open), reading through `io` (which must outlive the bridge).
  TerminalBridge(System& system, AsioIo& io, std::string stream, int in_fd, int out_fd);
  ~TerminalBridge();
  TerminalBridge(const TerminalBridge&) = delete;
  TerminalBridge& operator=(const TerminalBridge&) = delete;

  // Starts reading input. Output is copied as the console writes it.
  void start();
  bool open() const { return open_; }

 private:
  void read_more();
  void on_line(std::string line);
  void close_input();
  void write_out(std::string_view text);

  System& system_;
  std::string stream_;
  int out_fd_;
  boost::asio::posix::stream_descriptor in_;
  std::array<char, 512> buffer_{};
  std::string partial_;  // input after the last newline
  bool open_ = false;
};

}  // namespace persim::servers
