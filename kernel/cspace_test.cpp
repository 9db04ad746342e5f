// Capability spaces and handles: layout, re-validation on every lookup, the
// fixed order of lookup errors, generations, severed handles, the audit log.
#include "kernel/cspace.hpp"

#include <gtest/gtest.h>

#include <set>

#include "support/harness.hpp"

namespace persim::kernel {
namespace {

using persim::testing::expect_consistent;
using persim::testing::test_config;

// Property: encode and decode are inverse for every slot and generation bound.
TEST(Handle, EncodeDecodeRoundTripsAtTheBounds) {
  for (std::uint32_t salt : {0u, 1u, 0xffffffffu, 0x5a5a1234u}) {
    for (std::uint32_t slot : {0u, 1u, handle_slot_mask}) {
      for (std::uint32_t gen : {1u, 2u, generation_max}) {
        const HandleFields f = decode_handle(encode_handle({slot, gen}, salt), salt);
        EXPECT_EQ(f.slot, slot);
        EXPECT_EQ(f.generation, gen);
      }
    }
  }
}

struct FakeObject : ObjectHeader {
  FakeObject() : ObjectHeader(ObjectType::notification) {}
};

// Property: a freed slot's old handle never finds the slot's next capability.
TEST(CapSpace, FreedSlotBumpsGenerationSoOldHandleIsBad) {
  CapSpace space(0x1234);
  FakeObject obj;
  CapNode a{}, b{};
  a.object = b.object = &obj;
  a.rights = b.rights = Rights::all();
  const Handle ha = space.install(&a).value();
  space.remove(&a, SlotEnd::deleted);
  const Handle hb = space.install(&b).value();
  EXPECT_EQ(a.slot, b.slot) << "the slot is reused";
  EXPECT_NE(ha, hb);
  EXPECT_EQ(space.lookup_any(ha, HandleValidation::full).error(), Error::bad_handle);
  EXPECT_EQ(space.lookup_any(hb, HandleValidation::full).value(), &b);
  // The test-only broken variant finds b through a's stale handle: the bug the
  // unforgeability property must catch.
  EXPECT_EQ(space.lookup_any(ha, HandleValidation::test_only_without_generation).value(), &b);
}

// Property: a severed handle says so, even after its slot is reused.
TEST(CapSpace, SeveredHandleReportsSeveredUntilSeveredAgain) {
  CapSpace space(7);
  FakeObject obj;
  CapNode a{}, b{};
  a.object = b.object = &obj;
  const Handle ha = space.install(&a).value();
  space.remove(&a, SlotEnd::severed);
  EXPECT_EQ(space.lookup_any(ha, HandleValidation::full).error(), Error::severed);
  const Handle hb = space.install(&b).value();
  EXPECT_EQ(space.lookup_any(ha, HandleValidation::full).error(), Error::severed);
  space.remove(&b, SlotEnd::deleted);
  EXPECT_EQ(space.lookup_any(hb, HandleValidation::full).error(), Error::bad_handle);
}

// Property: lookup errors come in the fixed order bad_handle, severed,
// wrong_type, insufficient_rights, whatever else is also wrong.
TEST(CapSpace, LookupErrorsInFixedOrder) {
  CapSpace space(99);
  FakeObject obj;  // a notification
  CapNode a{};
  a.object = &obj;
  a.rights = Rights::receive();
  const Handle h = space.install(&a).value();
  // Wrong type and missing rights: wrong_type wins.
  EXPECT_EQ(space.lookup(h, ObjectType::endpoint, Rights::send(), HandleValidation::full).error(), Error::wrong_type);
  // Right type, missing rights.
  EXPECT_EQ(space.lookup(h, ObjectType::notification, Rights::send(), HandleValidation::full).error(),
            Error::insufficient_rights);
  EXPECT_TRUE(space.lookup(h, ObjectType::notification, Rights::receive(), HandleValidation::full).ok());
  // A bad handle is bad before anything else is looked at.
  EXPECT_EQ(space.lookup(Handle(), ObjectType::endpoint, Rights::send(), HandleValidation::full).error(),
            Error::bad_handle);
  EXPECT_EQ(space.lookup(Handle::from_raw(h.raw() ^ (1u << handle_slot_bits)), ObjectType::endpoint, Rights::send(),
                         HandleValidation::full)
                .error(),
            Error::bad_handle);
  space.remove(&a, SlotEnd::severed);
  EXPECT_EQ(space.lookup(h, ObjectType::endpoint, Rights::send(), HandleValidation::full).error(), Error::severed);
}

// Property: the null handle never names anything, whatever the salt.
TEST(CapSpace, NullHandleIsNeverIssued) {
  FakeObject obj;
  std::vector<CapNode> nodes(3);
  for (std::uint32_t salt : {0u, 1u << handle_slot_bits, (2u << handle_slot_bits) | 1u}) {
    CapSpace space(salt);
    for (auto& n : nodes) {
      n.object = &obj;
      EXPECT_FALSE(space.install(&n).value().is_null());
    }
    for (auto& n : nodes) space.remove(&n, SlotEnd::deleted);
  }
}

// The null handle is bad_handle even when it decodes to a slot that holds a
// capability: lookups do not test for it, they rely on install() never using
// the generation that would encode to it (here slot 0, generation 1 or 2).
TEST(CapSpace, NullHandleNeverReachesAHeldCapability) {
  FakeObject obj;
  CapNode n{};
  n.object = &obj;
  for (std::uint32_t salt : {1u << handle_slot_bits, 2u << handle_slot_bits}) {
    CapSpace space(salt);
    for (int round = 0; round < 4; ++round) {  // slot 0 through generations 1 to 5
      const Handle h = space.install(&n).value();
      ASSERT_EQ(n.slot, 0u);
      EXPECT_TRUE(space.lookup_any(h, HandleValidation::full).ok());
      for (const HandleValidation v : {HandleValidation::full, HandleValidation::test_only_without_generation}) {
        const Result<CapNode*> null = space.lookup_any(Handle(), v);
        ASSERT_FALSE(null.ok()) << "the null handle reached a capability: salt " << salt << ", round " << round;
        EXPECT_EQ(null.error(), Error::bad_handle);
      }
      space.remove(&n, SlotEnd::severed);
      EXPECT_EQ(space.lookup_any(Handle(), HandleValidation::full).error(), Error::bad_handle);
    }
  }
}

// Property: a slot is retired, never wrapped, when its generations run out.
TEST(CapSpace, SlotRetiresWhenGenerationsRunOut) {
  CapSpace space(0);
  FakeObject obj;
  CapNode n{};
  n.object = &obj;
  std::set<std::uint32_t> seen;
  Handle first = space.install(&n).value();
  space.remove(&n, SlotEnd::deleted);
  std::uint32_t installs = 1;
  for (;;) {
    const Handle h = space.install(&n).value();
    ++installs;
    if (n.slot != 0) break;  // slot 0 was retired; a fresh slot was used
    EXPECT_NE(h, first);
    space.remove(&n, SlotEnd::deleted);
    ASSERT_LT(installs, generation_max + 10);
  }
  EXPECT_GT(installs, generation_max - 5);
  EXPECT_EQ(space.free_slots(), cspace_slots_max - 2) << "one live, one retired";
  EXPECT_EQ(space.lookup_any(first, HandleValidation::full).error(), Error::bad_handle);
}

// Property: the capability space is bounded by cspace_slots_max.
TEST(CapSpace, FullSpaceRefusesInstall) {
  CapSpace space(3);
  FakeObject obj;
  std::vector<CapNode> nodes(cspace_slots_max + 1);
  for (std::uint32_t i = 0; i < cspace_slots_max; ++i) {
    nodes[i].object = &obj;
    ASSERT_TRUE(space.install(&nodes[i]).ok());
  }
  EXPECT_EQ(space.install(&nodes.back()).error(), Error::cspace_full);
}

// Property: the same slot in two processes gives unrelated handle values (salt),
// so a value copied from one process means nothing in another.
TEST(CapSpaceInNode, SaltsDifferAcrossProcesses) {
  Node node(test_config());
  const ProcessId a = node.create_process("a").value();
  const ProcessId b = node.create_process("b").value();
  const Handle ha = node.create_notification(a).value();
  const Handle hb = node.create_notification(b).value();
  EXPECT_NE(ha, hb);
  EXPECT_FALSE(node.inspect(b, ha).has_value());
  EXPECT_FALSE(node.inspect(a, hb).has_value());
}

// Property: every failed lookup is counted and recorded in the node's audit log,
// with who, what and which handle.
TEST(CapSpaceInNode, FailedLookupsAreAudited) {
  Node node(test_config());
  const ProcessId p = node.create_process("forger").value();
  const Handle note = node.create_notification(p).value();
  const Handle recv_only = node.grant(p, note, p, Rights::receive()).value();
  std::vector<Error> seen;
  node.start(p, [&](Sys& sys) {
        seen.push_back(sys.signal(Cap<Notification>(Handle::from_raw(0xdeadbeef))).error());
        seen.push_back(sys.signal(Cap<Notification>(recv_only)).error());
        Message m{}, r{};
        seen.push_back(sys.call(Cap<Endpoint>(note), m, r).error());
        seen.push_back(sys.poll(Cap<Notification>(note)).error());  // would_block: not audited
      })
      .ok();
  node.run();
  EXPECT_EQ(seen, (std::vector{Error::bad_handle, Error::insufficient_rights, Error::wrong_type, Error::would_block}));
  EXPECT_EQ(node.audit().total(), 3u);
  EXPECT_EQ(node.audit().count(Error::bad_handle), 1u);
  EXPECT_EQ(node.audit().count(Error::insufficient_rights), 1u);
  EXPECT_EQ(node.audit().count(Error::wrong_type), 1u);
  const auto records = node.audit().records();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].handle_raw, 0xdeadbeefu);
  EXPECT_EQ(records[0].op, Op::signal);
  EXPECT_EQ(records[0].process, p.index);
  EXPECT_EQ(records[2].op, Op::call);
  expect_consistent(node);
}

// Property: the audit ring keeps the newest audit_records_max records, oldest first.
TEST(AuditLog, RingKeepsNewestInOrder) {
  AuditLog log;
  for (std::uint32_t i = 0; i < audit_records_max + 5; ++i) log.record({i, 1, 0, Op::call, Error::bad_handle, i});
  const auto records = log.records();
  ASSERT_EQ(records.size(), audit_records_max);
  EXPECT_EQ(records.front().handle_raw, 5u);
  EXPECT_EQ(records.back().handle_raw, audit_records_max + 4);
  EXPECT_EQ(log.count(Error::bad_handle), audit_records_max + 5);
}

}  // namespace
}  // namespace persim::kernel
