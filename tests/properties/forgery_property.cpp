// Invariant 1, unforgeability: a handle value a process makes up never reaches
// an object. Only a value equal to a live handle the kernel issued to this very
// process designates anything, and then exactly what that handle designates;
// every other value (random, a near miss of a real handle, a stale handle whose
// slot has been reused, another process's handle) is refused as bad_handle and
// audited. The same holds for a made-up handle attached to a message.
//
// A state machine: an attacker process is granted and deletes capabilities to
// several servers (each server answers with its own index) while it calls with
// held, stale and made-up handle values. The model knows which abstract
// capabilities are live and what they designate; the handle values themselves
// are known only to the system under test.
//
// BrokenVariantIsCaught shows, with the test-only switch that turns the
// generation check off, that this property fails when handles are not
// re-validated: a stale handle then reaches whatever now sits in its slot.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <optional>
#include <ostream>
#include <vector>

#include "support/driver.hpp"
#include "support/harness.hpp"

namespace persim::kernel {
namespace {

using persim::testing::Driver;
using persim::testing::test_config;

constexpr int servers_count = 3;

}  // namespace

// How RapidCheck prints an Error in a failed assertion.
inline void showValue(Error e, std::ostream& os) { os << to_string(e); }

namespace {

struct HeldCap {
  int server;  // which server's endpoint it designates
  Rights rights;
  bool live;
};

struct Model {
  std::vector<HeldCap> caps;  // abstract capabilities, in the order granted
};

struct Sut {
  explicit Sut(HandleValidation validation) : driver(config(validation)) {
    for (int k = 0; k < servers_count; ++k) start_server(k);
    attacker = driver.create_actor("attacker");
    driver.start_actors();
  }

  static NodeConfig config(HandleValidation validation) {
    NodeConfig c = test_config();
    c.handle_validation = validation;
    return c;
  }

  // A server answers every call with its own index as the label and drops any
  // capability it was sent.
  void start_server(int k) {
    Node& node = driver.node();
    const ProcessId pid = node.create_process("server-" + std::to_string(k)).value();
    const Handle ep = node.create_endpoint(pid).value();
    server_endpoints.push_back(ep);
    server_pids.push_back(pid);
    const Status started = node.start(pid, [ep, k](Sys& sys) {
      Message request{}, response{};
      Result<Received> r = sys.receive(Cap<Endpoint>(ep), request);
      while (r) {
        for (std::uint32_t i = 0; i < request.cap_count; ++i) (void)sys.delete_cap(AnyCap(request.caps[i].handle));
        response = {};
        response.label = static_cast<std::uint64_t>(k);
        r = sys.reply_receive(r->reply, response, Cap<Endpoint>(ep), request);
      }
    });
    EXPECT_TRUE(started.ok());
  }

  Driver driver;
  ProcessId attacker;
  std::vector<ProcessId> server_pids;
  std::vector<Handle> server_endpoints;  // valid in the servers' spaces, not the attacker's
  std::vector<Handle> handles;           // the attacker's handle of each abstract capability
};

// What the model says a call with `raw` must do: reach `server`, or fail with `error`.
struct Expected {
  std::optional<int> server;
  Error error{};
};

Expected expect_for(const Model& m, const Sut& sut, std::uint32_t raw, Rights needed) {
  for (std::size_t i = 0; i < m.caps.size(); ++i) {
    if (!m.caps[i].live || sut.handles[i].raw() != raw) continue;
    if (!m.caps[i].rights.contains(needed)) return {std::nullopt, Error::insufficient_rights};
    return {m.caps[i].server, Error{}};
  }
  return {std::nullopt, Error::bad_handle};
}

// Calls from the attacker with `ep` (carrying `attach` if given); checks the
// outcome against `want` and that exactly failed lookups were audited.
void call_and_check(Sut& sut, std::uint32_t ep, std::optional<std::uint32_t> attach, const Expected& want) {
  const std::uint64_t audited_before = sut.driver.node().audit().total();
  Status status = Error::killed;
  Message response{};
  const bool ran = sut.driver.run(sut.attacker, [&](Sys& sys) {
    Message request{};
    if (attach) request.attach(AnyCap(Handle::from_raw(*attach)));
    status = sys.call(Cap<Endpoint>(Handle::from_raw(ep)), request, response);
  });
  RC_ASSERT(ran);
  if (want.server) {
    RC_ASSERT(status.ok());
    RC_ASSERT(response.label == static_cast<std::uint64_t>(*want.server));
    RC_ASSERT(sut.driver.node().audit().total() == audited_before);
  } else {
    RC_ASSERT(!status.ok());
    RC_ASSERT(status.error() == want.error);
    RC_ASSERT(sut.driver.node().audit().total() == audited_before + 1);
  }
}

using Command = rc::state::Command<Model, Sut>;

int pick_cap(const Model& m, bool live_only) {
  std::vector<int> choices;
  for (std::size_t i = 0; i < m.caps.size(); ++i)
    if (m.caps[i].live || !live_only) choices.push_back(static_cast<int>(i));
  RC_PRE(!choices.empty());
  return *rc::gen::elementOf(choices);
}

Rights any_rights() { return Rights::from_bits(*rc::gen::inRange<Rights::Bits>(0, 1 << Rights::count)); }

// The trusted host grants the attacker a capability to a server's endpoint.
struct Grant : Command {
  int server = *rc::gen::inRange(0, servers_count);
  Rights mask = any_rights();

