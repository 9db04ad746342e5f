// Notifications: asynchronous signals carrying badge bits.
#include <gtest/gtest.h>

#include "support/harness.hpp"

namespace persim::kernel {
namespace {

using persim::testing::expect_consistent;
using persim::testing::test_config;

// Property: signals before a wait accumulate (OR of badges); the wait takes them
// all at once and clears them; poll without a signal would block.
TEST(Notification, SignalsAccumulateUntilWait) {
  Node node(test_config());
  const ProcessId p = node.create_process("p").value();
  const Handle n = node.create_notification(p).value();
  const Handle one = node.grant(p, n, p, Rights::send(), 0b001).value();
  const Handle four = node.grant(p, n, p, Rights::send(), 0b100).value();
  std::vector<std::uint64_t> words;
  Error empty_poll{};
  node.start(p, [&](Sys& sys) {
        EXPECT_TRUE(sys.signal(Cap<Notification>(one)).ok());
        EXPECT_TRUE(sys.signal(Cap<Notification>(four)).ok());
        words.push_back(sys.wait(Cap<Notification>(n)).value());
        empty_poll = sys.poll(Cap<Notification>(n)).error();
        EXPECT_TRUE(sys.signal(Cap<Notification>(four)).ok());
        words.push_back(sys.poll(Cap<Notification>(n)).value());
      })
      .ok();
  node.run();
  EXPECT_EQ(words, (std::vector<std::uint64_t>{0b101, 0b100}));
  EXPECT_EQ(empty_poll, Error::would_block);
}

// Property: a waiter blocks until a signal and receives the signaller's badge.
TEST(Notification, WaiterWakesWithBadge) {
  Node node(test_config());
  const ProcessId waiter = node.create_process("waiter").value();
  const ProcessId signaller = node.create_process("signaller").value();
  const Handle n = node.create_notification(waiter).value();
  const Handle s = node.grant(waiter, n, signaller, Rights::send(), 0x40).value();
  std::uint64_t got = 0;
  std::uint64_t woke_at = 0;
  node.start(waiter, [&](Sys& sys) {
        got = sys.wait(Cap<Notification>(n)).value();
        woke_at = sys.now_ns();
      })
      .ok();
  node.start(signaller, [&](Sys& sys) {
        (void)sys.sleep_for(2500);
        EXPECT_TRUE(sys.signal(Cap<Notification>(s)).ok());
      })
      .ok();
  node.run();
  EXPECT_EQ(got, 0x40u);
  EXPECT_EQ(woke_at, 2500u);
  expect_consistent(node);
}

// Property: signalling needs send; waiting needs receive.
TEST(Notification, RightsAreChecked) {
  Node node(test_config());
  const ProcessId p = node.create_process("p").value();
  const Handle n = node.create_notification(p).value();
  const Handle recv_only = node.grant(p, n, p, Rights::receive()).value();
  const Handle send_only = node.grant(p, n, p, Rights::send()).value();
  std::vector<Error> errors;
  node.start(p, [&](Sys& sys) {
        errors.push_back(sys.signal(Cap<Notification>(recv_only)).error());
        errors.push_back(sys.wait(Cap<Notification>(send_only)).error());
        errors.push_back(sys.poll(Cap<Notification>(send_only)).error());
      })
      .ok();
  node.run();
  EXPECT_EQ(errors, std::vector<Error>(3, Error::insufficient_rights));
}

// Property: a waiter whose capability is revoked wakes at once with severed (it
// no longer holds the authority to wait), and the notification goes with its
// last capability.
TEST(Notification, DestroyedWhileWaitingWakesWaiter) {
  Node node(test_config());
  const ProcessId owner = node.create_process("owner").value();
  const ProcessId waiter = node.create_process("waiter").value();
  const Handle n = node.create_notification(owner).value();
  const Handle w = node.grant(owner, n, waiter, Rights::receive()).value();
  Error got{};
  node.start(waiter, [&](Sys& sys) {
        const Result<std::uint64_t> r = sys.wait(Cap<Notification>(w));
        got = r ? Error{} : r.error();
      })
      .ok();
  node.start(owner, [&](Sys& sys) {
        (void)sys.sleep_for(10);
        EXPECT_TRUE(sys.revoke(Cap<Notification>(n)).ok());
        EXPECT_TRUE(sys.delete_cap(Cap<Notification>(n)).ok());
      })
      .ok();
  node.run();
  EXPECT_EQ(got, Error::severed);
  EXPECT_EQ(node.stats().notifications, 0u);
  expect_consistent(node);
}

}  // namespace
}  // namespace persim::kernel
