// Rights and derivation: every combination of held rights and mask, for derive
// and for transfer in a message; badges; the derivation tree under delete and revoke.
#include <gtest/gtest.h>

#include "support/harness.hpp"

namespace persim::kernel {
namespace {

using persim::testing::expect_consistent;
using persim::testing::park;
using persim::testing::test_config;

constexpr int rights_combinations = 1 << Rights::count;

std::vector<Rights> all_rights() {
  std::vector<Rights> out;
  for (int bits = 0; bits < rights_combinations; ++bits) out.push_back(Rights::from_bits(static_cast<Rights::Bits>(bits)));
  return out;
}

// Property: derive succeeds exactly when the source holds `derive`, and the
// child holds exactly held & mask; the source is unchanged. All 64 x 64 cases.
TEST(Rights, DeriveEveryCombination) {
  Node node(test_config());
  const ProcessId p = node.create_process("deriver").value();
  const Handle original = node.create_endpoint(p).value();
  std::vector<Handle> held;
  for (Rights r : all_rights()) held.push_back(node.grant(p, original, p, r).value());
  int checked = 0;
  node.start(p, [&](Sys& sys) {
        for (Rights h : all_rights()) {
          const Cap<Endpoint> source(held[h.bits()]);
          for (Rights mask : all_rights()) {
            const Result<Cap<Endpoint>> child = sys.derive(source, mask);
            if (!h.contains(Rights::derive())) {
              EXPECT_EQ(child.error(), Error::insufficient_rights) << h.to_string() << " & " << mask.to_string();
              continue;
            }
            ASSERT_TRUE(child.ok()) << h.to_string();
            const auto info = node.inspect(p, child->handle());
            ASSERT_TRUE(info);
            EXPECT_EQ(info->rights, h & mask) << h.to_string() << " & " << mask.to_string();
            EXPECT_EQ(node.inspect(p, source.handle())->rights, h);
            EXPECT_TRUE(sys.delete_cap(*child).ok());
            ++checked;
          }
        }
      })
      .ok();
  node.run();
  EXPECT_EQ(checked, rights_combinations * rights_combinations / 2);
  expect_consistent(node);
}

// Property: a capability travels in a message exactly when it holds `grant`; the
// receiver holds exactly held & mask; a refused message delivers nothing. All
// 64 x 64 cases.
TEST(Rights, TransferEveryCombination) {
  Node node(test_config());
  const ProcessId server = node.create_process("server").value();
  const ProcessId client = node.create_process("client").value();
  const Handle ep = node.create_endpoint(server).value();
  const Handle client_ep = node.grant(server, ep, client, Rights::send()).value();
  const Handle note = node.create_notification(client).value();
  std::vector<Handle> held;
  for (Rights r : all_rights()) held.push_back(node.grant(client, note, client, r).value());

  int received = 0;
  node.start(server, [&](Sys& sys) {
        Message request{}, response{};
        Result<Received> r = sys.receive(Cap<Endpoint>(ep), request);
        while (r) {
          const auto expected = Rights::from_bits(static_cast<Rights::Bits>(request.get<std::uint8_t>(0) &
                                                                            request.get<std::uint8_t>(1)));
          EXPECT_EQ(request.cap_count, 1u);
          const Handle got = request.caps[0].handle;
          EXPECT_EQ(request.caps[0].rights, expected);
          const auto info = node.inspect(server, got);
          EXPECT_TRUE(info && info->rights == expected && info->type == ObjectType::notification);
          EXPECT_TRUE(sys.delete_cap(AnyCap(got)).ok());
          ++received;
          r = sys.reply_receive(r->reply, response, Cap<Endpoint>(ep), request);
        }
      })
      .ok();
  node.start(client, [&](Sys& sys) {
        for (Rights h : all_rights()) {
          for (Rights mask : all_rights()) {
            Message request{}, response{};
            request.put<std::uint8_t>(0, h.bits());
            request.put<std::uint8_t>(1, mask.bits());
            request.attach(AnyCap(held[h.bits()]), mask);
            const Status s = sys.call(Cap<Endpoint>(client_ep), request, response);
            if (h.contains(Rights::grant())) {
              EXPECT_TRUE(s.ok()) << h.to_string();
            } else {
              EXPECT_EQ(s.error(), Error::insufficient_rights) << h.to_string();
            }
          }
        }
      })
      .ok();
  node.run();
  EXPECT_EQ(received, rights_combinations * rights_combinations / 2);
  expect_consistent(node);
}

// Property: calling needs `send` on the endpoint capability and receiving needs
// `receive`, for every combination of the other rights.
TEST(Rights, CallAndReceiveNeedTheirRight) {
  for (Rights r : all_rights()) {
    Node node(test_config());
    const ProcessId server = node.create_process("server").value();
    const ProcessId client = node.create_process("client").value();
    const Handle ep = node.create_endpoint(server).value();
    const Handle limited_server = node.grant(server, ep, server, r).value();
    const Handle limited_client = node.grant(server, ep, client, r).value();
    Error receive_error{}, call_error{};
    node.start(server, [&](Sys& sys) {
          Message m{};
          const Result<Received> got = sys.receive(Cap<Endpoint>(limited_server), m);
          receive_error = got ? Error{} : got.error();
          if (got) (void)sys.reply(got->reply, m);
          park(sys);  // stay alive: the client's capability derives from ours
        })
        .ok();
    node.start(client, [&](Sys& sys) {
          Message m{}, out{};
          const Status s = sys.call(Cap<Endpoint>(limited_client), m, out);
          call_error = s ? Error{} : s.error();
        })
        .ok();
    node.run();
    EXPECT_EQ(call_error == Error::insufficient_rights, !r.contains(Rights::send())) << r.to_string();
    EXPECT_EQ(receive_error == Error::insufficient_rights, !r.contains(Rights::receive())) << r.to_string();
  }
}

// Property: a badge is set once, on endpoints and notifications, and is
// inherited by every further derivation.
TEST(Rights, BadgeIsSetOnceAndInherited) {
  Node node(test_config());
  const ProcessId p = node.create_process("p").value();
  const Handle ep = node.create_endpoint(p).value();
  const Handle proc = node.create_process_cap(p, p).value();
  node.start(p, [&](Sys& sys) {
        const Cap<Endpoint> badged = sys.derive(Cap<Endpoint>(ep), Rights::all(), 7).value();
        EXPECT_EQ(node.inspect(p, badged.handle())->badge, 7u);
        EXPECT_EQ(sys.derive(badged, Rights::all(), 8).error(), Error::invalid_argument);
        const Cap<Endpoint> grandchild = sys.derive(badged, Rights::send()).value();
        EXPECT_EQ(node.inspect(p, grandchild.handle())->badge, 7u);
        EXPECT_EQ(sys.derive(Cap<Process>(proc), Rights::all(), 3).error(), Error::invalid_argument);
      })
      .ok();
  node.run();
  expect_consistent(node);
}

// Property: deleting a capability keeps its children (they move up to its
// parent), so revoking the grandparent still removes them.
TEST(Derivation, DeleteReparentsChildrenAndRevokeStillReachesThem) {
  Node node(test_config());
  const ProcessId a = node.create_process("a").value();
  const ProcessId b = node.create_process("b").value();
  const ProcessId c = node.create_process("c").value();
  const Handle root = node.create_notification(a).value();
  const Handle mid = node.grant(a, root, b, Rights::all()).value();
  const Handle leaf = node.grant(b, mid, c, Rights::all()).value();
  node.start(b, [&](Sys& sys) {
        EXPECT_TRUE(sys.delete_cap(AnyCap(mid)).ok());
        park(sys);
      })
      .ok();
  node.run();
  EXPECT_FALSE(node.inspect(b, mid));
  ASSERT_TRUE(node.inspect(c, leaf)) << "the child survives its parent's deletion";
  node.start(a, [&](Sys& sys) {
        EXPECT_TRUE(sys.revoke(AnyCap(root)).ok());
        park(sys);
      })
      .ok();
  node.run();
  EXPECT_FALSE(node.inspect(c, leaf)) << "revoking the grandparent removes the re-parented child";
  EXPECT_TRUE(node.inspect(a, root)) << "revoke keeps the capability itself";
  expect_consistent(node);
}

// Property: revoke removes descendants in every process, and nothing else:
// siblings' subtrees and the capability itself survive; revoked handles report severed.
TEST(Derivation, RevokeRemovesExactlyDescendantsAcrossProcesses) {
  Node node(test_config());
  const ProcessId a = node.create_process("a").value();
  const ProcessId b = node.create_process("b").value();
  const Handle root = node.create_endpoint(a).value();
  const Handle left = node.grant(a, root, a, Rights::all()).value();
  const Handle right = node.grant(a, root, b, Rights::all()).value();
  const Handle left_child = node.grant(a, left, b, Rights::send()).value();
  const Handle left_grandchild = node.grant(b, left_child, a, Rights::send()).value();
  const Handle right_child = node.grant(b, right, b, Rights::send()).value();
  std::vector<Error> after;
  node.start(a, [&](Sys& sys) {
        EXPECT_TRUE(sys.revoke(AnyCap(left)).ok());
        Message m{}, r{};
        after.push_back(sys.call(Cap<Endpoint>(left_grandchild), m, r).error());
        park(sys);
      })
      .ok();
  node.run();
  EXPECT_EQ(after, std::vector{Error::severed});
  EXPECT_TRUE(node.inspect(a, root));
  EXPECT_TRUE(node.inspect(a, left));
  EXPECT_FALSE(node.inspect(b, left_child));
  EXPECT_FALSE(node.inspect(a, left_grandchild));
  EXPECT_TRUE(node.inspect(b, right));
  EXPECT_TRUE(node.inspect(b, right_child));
  expect_consistent(node);
}

// Property: revoke needs the revoke right; without it nothing is removed.
TEST(Derivation, RevokeNeedsRevokeRight) {
  Node node(test_config());
  const ProcessId a = node.create_process("a").value();
  const Handle root = node.create_notification(a).value();
  const Handle weak = node.grant(a, root, a, Rights::all() & Rights::from_bits(~Rights::revoke().bits())).value();
  const Handle child = node.grant(a, weak, a, Rights::all()).value();
  node.start(a, [&](Sys& sys) {
        EXPECT_EQ(sys.revoke(AnyCap(weak)).error(), Error::insufficient_rights);
        park(sys);
      })
      .ok();
  node.run();
  EXPECT_TRUE(node.inspect(a, child));
  EXPECT_EQ(node.audit().count(Error::insufficient_rights), 1u);
}

// Property: when the endpoint's holder dies, what derives from its capability is
// severed: a caller queued through such a capability wakes with severed, and
// the endpoint, its last capability gone, is destroyed.
TEST(Derivation, LastCapabilityGoneDestroysObjectAndWakesWaiters) {
  Node node(test_config());
  const ProcessId server = node.create_process("server").value();
  const ProcessId client = node.create_process("client").value();
  const Handle ep = node.create_endpoint(server).value();
  const Handle client_ep = node.grant(server, ep, client, Rights::send()).value();
  node.start(server, [](Sys& sys) {
        for (;;) (void)sys.sleep_for(1000);  // never receives
      })
      .ok();
  Error woke{};
  node.start(client, [&](Sys& sys) {
        Message m{}, r{};
        const Status s = sys.call(Cap<Endpoint>(client_ep), m, r);
        woke = s ? Error{} : s.error();
      })
      .ok();
  node.at(500, [&](Node& n) { EXPECT_TRUE(n.kill(server).ok()); });
  node.run({.until_ns = 10'000});
  EXPECT_EQ(woke, Error::severed);
  EXPECT_EQ(node.stats().endpoints, 0u);
  EXPECT_FALSE(node.inspect(client, client_ep));
  expect_consistent(node);
}

}  // namespace
}  // namespace persim::kernel
