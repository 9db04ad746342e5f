// Interactive mode: a console stream bridged to real file descriptors (pipes
// standing in for the terminal) through an AsioIo, the run's real I/O.
#include <gtest/gtest.h>
#include <unistd.h>

#include "servers/console/terminal.hpp"
#include "support/system_harness.hpp"

namespace persim::servers {
namespace {

using namespace persim::testing;

std::string drain(int fd) {
  std::string out;
  char buf[256];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

void write_all(int fd, std::string_view s) { ASSERT_EQ(::write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size())); }

// Property: lines typed on the terminal reach the program through its console;
// what it writes reaches the terminal; "!kill" kills it and the supervisor
// restarts it; the end of input ends it.
TEST(TerminalBridge, ProgramUsedFromATerminalKilledAndRestarted) {
  int in[2], out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(out), 0);
  System system(system_config());
  system.add_standard_servers();
  int lines_seen = 0;
  ASSERT_TRUE(system.add_program("echo", [&](Sys& sys) {
    const ConsoleClient console(granted_session<ConsoleOp>(sys, "console").value());
    bool end = false;
    for (int n = 1; !end; ++n) {
      std::string line;
      if (!console.read_line(sys, &line, &end) || line.empty()) return;
      ++lines_seen;
      (void)console.write(sys, std::to_string(n) + ": " + line);
    }
  }).ok());
  Manifest m = manifest("echo", "echo", {{"console", "console", ""}}, RestartPolicy::on_failure);
  m.backoff_ns_initial = 1'000;
  system.add(m);
  ASSERT_TRUE(system.boot().ok());
  AsioIo io;
  TerminalBridge bridge(system, io, "echo", in[0], out[1]);
  bridge.start();

  write_all(in[1], "a\nb\n");
  ASSERT_TRUE(run_until(system, [&] { return lines_seen == 2; }, 100'000'000, &io));
  write_all(in[1], "!kill echo\n");
  ASSERT_TRUE(run_until(
      system, [&] { return system.supervisor().restarts.size() == 1 && system.process_of("echo"); }, 100'000'000, &io));
  write_all(in[1], "c\n");
  ::close(in[1]);
  (void)system.world().run({.real_io = &io, .when_idle = kernel::WhenIdle::wait_for_real_io});
  ::close(out[1]);
  EXPECT_EQ(drain(out[0]), "1: a\n2: b\n[killed echo]\n1: c\n");
  EXPECT_FALSE(bridge.open());
  EXPECT_FALSE(system.process_of("echo")) << "it ended with its input";
  ::close(in[0]);
  ::close(out[0]);
}

// Property: input taken for a reader that was killed while it waited is not
// lost: the restarted program reads it.
TEST(TerminalBridge, InputForAKilledReaderIsNotLost) {
  int in[2], out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(out), 0);
  System system(system_config());
  system.add_standard_servers();
  bool reading = false;
  ASSERT_TRUE(system.add_program("echo", [&](Sys& sys) {
    const ConsoleClient console(granted_session<ConsoleOp>(sys, "console").value());
    bool end = false;
    for (int n = 1; !end; ++n) {
      std::string line;
      reading = true;
      if (!console.read_line(sys, &line, &end) || line.empty()) return;
      (void)console.write(sys, std::to_string(n) + ": " + line);
    }
  }).ok());
  Manifest m = manifest("echo", "echo", {{"console", "console", ""}}, RestartPolicy::on_failure);
  m.backoff_ns_initial = 1'000;
  system.add(m);
  ASSERT_TRUE(system.boot().ok());
  AsioIo io;
  TerminalBridge bridge(system, io, "echo", in[0], out[1]);
  bridge.start();
  ASSERT_TRUE(run_until(system, [&] { return reading; }, 100'000'000, &io));  // its read waits in the console
  write_all(in[1], "a\n!kill echo\nb\n");
  ::close(in[1]);
  (void)system.world().run({.real_io = &io, .when_idle = kernel::WhenIdle::wait_for_real_io});
  ::close(out[1]);
  EXPECT_EQ(drain(out[0]), "[killed echo]\n1: a\n2: b\n");
  ::close(in[0]);
  ::close(out[0]);
}

}  // namespace
}  // namespace persim::servers
