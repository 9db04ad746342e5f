// Processes: start, exit, crash, and kill at every kind of suspension point.
// A kill destroys the process, unwinds its stack, releases every capability it
// held (revoking what derives from them) and wakes whoever waits on it.
#include <gtest/gtest.h>

#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/harness.hpp"

namespace persim::kernel {
namespace {

using persim::testing::echo_server;
using persim::testing::expect_consistent;
using persim::testing::test_config;

// Runs a destructor on the process's own stack: shows unwinding happened.
struct Witness {
  bool* destroyed;
  ~Witness() { *destroyed = true; }
};

// Nothing of a dead process may remain: no capability, no queue entry, no stack.
void expect_gone(Node& node, ProcessId pid) {
  EXPECT_FALSE(node.alive(pid));
  EXPECT_TRUE(node.handles(pid).empty());
  expect_consistent(node);
}

// Property: a process that returns from its entry releases everything.
TEST(Process, ReturnReleasesEverything) {
  Node node(test_config());
  const ProcessId p = node.spawn("p", [](Sys& sys) {
                            (void)sys.endpoint_create();
                            (void)sys.notification_create();
                          })
                          .value();
  node.run();
  EXPECT_EQ(node.exit_reason(p), std::nullopt) << "freed: nobody holds a capability to it";
  const NodeStats s = node.stats();
  EXPECT_EQ(s.capabilities, 0u);
  EXPECT_EQ(s.endpoints, 0u);
  EXPECT_EQ(s.notifications, 0u);
  EXPECT_EQ(s.stacks_in_use, 0u);
  EXPECT_EQ(s.processes, 0u);
}

// Property: an exception escaping a program is a crash: the process dies cleanly.
TEST(Process, EscapingExceptionIsACrash) {
  Node node(test_config());
  const ProcessId watcher = node.create_process("watcher").value();
  const ProcessId p = node.create_process("p").value();
  (void)node.create_process_cap(watcher, p).value();  // keeps p's object around to inspect
  bool destroyed = false;
  node.start(p, [&](Sys& sys) {
        Witness w{&destroyed};
        (void)sys.endpoint_create();
        throw std::runtime_error("program bug");
      })
      .ok();
  node.run();
  EXPECT_TRUE(destroyed);
  EXPECT_EQ(node.exit_reason(p), ExitReason::crashed);
  expect_gone(node, p);
}

enum class Where { never_ran, blocked_call, blocked_reply, blocked_receive, blocked_wait, sleeping, ready };

std::string name(const ::testing::TestParamInfo<Where>& info) {
  static const char* names[] = {"never_ran", "blocked_call", "blocked_reply", "blocked_receive",
                                "blocked_wait", "sleeping", "ready"};
  return names[static_cast<int>(info.param)];
}

class KillAt : public ::testing::TestWithParam<Where> {};

// Property: killing a process wherever it is suspended unwinds its stack,
// releases its capabilities and leaves nothing behind, and everyone else goes on.
TEST_P(KillAt, LeavesNothingBehind) {
  const Where where = GetParam();
  NodeConfig config = test_config();
  config.kernel_call_cost_ns = 1;  // time must flow while the `ready` victim spins on yield
  Node node(config);
  const ProcessId server = node.create_process("server").value();
  const ProcessId victim = node.create_process("victim").value();
  const ProcessId other = node.create_process("other").value();
  const Handle ep = node.create_endpoint(server).value();
  const Handle victim_ep = node.grant(server, ep, victim, Rights::send() | Rights::receive()).value();
  const Handle other_ep = node.grant(server, ep, other, Rights::send()).value();
  const Handle note = node.create_notification(victim).value();
  const Handle passed_on = node.grant(victim, note, other, Rights::send()).value();  // derives from the victim's

  // The server serves calls except in blocked_reply, where it sits on them.
  node.start(server, where == Where::blocked_reply ? Entry([&](Sys& sys) {
                                                       Message m{};
                                                       (void)sys.receive(Cap<Endpoint>(ep), m);
                                                       for (;;) (void)sys.sleep_for(1'000'000);
                                                     })
                                                   : Entry([&](Sys& sys) {
                                                       (void)sys.sleep_for(where == Where::blocked_call ? 1'000'000 : 0);
                                                       echo_server(ep)(sys);
                                                     }))
      .ok();
  bool destroyed = false;
  if (where != Where::never_ran) {
    node.start(victim, [&](Sys& sys) {
          Witness w{&destroyed};
          Message m{}, out{};
          switch (where) {
            case Where::blocked_call:
            case Where::blocked_reply: (void)sys.call(Cap<Endpoint>(victim_ep), m, out); break;
            case Where::blocked_receive: (void)sys.receive(sys.endpoint_create().value(), m); break;
            case Where::blocked_wait: (void)sys.wait(Cap<Notification>(note)); break;
            case Where::sleeping: (void)sys.sleep_for(1'000'000); break;
            case Where::ready:
              for (;;) (void)sys.yield();
            case Where::never_ran: break;
          }
          ADD_FAILURE() << "the victim must not get past its suspension point";
        })
        .ok();
  }
  // `other` keeps calling the server, before and after the kill.
  int answered = 0;
  node.start(other, [&](Sys& sys) {
        for (int i = 0; i < 3; ++i) {
          Message m{}, out{};
          if (sys.call(Cap<Endpoint>(other_ep), m, out)) ++answered;
          (void)sys.sleep_for(100);
        }
      })
      .ok();
  node.run({.until_ns = 50});
  const ProcessState before = node.state(victim).value();
  switch (where) {
    case Where::never_ran: EXPECT_EQ(before, ProcessState::embryo); break;
    case Where::blocked_call: EXPECT_EQ(before, ProcessState::blocked_call); break;
    case Where::blocked_reply: EXPECT_EQ(before, ProcessState::blocked_reply); break;
    case Where::blocked_receive: EXPECT_EQ(before, ProcessState::blocked_receive); break;
    case Where::blocked_wait: EXPECT_EQ(before, ProcessState::blocked_wait); break;
    case Where::sleeping: EXPECT_EQ(before, ProcessState::sleeping); break;
    case Where::ready: EXPECT_EQ(before, ProcessState::ready); break;
  }
  const std::size_t stacks_before = node.stats().stacks_in_use;
  ASSERT_TRUE(node.kill(victim).ok());
  EXPECT_EQ(destroyed, where != Where::never_ran) << "the victim's stack was unwound";
  EXPECT_EQ(node.stats().stacks_in_use, stacks_before - (where == Where::never_ran ? 0 : 1));
  EXPECT_FALSE(node.inspect(other, passed_on)) << "what derived from the victim's capabilities is revoked";
  expect_gone(node, victim);
  if (where != Where::blocked_reply && where != Where::blocked_call) {
    node.run({.until_ns = 10'000});
    EXPECT_EQ(answered, 3) << "the rest of the system goes on";
  }
  EXPECT_EQ(node.kill(victim).error(), Error::bad_handle) << "a dead, unreferenced process is gone";
}

INSTANTIATE_TEST_SUITE_P(EverySuspensionPoint, KillAt,
                         ::testing::Values(Where::never_ran, Where::blocked_call, Where::blocked_reply,
                                           Where::blocked_receive, Where::blocked_wait, Where::sleeping,
                                           Where::ready),
                         name);

// Property: a process can be killed through a capability with `control`; killing
// oneself does not return; killing without control is refused.
TEST(Process, KillThroughCapability) {
  Node node(test_config());
  const ProcessId killer = node.create_process("killer").value();
  const ProcessId target = node.create_process("target").value();
  const Handle full = node.create_process_cap(killer, target).value();
  const Handle weak = node.grant(killer, full, killer, Rights::all() & Rights::from_bits(~Rights::control().bits())).value();
  const Handle self = node.create_process_cap(killer, killer).value();
  node.start(target, [](Sys& sys) {
        for (;;) (void)sys.sleep_for(100);
      })
      .ok();
  std::vector<Error> errors;
  bool returned_from_suicide = false;
  node.start(killer, [&](Sys& sys) {
        (void)sys.sleep_for(50);
        errors.push_back(sys.kill(Cap<Process>(weak)).error());
        EXPECT_TRUE(sys.kill(Cap<Process>(full)).ok());
        errors.push_back(sys.kill(Cap<Process>(full)).error());
        (void)sys.kill(Cap<Process>(self));
        returned_from_suicide = true;
      })
      .ok();
  node.run();
  EXPECT_EQ(errors, (std::vector{Error::insufficient_rights, Error::object_dead}));
  EXPECT_FALSE(returned_from_suicide);
  EXPECT_FALSE(node.alive(target));
  EXPECT_FALSE(node.alive(killer));
  EXPECT_EQ(node.stats().processes, 0u) << "both freed: the only capabilities died with the killer";
}

// Property: the kill-at-call fault lands exactly at the n-th kernel call.
TEST(Process, KillAtNthKernelCall) {
  for (std::uint64_t n = 1; n <= 6; ++n) {
    Node node(test_config());
    int completed = 0;
    const ProcessId p = node.spawn("p", [&](Sys& sys) {
                              for (int i = 0; i < 10; ++i) {
                                (void)sys.yield();
                                ++completed;
                              }
                            })
                            .value();
    ASSERT_TRUE(node.faults().kill_at_call(p, n).ok());
    node.run();
    EXPECT_EQ(completed, static_cast<int>(n - 1));
    EXPECT_EQ(node.stats().stacks_in_use, 0u);
  }
}

// Property: while a killed process unwinds, its kernel calls (from destructors)
// fail with `killed` and cannot suspend it again.
TEST(Process, KernelCallsWhileUnwindingReportKilled) {
  Node node(test_config());
  Error from_destructor{};
  struct CallsOnExit {
    Sys& sys;
    Error* out;
    ~CallsOnExit() { *out = sys.sleep_for(10).error(); }
  };
  const ProcessId p = node.spawn("p", [&](Sys& sys) {
                            CallsOnExit guard{sys, &from_destructor};
                            for (;;) (void)sys.sleep_for(100);
                          })
                          .value();
  node.run({.until_ns = 250});
  ASSERT_TRUE(node.kill(p).ok());
  EXPECT_EQ(from_destructor, Error::killed);
  expect_consistent(node);
}

// Property: a kill unwinds through every frame of the program, innermost first,
// running each destructor once; typed handlers never see it, and a catch (...)
// that rethrows passes it on. Then the process is dead (killed, not crashed).
TEST(Process, AKillRunsEveryDestructorAndPassesEveryHandler) {
  Node node(test_config());
  const ProcessId watcher = node.create_process("watcher").value();
  const ProcessId p = node.create_process("p").value();
  (void)node.create_process_cap(watcher, p).value();  // keeps p's object around to inspect
  std::vector<std::string> order;
  struct Logs {
    std::vector<std::string>* order;
    const char* name;
    ~Logs() { order->push_back(name); }
  };
  bool typed_handler_ran = false;
  int rethrown = 0;
  auto inner = [&](Sys& sys) {
    Logs l{&order, "inner"};
    Message m{};
    (void)sys.receive(sys.endpoint_create().value(), m);  // killed here
    ADD_FAILURE() << "the kill must not return";
  };
  node.start(p, [&](Sys& sys) {
        Logs l{&order, "outer"};
        try {
          try {
            Logs l2{&order, "middle"};
            inner(sys);
          } catch (...) {
            ++rethrown;
            throw;
          }
        } catch (const std::exception&) {
          typed_handler_ran = true;
        }
        ADD_FAILURE() << "the kill must not be swallowed";
      })
      .ok();
  node.run();
  ASSERT_EQ(node.state(p).value(), ProcessState::blocked_receive);
  ASSERT_TRUE(node.kill(p).ok());
  EXPECT_EQ(order, (std::vector<std::string>{"inner", "middle", "outer"}));
  EXPECT_FALSE(typed_handler_ran);
  EXPECT_EQ(rethrown, 1);
  EXPECT_EQ(node.exit_reason(p), ExitReason::killed);
  expect_gone(node, p);
  EXPECT_EQ(node.stats().stacks_in_use, 0u);
  EXPECT_EQ(std::uncaught_exceptions(), 0) << "the rethrown kill is not left counted as uncaught";
}

// Property: kills still unwind every frame while some handler is running on the
// node's thread: a process suspended inside a catch block, killed there, and
// another, killed through its catch (...), while the first is suspended.
TEST(Process, AKillWhileAHandlerRunsElsewhereUnwindsToo) {
  Node node(test_config());
  const ProcessId watcher = node.create_process("watcher").value();
  const ProcessId inside = node.create_process("inside").value();
  const ProcessId other = node.create_process("other").value();
  (void)node.create_process_cap(watcher, inside).value();
  (void)node.create_process_cap(watcher, other).value();
  bool inside_destroyed = false, other_destroyed = false;
  int rethrown = 0;
  node.start(inside, [&](Sys& sys) {
        Witness w{&inside_destroyed};
        try {
          throw 7;
        } catch (int) {
          Message m{};
          (void)sys.receive(sys.endpoint_create().value(), m);  // suspended inside the handler
        }
        ADD_FAILURE() << "the kill must not return";
      })
      .ok();
  node.start(other, [&](Sys& sys) {
        Witness w{&other_destroyed};
        try {
          Message m{};
          (void)sys.receive(sys.endpoint_create().value(), m);
        } catch (...) {
          ++rethrown;
          throw;
        }
      })
      .ok();
  node.run();
  ASSERT_EQ(node.state(inside).value(), ProcessState::blocked_receive);
  ASSERT_EQ(node.state(other).value(), ProcessState::blocked_receive);
  ASSERT_TRUE(node.kill(other).ok());
  EXPECT_TRUE(other_destroyed);
  EXPECT_EQ(rethrown, 1);
  EXPECT_EQ(node.exit_reason(other), ExitReason::killed);
  ASSERT_TRUE(node.kill(inside).ok());
  EXPECT_TRUE(inside_destroyed);
  EXPECT_EQ(node.exit_reason(inside), ExitReason::killed);
  EXPECT_EQ(node.stats().stacks_in_use, 0u);
  EXPECT_EQ(std::uncaught_exceptions(), 0);
}

// Property: each process handles its own exceptions. Two processes suspend
// inside catch blocks and finish them in the other order (not last in, first
// out): each still rethrows its own exception, and the count of uncaught
// exceptions is each one's own.
TEST(Process, EachProcessHandlesItsOwnExceptions) {
  Node node(test_config());
  std::vector<std::string> rethrown;
  int uncaught_inside = -1;
  auto handles = [&](const char* what, std::uint64_t wait_ns) {
    return [&, what, wait_ns](Sys& sys) {
      try {
        throw std::runtime_error(what);
      } catch (const std::runtime_error&) {
        (void)sys.sleep_for(wait_ns);  // suspended inside the handler
        try {
          throw;  // the exception this handler handles
        } catch (const std::runtime_error& again) {
          rethrown.emplace_back(again.what());
        }
      }
    };
  };
  (void)node.spawn("first", handles("first", 10)).value();   // in first, out first
  (void)node.spawn("second", handles("second", 20)).value();
  (void)node.spawn("thrower", [&](Sys& sys) {
                (void)sys.sleep_for(5);
                struct Counts {
                  int* out;
                  ~Counts() { *out = std::uncaught_exceptions(); }
                };
                try {
                  Counts c{&uncaught_inside};
                  throw 1;  // unwinding Counts: this process's own count is 1
                } catch (int) {
                }
              })
      .value();
  node.run();
  EXPECT_EQ(rethrown, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(uncaught_inside, 1);
  EXPECT_EQ(std::uncaught_exceptions(), 0);
}

// A process waiting in receive inside try { } catch (...) { handler(); }, killed.
void kill_inside_catch_all(void (*handler)()) {
  Node node(test_config());
  const ProcessId p = node.spawn("p", [handler](Sys& sys) {
                            try {
                              Message m{};
                              (void)sys.receive(sys.endpoint_create().value(), m);
                            } catch (...) {
                              handler();
                            }
                          })
                          .value();
  node.run();
  (void)node.kill(p);
}

// A catch (...) that swallows a kill, or throws something else instead, would
// leave a dead process running: the simulation stops with a message saying so.
TEST(ProcessDeathTest, ACatchAllThatSwallowsAKillStopsTheRun) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(kill_inside_catch_all([] {}), "catch \\(\\.\\.\\.\\) ended without rethrowing");
  EXPECT_DEATH(kill_inside_catch_all([] { throw std::runtime_error("replaced"); }),
               "catch \\(\\.\\.\\.\\) ended without rethrowing");
}

// Property: destroying a node kills what is left and leaks nothing (ASan checks).
TEST(Process, NodeDestructionKillsTheRest) {
  bool destroyed = false;
  {
    Node node(test_config());
    const ProcessId p = node.create_process("p").value();
    const Handle ep = node.create_endpoint(p).value();
    node.start(p, [&, ep](Sys& sys) {
          Witness w{&destroyed};
          Message m{};
          (void)sys.receive(Cap<Endpoint>(ep), m);
        })
        .ok();
    node.run();
  }
  EXPECT_TRUE(destroyed);
}

}  // namespace
}  // namespace persim::kernel
