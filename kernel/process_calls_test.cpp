// Processes made and watched by processes: factories, programs, initial grant
// tables, exit watches and bound notifications.
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>

#include "support/harness.hpp"

namespace persim::kernel {
namespace {

using persim::testing::expect_consistent;
using persim::testing::park;
using persim::testing::test_config;

// A node with a "parent" process holding a factory, and programs registered.
struct Fixture {
  Fixture() : node(test_config()) {
    parent = node.create_process("parent").value();
    factory = node.create_factory(parent).value();
  }
  Node node;
  ProcessId parent;
  Handle factory;
};

// Property: a process holding a factory creates processes running registered
// programs, which run only once started; the creator gets full control.
TEST(ProcessCalls, CreateRunsRegisteredProgramOnlyAfterStart) {
  Fixture f;
  int ran = 0;
  ASSERT_TRUE(f.node.register_program("worker", [&](Sys&) { ++ran; }).ok());
  std::vector<Error> errors;
  f.node.start(f.parent, [&](Sys& sys) {
          const Result<Cap<Process>> child = sys.process_create(Cap<Factory>(f.factory), "worker", "w1");
          ASSERT_TRUE(child.ok());
          EXPECT_EQ(f.node.inspect(f.parent, child->handle())->rights, Rights::all());
          EXPECT_TRUE(sys.yield().ok());
          EXPECT_EQ(ran, 0) << "created, not started";
          EXPECT_TRUE(sys.process_start(*child).ok());
          EXPECT_TRUE(sys.yield().ok());
          EXPECT_EQ(ran, 1);
          errors.push_back(sys.process_start(*child).error());  // running, or gone: not an embryo
          errors.push_back(sys.process_create(Cap<Factory>(f.factory), "nobody", "x").error());
          errors.push_back(sys.process_create(Cap<Factory>(f.factory), "worker", "").error());
        })
        .ok();
  f.node.run();
  EXPECT_EQ(errors, (std::vector{Error::object_dead, Error::not_found, Error::invalid_argument}));
  expect_consistent(f.node);
}

// Property: creating needs `send` on the factory capability; a factory is no
// endpoint (wrong_type), and a made-up handle is refused (bad_handle).
TEST(ProcessCalls, CreateNeedsTheFactoryRight) {
  Fixture f;
  ASSERT_TRUE(f.node.register_program("worker", [](Sys&) {}).ok());
  const Handle weak = f.node.grant(f.parent, f.factory, f.parent, Rights::all() & Rights::from_bits(~Rights::send().bits())).value();
  const Handle ep = f.node.create_endpoint(f.parent).value();
  std::vector<Error> errors;
  f.node.start(f.parent, [&](Sys& sys) {
          errors.push_back(sys.process_create(Cap<Factory>(weak), "worker", "w").error());
          errors.push_back(sys.process_create(Cap<Factory>(ep), "worker", "w").error());
          errors.push_back(sys.process_create(Cap<Factory>(Handle::from_raw(0x1234)), "worker", "w").error());
        })
        .ok();
  f.node.run();
  EXPECT_EQ(errors, (std::vector{Error::insufficient_rights, Error::wrong_type, Error::bad_handle}));
  EXPECT_EQ(f.node.audit().total(), 3u);
}

// Property: grants installed before start are what the child finds by name,
// narrowed by the mask and badged as asked; names are unique, the table closes
// at start, and a capability without `grant` cannot be given.
TEST(ProcessCalls, NamedGrantsAreTheInitialTable) {
  Fixture f;
  const Handle ep = f.node.create_endpoint(f.parent).value();
  const Handle no_grant = f.node.grant(f.parent, ep, f.parent, Rights::send()).value();
  Handle seen;
  std::vector<Error> child_errors;
  ASSERT_TRUE(f.node.register_program("child", [&](Sys& sys) {
                     const Result<Cap<Endpoint>> svc = sys.granted<Endpoint>("svc");
                     ASSERT_TRUE(svc.ok());
                     seen = svc->handle();
                     child_errors.push_back(sys.granted<Endpoint>("nothing").error());
                     child_errors.push_back(sys.granted<Notification>("svc").error());
                     park(sys);  // keep the grant for the test to inspect
                   })
                  .ok());
  std::vector<Error> errors;
  f.node.start(f.parent, [&](Sys& sys) {
          const Cap<Process> child = sys.process_create(Cap<Factory>(f.factory), "child", "c").value();
          EXPECT_TRUE(sys.process_grant(child, "svc", Cap<Endpoint>(ep), Rights::send() | Rights::grant(), 42).ok());
          errors.push_back(sys.process_grant(child, "svc", Cap<Endpoint>(ep), Rights::send()).error());
          errors.push_back(sys.process_grant(child, "other", Cap<Endpoint>(no_grant), Rights::send()).error());
          errors.push_back(sys.process_grant(child, std::string(grant_name_bytes_max + 1, 'x'), Cap<Endpoint>(ep),
                                             Rights::send())
                               .error());
          EXPECT_TRUE(sys.process_start(child).ok());
          errors.push_back(sys.process_grant(child, "late", Cap<Endpoint>(ep), Rights::send()).error());
          park(sys);
        })
        .ok();
  f.node.run();
  const std::vector<ProcessId> all = f.node.process_ids();
  const auto child = std::find_if(all.begin(), all.end(), [&](ProcessId p) { return f.node.name(p) == "c"; });
  ASSERT_NE(child, all.end());
  EXPECT_EQ(f.node.inspect(*child, seen), (CapInfo{ObjectType::endpoint, Rights::send() | Rights::grant(), 42}));
  ASSERT_EQ(f.node.grants(*child).size(), 1u);
  EXPECT_EQ(f.node.grants(*child)[0].name, "svc");
  EXPECT_EQ(errors, (std::vector{Error::invalid_argument, Error::insufficient_rights, Error::invalid_argument,
                                 Error::invalid_argument}));
  EXPECT_EQ(child_errors, (std::vector{Error::not_found, Error::wrong_type}));
  expect_consistent(f.node);
}

// Property: a grant is a child of the granter's capability: revoking that
// capability severs the grant in the child, which then reports severed.
TEST(ProcessCalls, GrantsAreRevocableDescendants) {
  Fixture f;
  const Handle ep = f.node.create_endpoint(f.parent).value();
  Error after_revoke{};
  Handle child_handle;
  ASSERT_TRUE(f.node.register_program("child", [&](Sys& sys) {
                     child_handle = sys.granted<Endpoint>("svc")->handle();
                     (void)sys.yield();
                     (void)sys.yield();
                     after_revoke = sys.granted<Endpoint>("svc").error();
                   })
                  .ok());
  f.node.start(f.parent, [&](Sys& sys) {
          const Cap<Process> child = sys.process_create(Cap<Factory>(f.factory), "child", "c").value();
          EXPECT_TRUE(sys.process_grant(child, "svc", Cap<Endpoint>(ep), Rights::all()).ok());
          EXPECT_TRUE(sys.process_start(child).ok());
          (void)sys.yield();
          EXPECT_TRUE(sys.revoke(Cap<Endpoint>(ep)).ok());
          park(sys);
        })
        .ok();
  f.node.run();
  EXPECT_EQ(after_revoke, Error::severed);
  EXPECT_FALSE(f.node.inspect(f.parent, ep) == std::nullopt);
  expect_consistent(f.node);
}

// Property: an exit watch signals the watcher's notification with its badge
// when the child ends, however it ends; status tells how and what it severed.
TEST(ProcessCalls, ExitWatchSignalsWithBadgeAndStatusTellsHow) {
  for (const ExitReason how : {ExitReason::returned, ExitReason::crashed, ExitReason::killed}) {
    Fixture f;
    ASSERT_TRUE(f.node.register_program("child", [how](Sys& sys) {
                       (void)sys.endpoint_create();
                       (void)sys.notification_create();
                       if (how == ExitReason::crashed) throw std::runtime_error("bug");
                       if (how == ExitReason::killed) park(sys);
                     })
                    .ok());
    const Handle note = f.node.create_notification(f.parent).value();
    std::uint64_t word = 0;
    Sys::ProcessStatus status;
    f.node.start(f.parent, [&](Sys& sys) {
            const Cap<Notification> badged = sys.derive(Cap<Notification>(note), Rights::all(), 0x8).value();
            const Cap<Process> child = sys.process_create(Cap<Factory>(f.factory), "child", "c").value();
            EXPECT_TRUE(sys.process_watch(child, badged).ok());
            EXPECT_TRUE(sys.process_start(child).ok());
            (void)sys.yield();
            if (how == ExitReason::killed) {
              EXPECT_TRUE(sys.kill(child).ok());
            }
            word = sys.wait(Cap<Notification>(note)).value();
            status = sys.process_status(child).value();
          })
          .ok();
    f.node.run();
    EXPECT_EQ(word, 0x8u) << to_string(how);
    EXPECT_FALSE(status.alive);
    EXPECT_EQ(status.exit_reason, how);
    // Its endpoint and notification, and the one it parks on when it is to be killed.
    EXPECT_EQ(status.caps_released, how == ExitReason::killed ? 3u : 2u);
    expect_consistent(f.node);
  }
}

// Property: watching a process that is already dead signals at once; a watch
// whose notification is gone is dropped, not dangling.
TEST(ProcessCalls, WatchOfTheDeadSignalsAtOnceAndDeadNotificationsAreDropped) {
  Fixture f;
  ASSERT_TRUE(f.node.register_program("brief", [](Sys&) {}).ok());
  std::uint64_t word = 0;
  f.node.start(f.parent, [&](Sys& sys) {
          const Cap<Process> a = sys.process_create(Cap<Factory>(f.factory), "brief", "a").value();
          const Cap<Process> b = sys.process_create(Cap<Factory>(f.factory), "brief", "b").value();
          EXPECT_TRUE(sys.process_start(a).ok());
          (void)sys.yield();
          const Cap<Notification> n = sys.notification_create().value();
          const Cap<Notification> badged = sys.derive(n, Rights::all(), 3).value();
          EXPECT_TRUE(sys.process_watch(a, badged).ok());
          word = sys.poll(n).value();
          const Cap<Notification> other = sys.notification_create().value();
          EXPECT_TRUE(sys.process_watch(b, other).ok());
          EXPECT_TRUE(sys.delete_cap(other).ok());  // the notification goes with its last capability
          EXPECT_TRUE(sys.process_start(b).ok());
          (void)sys.yield();
        })
        .ok();
  f.node.run();
  EXPECT_EQ(word, 3u);
  expect_consistent(f.node);
}

// Property: a bound notification wakes a process blocked in receive on any
// endpoint; a pending one is returned at once; calls are still served.
TEST(ProcessCalls, BoundNotificationWakesReceive) {
  Node node(test_config());
  const ProcessId server = node.create_process("server").value();
  const Handle ep = node.create_endpoint(server).value();
  const Handle note = node.create_notification(server).value();
  const ProcessId client = node.create_process("client").value();
  const Handle call_cap = node.grant(server, ep, client, Rights::send()).value();
  const Handle signal_cap = node.grant(server, note, client, Rights::send(), 0x4).value();
  std::vector<std::pair<bool, std::uint64_t>> got;  // (notified, badge or word)
  node.start(server, [&](Sys& sys) {
        EXPECT_TRUE(sys.notification_bind(Cap<Notification>(note)).ok());
        for (int i = 0; i < 3; ++i) {
          Message request{};
          const Result<Received> r = sys.receive(Cap<Endpoint>(ep), request);
          ASSERT_TRUE(r.ok());
          got.emplace_back(r->notified, r->badge);
          if (!r->notified) {
            EXPECT_TRUE(sys.reply(r->reply, Message{}).ok());
          }
        }
      })
      .ok();
  node.start(client, [&](Sys& sys) {
        EXPECT_TRUE(sys.signal(Cap<Notification>(signal_cap)).ok());  // server blocked: wakes it
        Message response{};
        EXPECT_TRUE(sys.call(Cap<Endpoint>(call_cap), Message{}, response).ok());
        EXPECT_TRUE(sys.signal(Cap<Notification>(signal_cap)).ok());  // server busy: stays pending
      })
      .ok();
  node.run();
  EXPECT_EQ(got, (std::vector<std::pair<bool, std::uint64_t>>{{true, 0x4}, {false, 0}, {true, 0x4}}));
  expect_consistent(node);
}

// Property: a created process that is never started, then killed, leaves no
// stack, capability or process object behind.
TEST(ProcessCalls, KillingAnUnstartedChildLeavesNothing) {
  Fixture f;
  ASSERT_TRUE(f.node.register_program("child", [](Sys&) { FAIL() << "never started"; }).ok());
  f.node.start(f.parent, [&](Sys& sys) {
          const Cap<Process> child = sys.process_create(Cap<Factory>(f.factory), "child", "c").value();
          EXPECT_TRUE(sys.process_grant(child, "self", child, Rights::send()).ok());
          EXPECT_EQ(f.node.stats().stacks_in_use, 2u);
          EXPECT_TRUE(sys.kill(child).ok());
          EXPECT_TRUE(sys.delete_cap(child).ok());
        })
        .ok();
  f.node.run();
  const NodeStats s = f.node.stats();
  EXPECT_EQ(s.stacks_in_use, 0u);
  EXPECT_EQ(s.processes, 0u) << "the child went with its last capability, the parent when it returned";
  expect_consistent(f.node);
}

// Property: an unstarted process whose last capability goes can never be
// started: it ends then, leaving no stack, capability or process object.
TEST(ProcessCalls, UnstartedChildEndsWithItsLastCapability) {
  Fixture f;
  ASSERT_TRUE(f.node.register_program("child", [](Sys&) { FAIL() << "never started"; }).ok());
  f.node.start(f.parent, [&](Sys& sys) {
          const Cap<Process> child = sys.process_create(Cap<Factory>(f.factory), "child", "c").value();
          EXPECT_TRUE(sys.process_grant(child, "note", sys.notification_create().value(), Rights::all()).ok());
          EXPECT_EQ(f.node.stats().stacks_in_use, 2u);
          EXPECT_TRUE(sys.delete_cap(child).ok());
          EXPECT_EQ(f.node.stats().stacks_in_use, 1u) << "ended at once";
          park(sys);
        })
        .ok();
  f.node.run();
  EXPECT_EQ(f.node.stats().processes, 1u) << "the parent, parked";
  expect_consistent(f.node);
}

}  // namespace
}  // namespace persim::kernel
