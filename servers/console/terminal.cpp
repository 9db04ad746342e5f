#include "servers/console/terminal.hpp"

#include <unistd.h>

#include <boost/asio/read.hpp>
#include <cerrno>

namespace persim::servers {

TerminalBridge::TerminalBridge(System& system, AsioIo& io, std::string stream, int in_fd, int out_fd)
    : system_(system), stream_(std::move(stream)), out_fd_(out_fd), in_(io.context(), ::dup(in_fd)) {}

TerminalBridge::~TerminalBridge() {
  system_.console().echo = nullptr;
  boost::system::error_code ignored;
  in_.close(ignored);
}

void TerminalBridge::start() {
  open_ = true;
  system_.console().echo = [this](const std::string& stream, std::string_view text) {
    if (stream == stream_) write_out(text);
  };
  read_more();
}

void TerminalBridge::read_more() {
  in_.async_read_some(boost::asio::buffer(buffer_), [this](const boost::system::error_code& ec, std::size_t n) {
    if (ec || n == 0) {
      if (!partial_.empty()) on_line(std::exchange(partial_, {}));
      close_input();
      return;
    }
    partial_.append(buffer_.data(), n);
    for (std::size_t nl; open_ && (nl = partial_.find('\n')) != std::string::npos;) {
      std::string line = partial_.substr(0, nl + 1);
      partial_.erase(0, nl + 1);
      on_line(std::move(line));
    }
    if (open_) read_more();
  });
}

void TerminalBridge::on_line(std::string line) {
  if (line.rfind("!kill ", 0) == 0) {
    std::string instance = line.substr(6);
    while (!instance.empty() && (instance.back() == '\n' || instance.back() == '\r')) instance.pop_back();
    const auto pid = system_.process_of(instance);
    write_out(pid && system_.node().kill(*pid) ? "[killed " + instance + "]\n" : "[no running " + instance + "]\n");
    return;
  }
  if (line.rfind("!quit", 0) == 0) {
    close_input();
    return;
  }
  system_.console_input(stream_, line);
}

void TerminalBridge::close_input() {
  if (!open_) return;
  open_ = false;
  system_.console_input(stream_, "", /*end=*/true);
  boost::system::error_code ignored;
  in_.close(ignored);
}

void TerminalBridge::write_out(std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(out_fd_, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the terminal went away: output is still recorded
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace persim::servers
