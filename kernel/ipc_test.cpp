// Synchronous IPC: call, receive, reply, reply_receive; message bounds; one-shot
// replies; what callers and servers see when the other side dies.
#include <gtest/gtest.h>

#include "support/harness.hpp"

namespace persim::kernel {
namespace {

using persim::testing::echo_server;
using persim::testing::expect_consistent;
using persim::testing::park;
using persim::testing::test_config;
using persim::testing::text_message;

struct Pair {
  Node node{test_config()};
  ProcessId server = node.create_process("server").value();
  ProcessId client = node.create_process("client").value();
  Handle ep = node.create_endpoint(server).value();
  Handle client_ep = node.grant(server, ep, client, Rights::send() | Rights::grant(), 42).value();
};

// Property: a call delivers label, bytes and badge, and the reply comes back.
TEST(Ipc, CallDeliversPayloadAndBadgeAndGetsReply) {
  Pair t;
  t.node.start(t.server, echo_server(t.ep)).ok();
  std::string got;
  std::uint64_t label = 0;
  t.node.start(t.client, [&](Sys& sys) {
          Message response{};
          ASSERT_TRUE(sys.call(Cap<Endpoint>(t.client_ep), text_message("hello"), response).ok());
          got = std::string(response.text());
          label = response.label;
        })
      .ok();
  t.node.run();
  EXPECT_EQ(got, "echo:hello");
  EXPECT_EQ(label, 42u) << "the echo server returns the badge it saw";
  expect_consistent(t.node);
}

// Property: callers that arrive before the server receives are queued and
// served in arrival order.
TEST(Ipc, QueuedCallersServedInOrder) {
  Node node(test_config());
  const ProcessId server = node.create_process("server").value();
  const Handle ep = node.create_endpoint(server).value();
  std::vector<std::uint64_t> order;
  for (std::uint64_t badge = 1; badge <= 5; ++badge) {
    const ProcessId c = node.create_process("client").value();
    const Handle h = node.grant(server, ep, c, Rights::send(), badge).value();
    node.start(c, [h](Sys& sys) {
          Message m{}, r{};
          EXPECT_TRUE(sys.call(Cap<Endpoint>(h), m, r).ok());
        })
        .ok();
  }
  node.start(server, [&](Sys& sys) {
        (void)sys.sleep_for(100);  // let every client queue up first
        Message m{};
        Result<Received> r = sys.receive(Cap<Endpoint>(ep), m);
        while (r) {
          order.push_back(r->badge);
          if (order.size() == 5) {
            (void)sys.reply(r->reply, m);
            return;
          }
          r = sys.reply_receive(r->reply, m, Cap<Endpoint>(ep), m);
        }
      })
      .ok();
  node.run();
  EXPECT_EQ(order, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  expect_consistent(node);
}

// Property: messages over the bounds are refused before anything happens.
TEST(Ipc, MessageBoundsRefusedUpFront) {
  Pair t;
  t.node.start(t.server, echo_server(t.ep)).ok();
  std::vector<Error> errors;
  t.node.start(t.client, [&](Sys& sys) {
          Message big{}, response{};
          big.length = msg_bytes_max + 1;
          errors.push_back(sys.call(Cap<Endpoint>(t.client_ep), big, response).error());
          Message many{};
          many.cap_count = msg_caps_max + 1;
          errors.push_back(sys.call(Cap<Endpoint>(t.client_ep), many, response).error());
          Message exact{};
          exact.length = msg_bytes_max;
          EXPECT_TRUE(sys.call(Cap<Endpoint>(t.client_ep), exact, response).ok());
        })
      .ok();
  t.node.run();
  EXPECT_EQ(errors, (std::vector{Error::message_too_large, Error::too_many_caps}));
  expect_consistent(t.node);
}

// Property: a reply capability is one-shot; a second reply finds no capability.
TEST(Ipc, ReplyIsOneShot) {
  Pair t;
  Error second{};
  t.node.start(t.server, [&](Sys& sys) {
          Message m{};
          const Received r = sys.receive(Cap<Endpoint>(t.ep), m).value();
          EXPECT_TRUE(sys.reply(r.reply, m).ok());
          second = sys.reply(r.reply, m).error();
        })
      .ok();
  t.node.start(t.client, [&](Sys& sys) {
          Message m{}, out{};
          EXPECT_TRUE(sys.call(Cap<Endpoint>(t.client_ep), m, out).ok());
        })
      .ok();
  t.node.run();
  EXPECT_EQ(second, Error::bad_handle);
  EXPECT_EQ(t.node.stats().replies, 0u);
  expect_consistent(t.node);
}

// Property: a server dying with a call in hand wakes the caller with peer_died.
TEST(Ipc, ServerDeathWakesCallerWithPeerDied) {
  Pair t;
  t.node.start(t.server, [&](Sys& sys) {
          Message m{};
          (void)sys.receive(Cap<Endpoint>(t.ep), m);
          for (;;) (void)sys.sleep_for(1000);  // holds the reply, never answers
        })
      .ok();
  Error caller_saw{};
  t.node.start(t.client, [&](Sys& sys) {
          Message m{}, out{};
          caller_saw = sys.call(Cap<Endpoint>(t.client_ep), m, out).error();
        })
      .ok();
  t.node.at(5000, [&](Node& n) { EXPECT_TRUE(n.kill(t.server).ok()); });
  t.node.run({.until_ns = 100'000});
  EXPECT_EQ(caller_saw, Error::peer_died);
  expect_consistent(t.node);
}

// Property: a caller dying while its call is being served makes the reply report
// peer_died and consume the reply capability; the server goes on.
TEST(Ipc, ReplyToDeadCallerReportsPeerDied) {
  Pair t;
  Error reply_error{};
  t.node.start(t.server, [&](Sys& sys) {
          Message m{};
          const Received r = sys.receive(Cap<Endpoint>(t.ep), m).value();
          (void)sys.sleep_for(1000);  // the caller is killed meanwhile
          reply_error = sys.reply(r.reply, m).error();
        })
      .ok();
  t.node.start(t.client, [&](Sys& sys) {
          Message m{}, out{};
          (void)sys.call(Cap<Endpoint>(t.client_ep), m, out);
          ADD_FAILURE() << "a killed caller never returns from call";
        })
      .ok();
  t.node.at(500, [&](Node& n) { EXPECT_TRUE(n.kill(t.client).ok()); });
  t.node.run();
  EXPECT_EQ(reply_error, Error::peer_died);
  EXPECT_EQ(t.node.stats().replies, 0u);
  expect_consistent(t.node);
}

// Property: a receiver with no room for the reply capability is told
// (cspace_full) and the call stays queued until it makes room.
TEST(Ipc, ReceiverWithoutRoomIsToldAndCallWaits) {
  Pair t;
  std::vector<Error> server_saw;
  t.node.start(t.server, [&](Sys& sys) {
          std::vector<Cap<Notification>> filler;
          for (;;) {
            Result<Cap<Notification>> n = sys.notification_create();
            if (!n) break;
            filler.push_back(*n);
          }
          Message m{};
          Result<Received> r = sys.receive(Cap<Endpoint>(t.ep), m);
          server_saw.push_back(r ? Error{} : r.error());
          EXPECT_TRUE(sys.delete_cap(filler.back()).ok());
          r = sys.receive(Cap<Endpoint>(t.ep), m);
          server_saw.push_back(r ? Error{} : r.error());
          if (r) (void)sys.reply(r->reply, m);
        })
      .ok();
  bool answered = false;
  t.node.start(t.client, [&](Sys& sys) {
          Message m{}, out{};
          answered = sys.call(Cap<Endpoint>(t.client_ep), m, out).ok();
        })
      .ok();
  t.node.run();
  EXPECT_EQ(server_saw, (std::vector{Error::cspace_full, Error{}}));
  EXPECT_TRUE(answered);
  expect_consistent(t.node);
}

// Property: capabilities travel in replies too, as children of the replier's.
TEST(Ipc, ReplyTransfersCapabilityAsChild) {
  Pair t;
  Handle session;
  t.node.start(t.server, [&](Sys& sys) {
          Message m{};
          const Received r = sys.receive(Cap<Endpoint>(t.ep), m).value();
          const Cap<Notification> n = sys.notification_create().value();
          Message response{};
          response.attach(n, Rights::send() | Rights::grant());
          EXPECT_TRUE(sys.reply(r.reply, response).ok());
          (void)sys.sleep_for(1000);
          EXPECT_TRUE(sys.revoke(n).ok());
        })
      .ok();
  t.node.start(t.client, [&](Sys& sys) {
          Message m{}, out{};
          ASSERT_TRUE(sys.call(Cap<Endpoint>(t.client_ep), m, out).ok());
          ASSERT_EQ(out.cap_count, 1u);
          session = out.caps[0].handle;
          EXPECT_EQ(out.caps[0].rights, Rights::send() | Rights::grant());
          EXPECT_TRUE(sys.signal(out.received_cap<Notification>(0)).ok());
          (void)sys.sleep_for(5000);
          EXPECT_EQ(sys.signal(out.received_cap<Notification>(0)).error(), Error::severed);
        })
      .ok();
  t.node.run();
  expect_consistent(t.node);
}

// Property: a queued caller whose endpoint capability is revoked is woken at
// once with severed, and the server gets the next caller instead.
TEST(Ipc, QueuedCallerRevalidatedAtDelivery) {
  Node node(test_config());
  const ProcessId server = node.create_process("server").value();
  const ProcessId a = node.create_process("a").value();
  const ProcessId b = node.create_process("b").value();
  const Handle ep = node.create_endpoint(server).value();
  const Handle for_a = node.grant(server, ep, server, Rights::all(), 1).value();
  const Handle a_ep = node.grant(server, for_a, a, Rights::send()).value();
  const Handle b_ep = node.grant(server, ep, b, Rights::send(), 2).value();
  Error a_saw{};
  std::uint64_t served_badge = 0;
  node.start(a, [&](Sys& sys) {
        Message m{}, out{};
        a_saw = sys.call(Cap<Endpoint>(a_ep), m, out).error();
      })
      .ok();
  node.start(b, [&](Sys& sys) {
        Message m{}, out{};
        EXPECT_TRUE(sys.call(Cap<Endpoint>(b_ep), m, out).ok());
      })
      .ok();
  node.start(server, [&](Sys& sys) {
        (void)sys.sleep_for(100);
        EXPECT_TRUE(sys.revoke(Cap<Endpoint>(for_a)).ok());  // a is queued; its capability goes
        Message m{};
        const Received r = sys.receive(Cap<Endpoint>(ep), m).value();
        served_badge = r.badge;
        (void)sys.reply(r.reply, m);
      })
      .ok();
  node.run();
  EXPECT_EQ(a_saw, Error::severed);
  EXPECT_EQ(served_badge, 2u);
  expect_consistent(node);
}

// Property: a queued caller whose endpoint capability is revoked wakes then,
// with severed, not when some receiver finally comes along.
TEST(Ipc, QueuedCallerWakesWhenItsCapabilityIsRevoked) {
  Node node(test_config());
  const ProcessId server = node.create_process("server").value();
  const ProcessId a = node.create_process("a").value();
  const Handle ep = node.create_endpoint(server).value();
  const Handle a_ep = node.grant(server, ep, a, Rights::send()).value();
  Error a_saw{};
  std::uint64_t a_woke_ns = 0;
  node.start(a, [&](Sys& sys) {
        Message m{}, out{};
        a_saw = sys.call(Cap<Endpoint>(a_ep), m, out).error();
        a_woke_ns = sys.now_ns();
      })
      .ok();
  node.start(server, [&](Sys& sys) {
        (void)sys.sleep_for(100);
        EXPECT_TRUE(sys.revoke(Cap<Endpoint>(ep)).ok());
        park(sys);  // never receives
      })
      .ok();
  node.run();
  EXPECT_EQ(a_saw, Error::severed);
  EXPECT_EQ(a_woke_ns, 100u);
  EXPECT_EQ(node.audit().total(), 0u) << "the caller made no failed lookup";
  expect_consistent(node);
}

// Property: a receiver whose endpoint capability is revoked while it waits
// wakes with severed.
TEST(Ipc, ReceiverWakesWhenItsCapabilityIsRevoked) {
  Node node(test_config());
  const ProcessId owner = node.create_process("owner").value();
  const ProcessId server = node.create_process("server").value();
  const Handle ep = node.create_endpoint(owner).value();
  const Handle server_ep = node.grant(owner, ep, server, Rights::receive()).value();
  Error server_saw{};
  node.start(server, [&](Sys& sys) {
        Message m{};
        server_saw = sys.receive(Cap<Endpoint>(server_ep), m).error();
      })
      .ok();
  node.start(owner, [&](Sys& sys) {
        (void)sys.sleep_for(100);
        EXPECT_TRUE(sys.revoke(Cap<Endpoint>(ep)).ok());
        park(sys);
      })
      .ok();
  node.run();
  EXPECT_EQ(server_saw, Error::severed);
  EXPECT_EQ(node.stats().endpoints, 1u) << "the owner's capability keeps the endpoint";
  expect_consistent(node);
}

// Property: a capability a queued caller was sending that is revoked while it
// waits fails the call at delivery, as a failed lookup of the caller's: audited.
TEST(Ipc, TransferRevokedWhileQueuedIsAudited) {
  Node node(test_config());
  const ProcessId server = node.create_process("server").value();
  const ProcessId a = node.create_process("a").value();
  const Handle ep = node.create_endpoint(server).value();
  const Handle a_ep = node.grant(server, ep, a, Rights::send()).value();
  const Handle note = node.create_notification(server).value();
  const Handle a_note = node.grant(server, note, a, Rights::all()).value();
  Error a_saw{};
  node.start(a, [&](Sys& sys) {
        Message m{}, out{};
        m.attach(Cap<Notification>(a_note));
        a_saw = sys.call(Cap<Endpoint>(a_ep), m, out).error();
      })
      .ok();
  node.start(server, [&](Sys& sys) {
        (void)sys.sleep_for(100);
        EXPECT_TRUE(sys.revoke(Cap<Notification>(note)).ok());
        Message m{};
        (void)sys.receive(Cap<Endpoint>(ep), m);  // a fails at delivery; nobody else calls
      })
      .ok();
  node.run();
  EXPECT_EQ(a_saw, Error::severed);
  EXPECT_EQ(node.audit().count(Error::severed), 1u);
  EXPECT_EQ(node.audit().total(), 1u);
  expect_consistent(node);
}

// Property: receive_until returns timed_out at its deadline when no call
// comes; a call before the deadline is received, and the deadline it had then
// does not cut short a later plain receive.
TEST(Ipc, ReceiveUntilTimesOutAtItsDeadlineOnly) {
  Node node(test_config());
  const ProcessId server = node.create_process("server").value();
  const Handle ep = node.create_endpoint(server).value();
  const ProcessId client = node.create_process("client").value();
  const Handle client_ep = node.grant(server, ep, client, Rights::send()).value();
  std::vector<std::pair<std::uint64_t, Error>> seen;  // (time, outcome)
  node.start(server, [&](Sys& sys) {
        Message m{};
        auto note = [&](const Result<Received>& r) { seen.emplace_back(sys.now_ns(), r ? Error{} : r.error()); };
        note(sys.receive_until(Cap<Endpoint>(ep), m, 100));  // nobody calls: times out at 100
        Result<Received> r = sys.receive_until(Cap<Endpoint>(ep), m, 1000);  // the call at 300 comes first
        note(r);
        if (r) (void)sys.reply(r->reply, m);
        r = sys.receive(Cap<Endpoint>(ep), m);  // plain: the old deadline (1000) must not end it
        note(r);
        if (r) (void)sys.reply(r->reply, m);
        note(sys.receive_until(Cap<Endpoint>(ep), m, 0));  // deadline passed: at once
      })
      .ok();
  node.start(client, [&](Sys& sys) {
        Message m{}, out{};
        (void)sys.sleep_for(300);
        EXPECT_TRUE(sys.call(Cap<Endpoint>(client_ep), m, out).ok());
        (void)sys.sleep_for(2000);
        EXPECT_TRUE(sys.call(Cap<Endpoint>(client_ep), m, out).ok());
      })
      .ok();
  node.run();
  EXPECT_EQ(seen, (std::vector<std::pair<std::uint64_t, Error>>{
                      {100, Error::timed_out}, {300, Error{}}, {2300, Error{}}, {2300, Error::timed_out}}));
  expect_consistent(node);
}

}  // namespace
}  // namespace persim::kernel

namespace persim::kernel {
namespace {

// Property: call_until gives up at its deadline whether its call is still
// queued (it is taken back: the server never sees it) or being served (the
// server's reply then reports peer_died); answered in time it is a plain
// call, and its deadline does not cut short the caller's later waits.
TEST(Ipc, CallUntilGivesUpAtItsDeadlineOnly) {
  Node node(test_config());
  const ProcessId server = node.create_process("server").value();
  const Handle ep = node.create_endpoint(server).value();
  const ProcessId client = node.create_process("client").value();
  const Handle client_ep = node.grant(server, ep, client, Rights::send()).value();
  std::vector<std::pair<std::uint64_t, Error>> calls;     // (time, outcome) at the client
  std::vector<std::pair<std::uint64_t, std::uint64_t>> received;  // (time, label) at the server
  Error late_reply{};
  node.start(server, [&](Sys& sys) {
        Message m{};
        (void)sys.sleep_for(500);  // the first call (deadline 100) is gone from the queue by now
        Result<Received> r = sys.receive(Cap<Endpoint>(ep), m);  // the second: served too slowly
        received.emplace_back(sys.now_ns(), m.label);
        (void)sys.sleep_for(1000);
        late_reply = sys.reply(r->reply, m).error();
        r = sys.receive(Cap<Endpoint>(ep), m);  // the third: answered at once
        received.emplace_back(sys.now_ns(), m.label);
        (void)sys.reply(r->reply, m);
      })
      .ok();
  node.start(client, [&](Sys& sys) {
        Message m{}, out{};
        auto note = [&](const Status& s) { calls.emplace_back(sys.now_ns(), s ? Error{} : s.error()); };
        m.label = 1;
        note(sys.call_until(Cap<Endpoint>(client_ep), m, out, 100));  // queued, nobody receives: 100
        (void)sys.sleep_for(300);                                      // 400
        m.label = 2;
        note(sys.call_until(Cap<Endpoint>(client_ep), m, out, 900));  // received at 500, not answered by 900
        m.label = 3;
        note(sys.call_until(Cap<Endpoint>(client_ep), m, out, 5000));  // answered at 1500
        (void)sys.sleep_for(10000);  // the old deadline (5000) must not end this sleep early
        note(Status{});
        // Deadline passed: at once; the server has ended by now, and a lookup
        // error comes before timed_out.
        note(sys.call_until(Cap<Endpoint>(client_ep), m, out, 0));
      })
      .ok();
  node.run();
  EXPECT_EQ(calls, (std::vector<std::pair<std::uint64_t, Error>>{
                       {100, Error::timed_out}, {900, Error::timed_out}, {1500, Error{}}, {11500, Error{}},
                       {11500, Error::severed}}));
  EXPECT_EQ(received, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{500, 2}, {1500, 3}}));
  EXPECT_EQ(late_reply, Error::peer_died);
  expect_consistent(node);
}

// Property: with a deadline already passed, both call kinds that take one
// report lookup errors first (and audit them), exactly as without a
// deadline: a made-up handle, a handle of the wrong type, one without the
// right, and (call_until) a message transferring a made-up handle. Only a
// call whose lookups all succeed times out.
TEST(Ipc, PassedDeadlineStillReportsLookupErrorsFirst) {
  Node node(test_config());
  const ProcessId server = node.create_process("server").value();
  const Handle ep = node.create_endpoint(server).value();
  const ProcessId client = node.create_process("client").value();
  const Handle send_only = node.grant(server, ep, client, Rights::send()).value();
  const Handle receive_only = node.grant(server, ep, client, Rights::receive()).value();
  const Handle note = node.create_notification(client).value();
  const Handle made_up = Handle::from_raw(0x0badf00d);
  std::vector<Error> calls, receives;
  node.start(client, [&](Sys& sys) {
        (void)sys.sleep_for(10);  // every deadline below (0 or 5) has passed
        Message m{}, out{};
        for (const std::uint64_t deadline : {std::uint64_t{0}, std::uint64_t{5}}) {
          calls.push_back(sys.call_until(Cap<Endpoint>(made_up), m, out, deadline).error());
          calls.push_back(sys.call_until(Cap<Endpoint>(note), m, out, deadline).error());
          calls.push_back(sys.call_until(Cap<Endpoint>(receive_only), m, out, deadline).error());
          Message carrying{};
          carrying.attach(Cap<Endpoint>(made_up), Rights::send());
          calls.push_back(sys.call_until(Cap<Endpoint>(send_only), carrying, out, deadline).error());
          calls.push_back(sys.call_until(Cap<Endpoint>(send_only), m, out, deadline).error());
          receives.push_back(sys.receive_until(Cap<Endpoint>(made_up), m, deadline).error());
          receives.push_back(sys.receive_until(Cap<Endpoint>(note), m, deadline).error());
          receives.push_back(sys.receive_until(Cap<Endpoint>(send_only), m, deadline).error());
          receives.push_back(sys.receive_until(Cap<Endpoint>(receive_only), m, deadline).error());
        }
      })
      .ok();
  node.run();
  const std::vector<Error> call_order = {Error::bad_handle, Error::wrong_type, Error::insufficient_rights,
                                         Error::bad_handle, Error::timed_out};
  const std::vector<Error> receive_order = {Error::bad_handle, Error::wrong_type, Error::insufficient_rights,
                                            Error::timed_out};
  std::vector<Error> both_calls = call_order, both_receives = receive_order;
  both_calls.insert(both_calls.end(), call_order.begin(), call_order.end());
  both_receives.insert(both_receives.end(), receive_order.begin(), receive_order.end());
  EXPECT_EQ(calls, both_calls);
  EXPECT_EQ(receives, both_receives);
  // Every failed lookup audited: 4 of call_until's, 3 of receive_until's, twice.
  EXPECT_EQ(node.audit().count(Error::bad_handle), 6u);
  EXPECT_EQ(node.audit().count(Error::wrong_type), 4u);
  EXPECT_EQ(node.audit().count(Error::insufficient_rights), 4u);
  EXPECT_EQ(node.audit().total(), 14u);
  expect_consistent(node);
}

}  // namespace
}  // namespace persim::kernel