  void apply(Model& m) const override { m.caps.push_back({server, mask, true}); }
  void run(const Model&, Sut& sut) const override {
    Node& node = sut.driver.node();
    const Result<Handle> h =
        node.grant(sut.server_pids[static_cast<std::size_t>(server)], sut.server_endpoints[static_cast<std::size_t>(server)],
                   sut.attacker, mask);
    RC_ASSERT(h.ok());
    sut.handles.push_back(h.value());
  }
  void show(std::ostream& os) const override { os << "Grant(server " << server << ", " << mask.to_string() << ")"; }
};

// The attacker deletes one of its capabilities; its handle becomes stale.
struct Delete : Command {
  explicit Delete(const Model& m) : cap(pick_cap(m, true)) {}
  int cap;

  void checkPreconditions(const Model& m) const override {
    // Two checks: RapidCheck's captured expressions do not short-circuit.
    RC_PRE(static_cast<std::size_t>(cap) < m.caps.size());
    RC_PRE(m.caps[static_cast<std::size_t>(cap)].live);
  }
  void apply(Model& m) const override { m.caps[static_cast<std::size_t>(cap)].live = false; }
  void run(const Model&, Sut& sut) const override {
    Status status = Error::killed;
    const Handle h = sut.handles[static_cast<std::size_t>(cap)];
    RC_ASSERT(sut.driver.run(sut.attacker, [&](Sys& sys) { status = sys.delete_cap(AnyCap(h)); }));
    RC_ASSERT(status.ok());
  }
  void show(std::ostream& os) const override { os << "Delete(cap " << cap << ")"; }
};

// Calls with a handle the attacker was given, live or stale.
struct CallKnown : Command {
  explicit CallKnown(const Model& m) : cap(pick_cap(m, false)) {}
  int cap;

  void checkPreconditions(const Model& m) const override { RC_PRE(static_cast<std::size_t>(cap) < m.caps.size()); }
  void run(const Model& m, Sut& sut) const override {
    const std::uint32_t raw = sut.handles[static_cast<std::size_t>(cap)].raw();
    call_and_check(sut, raw, std::nullopt, expect_for(m, sut, raw, Rights::send()));
  }
  void show(std::ostream& os) const override { os << "CallKnown(cap " << cap << ")"; }
};

// Where a made-up value comes from.
enum class Forgery : std::uint8_t { random, near_miss, server_handle };

std::uint32_t forge(const Sut& sut, Forgery how, std::uint32_t random, int cap, int bit) {
  switch (how) {
    case Forgery::random: return random;
    case Forgery::near_miss: return sut.handles[static_cast<std::size_t>(cap)].raw() ^ (1u << bit);
    case Forgery::server_handle: return sut.server_endpoints[static_cast<std::size_t>(cap) % servers_count].raw();
  }
  return random;
}

struct ForgedValue {
  explicit ForgedValue(const Model& m) {
    how = *rc::gen::element(Forgery::random, Forgery::near_miss, Forgery::server_handle);
    if (how == Forgery::near_miss) cap = pick_cap(m, false);
    if (how == Forgery::server_handle) cap = *rc::gen::inRange(0, servers_count);
  }
  Forgery how;
  std::uint32_t random = *rc::gen::arbitrary<std::uint32_t>();
  int cap = 0;
  int bit = *rc::gen::inRange(0, 32);

  bool valid(const Model& m) const { return how != Forgery::near_miss || static_cast<std::size_t>(cap) < m.caps.size(); }
  std::uint32_t value(const Sut& sut) const { return forge(sut, how, random, cap, bit); }
  void show(std::ostream& os) const {
    if (how == Forgery::random) os << "random 0x" << std::hex << random << std::dec;
    if (how == Forgery::near_miss) os << "cap " << cap << " with bit " << bit << " flipped";
    if (how == Forgery::server_handle) os << "server " << cap << "'s own handle";
  }
};

// Calls with a made-up handle value.
struct CallForged : Command {
  explicit CallForged(const Model& m) : forged(m) {}
  ForgedValue forged;

  void checkPreconditions(const Model& m) const override { RC_PRE(forged.valid(m)); }
  void run(const Model& m, Sut& sut) const override {
    const std::uint32_t raw = forged.value(sut);
    call_and_check(sut, raw, std::nullopt, expect_for(m, sut, raw, Rights::send()));
  }
  void show(std::ostream& os) const override {
    os << "CallForged(";
    forged.show(os);
    os << ")";
  }
};

// Calls through a live capability that may send, attaching a made-up handle:
// the message goes only if the attached value is a live handle with grant.
struct AttachForged : Command {
  explicit AttachForged(const Model& m) : forged(m) {
    std::vector<int> senders;
    for (std::size_t i = 0; i < m.caps.size(); ++i)
      if (m.caps[i].live && m.caps[i].rights.contains(Rights::send())) senders.push_back(static_cast<int>(i));
    RC_PRE(!senders.empty());
    via = *rc::gen::elementOf(senders);
  }
  ForgedValue forged;
  int via = 0;

  void checkPreconditions(const Model& m) const override {
    RC_PRE(forged.valid(m));
    RC_PRE(static_cast<std::size_t>(via) < m.caps.size());
    const HeldCap& c = m.caps[static_cast<std::size_t>(via)];
    RC_PRE(c.live);
    RC_PRE(c.rights.contains(Rights::send()));
  }
  void run(const Model& m, Sut& sut) const override {
    const std::uint32_t raw = forged.value(sut);
    const Expected attached = expect_for(m, sut, raw, Rights::grant());
    Expected want{m.caps[static_cast<std::size_t>(via)].server, Error{}};
    if (!attached.server) want = attached;
    call_and_check(sut, sut.handles[static_cast<std::size_t>(via)].raw(), raw, want);
  }
  void show(std::ostream& os) const override {
    os << "AttachForged(via cap " << via << ", ";
    forged.show(os);
    os << ")";
  }
};

void check_unforgeable(HandleValidation validation) {
  Model initial;
  Sut sut(validation);
  rc::state::check(initial, sut,
                   rc::state::gen::execOneOfWithArgs<Grant, Grant, Delete, CallKnown, CallForged, AttachForged>());
  RC_ASSERT(sut.driver.node().check_invariants().empty());
}

RC_GTEST_PROP(Unforgeability, MadeUpHandlesNeverReachAnObject, ()) { check_unforgeable(HandleValidation::full); }

// The property must fail on a kernel that skips the generation check. Run it
// against that variant (test-only switch) and expect RapidCheck to find a
// counterexample: a stale handle reaching the capability that reused its slot.
TEST(Unforgeability, BrokenVariantIsCaught) {
  // A counterexample turns up within about 30 of RapidCheck's 100 cases; a few
  // attempts keep the chance of a spurious failure negligible.
  constexpr int attempts_max = 4;
  bool held = true;
  for (int attempt = 0; attempt < attempts_max && held; ++attempt)
    held = rc::check("unforgeability without the generation check",
                     [] { check_unforgeable(HandleValidation::test_only_without_generation); });
  EXPECT_FALSE(held) << "the property did not notice handles going unchecked";
}

// The same counterexample, spelled out: grant, delete, grant again (the slot is
// reused, LIFO), then call with the first, stale handle.
TEST(Unforgeability, StaleHandleAfterSlotReuse) {
  for (HandleValidation v : {HandleValidation::full, HandleValidation::test_only_without_generation}) {
    Sut sut(v);
    Node& node = sut.driver.node();
    const Handle first = node.grant(sut.server_pids[0], sut.server_endpoints[0], sut.attacker, Rights::send()).value();
    Status deleted = Error::killed, stale = Error::killed;
    ASSERT_TRUE(sut.driver.run(sut.attacker, [&](Sys& sys) { deleted = sys.delete_cap(AnyCap(first)); }));
    ASSERT_TRUE(deleted.ok());
    const Handle second = node.grant(sut.server_pids[1], sut.server_endpoints[1], sut.attacker, Rights::send()).value();
    ASSERT_NE(first, second) << "same slot, new generation: a different value";
    Message response{};
    ASSERT_TRUE(sut.driver.run(sut.attacker, [&](Sys& sys) {
      stale = sys.call(Cap<Endpoint>(first), Message{}, response);
    }));
    if (v == HandleValidation::full) {
      EXPECT_EQ(stale.error(), Error::bad_handle);
    } else {
      ASSERT_TRUE(stale.ok()) << "without the generation check the stale handle gets through";
      EXPECT_EQ(response.label, 1u) << "and reaches the server granted second";
    }
  }
}

}  // namespace
}  // namespace persim::kernel
