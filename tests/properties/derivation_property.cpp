// Invariants 2 and 3: rights only narrow along any derivation chain; revoke
// removes every descendant, in every process, and nothing else.
//
// A state machine over three actor processes that create endpoints and
// notifications, derive (with masks and badges), transfer capabilities to each
// other in IPC messages, delete, revoke, and are killed. The model is the
// capability derivation tree itself: each abstract capability's owner, parent,
// rights and badge, with delete re-parenting children and revoke and death
// removing subtrees. After every step the node must hold exactly the model's
// live capabilities (each with the model's rights and badge) and nothing else,
// every capability's rights must be within those of each of its ancestors, and
// the kernel's own consistency check must pass.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <algorithm>
#include <array>
#include <ostream>
#include <vector>

#include "support/driver.hpp"
#include "support/harness.hpp"

namespace persim::kernel {

// How RapidCheck prints an Error in a failed assertion.
inline void showValue(Error e, std::ostream& os) { os << to_string(e); }
inline void showValue(const CapInfo& c, std::ostream& os) {
  os << to_string(c.type) << " " << c.rights.to_string() << " badge " << c.badge;
}

namespace {

using persim::testing::Driver;
using persim::testing::test_config;

constexpr int actors_count = 3;
constexpr int no_parent = -1;

struct ModelCap {
  int owner;   // actor index
  int parent;  // abstract id, or no_parent
  ObjectType type;
  Rights rights;
  std::uint64_t badge;
  bool live;
};

struct Model {
  std::vector<ModelCap> caps;  // abstract capabilities, in creation order
  std::array<bool, actors_count> alive{true, true, true};

  const ModelCap& at(int id) const { return caps[static_cast<std::size_t>(id)]; }
  ModelCap& at(int id) { return caps[static_cast<std::size_t>(id)]; }
  bool is_descendant(int id, int ancestor) const {
    for (int p = at(id).parent; p != no_parent; p = at(p).parent)
      if (p == ancestor) return true;
    return false;
  }
  // Removes every descendant of `id` (they are severed), keeping `id`.
  void revoke(int id) {
    for (std::size_t i = 0; i < caps.size(); ++i)
      if (caps[i].live && is_descendant(static_cast<int>(i), id)) caps[i].live = false;
  }
  // Removes `id`; its children move up to its parent.
  void remove(int id) {
    for (ModelCap& c : caps)
      if (c.live && c.parent == id) c.parent = at(id).parent;
    at(id).live = false;
  }
};

// Each actor has an inbox endpoint and a send-only capability to every other
// actor's inbox: the way capabilities travel between them. These are not in the
// model; the check accounts for them separately.
struct Sut {
  Sut() : driver(test_config()) {
    Node& node = driver.node();
    for (int a = 0; a < actors_count; ++a) actors[a] = driver.create_actor("actor-" + std::to_string(a));
    for (int a = 0; a < actors_count; ++a) inbox[a] = node.create_endpoint(actors[a]).value();
    for (int from = 0; from < actors_count; ++from)
      for (int to = 0; to < actors_count; ++to)
        if (from != to) to_inbox[from][to] = node.grant(actors[to], inbox[to], actors[from], Rights::send()).value();
    driver.start_actors();
  }

  // The infrastructure capabilities actor `a` holds while the actors in `alive` live.
  std::vector<Handle> infrastructure(int a, const std::array<bool, actors_count>& alive) const {
    std::vector<Handle> out{inbox[a]};
    for (int to = 0; to < actors_count; ++to)
      if (to != a && alive[static_cast<std::size_t>(to)]) out.push_back(to_inbox[a][to]);
    return out;
  }

  Driver driver;
  std::array<ProcessId, actors_count> actors;
  std::array<Handle, actors_count> inbox;
  std::array<std::array<Handle, actors_count>, actors_count> to_inbox;
  std::vector<Handle> handles;  // each abstract capability's handle in its owner's space
};

// After every step: the node holds exactly what the model says.
void check_matches(const Model& m, Sut& sut) {
  Node& node = sut.driver.node();
  std::array<std::vector<std::uint32_t>, actors_count> expected;
  for (std::size_t i = 0; i < m.caps.size(); ++i) {
    const ModelCap& c = m.caps[i];
    const ProcessId owner = sut.actors[static_cast<std::size_t>(c.owner)];
    const std::optional<CapInfo> info = node.inspect(owner, sut.handles[i]);
    RC_ASSERT(info.has_value() == c.live);
    if (!c.live) continue;
    RC_ASSERT(*info == (CapInfo{c.type, c.rights, c.badge}));
    expected[static_cast<std::size_t>(c.owner)].push_back(sut.handles[i].raw());
    // Invariant 2 stated directly: within the rights of every live ancestor.
    for (int p = c.parent; p != no_parent; p = m.at(p).parent) {
      const std::optional<CapInfo> ancestor = node.inspect(sut.actors[static_cast<std::size_t>(m.at(p).owner)],
                                                           sut.handles[static_cast<std::size_t>(p)]);
      RC_ASSERT(ancestor.has_value());
      RC_ASSERT(ancestor->rights.contains(info->rights));
    }
  }
  for (int a = 0; a < actors_count; ++a) {
    std::vector<std::uint32_t>& want = expected[static_cast<std::size_t>(a)];
    std::vector<std::uint32_t> held;
    for (Handle h : node.handles(sut.actors[static_cast<std::size_t>(a)])) held.push_back(h.raw());
    if (m.alive[static_cast<std::size_t>(a)]) {
      for (Handle h : sut.infrastructure(a, m.alive)) want.push_back(h.raw());
    }
    std::sort(want.begin(), want.end());
    std::sort(held.begin(), held.end());
    RC_ASSERT(held == want);
  }
  RC_ASSERT(node.check_invariants().empty());
}

using Command = rc::state::Command<Model, Sut>;

int pick_live_cap(const Model& m) {
  std::vector<int> live;
  for (std::size_t i = 0; i < m.caps.size(); ++i)
    if (m.caps[i].live) live.push_back(static_cast<int>(i));
  RC_PRE(!live.empty());
  return *rc::gen::elementOf(live);
}

int pick_alive_actor(const Model& m) {
  std::vector<int> alive;
  for (int a = 0; a < actors_count; ++a)
    if (m.alive[static_cast<std::size_t>(a)]) alive.push_back(a);
  RC_PRE(!alive.empty());
  return *rc::gen::elementOf(alive);
}

// Half the masks keep everything, so long chains still hold derive, grant and revoke.
Rights any_mask() {
  return *rc::gen::weightedOneOf<Rights>(
      {{1, rc::gen::just(Rights::all())},
       {1, rc::gen::map(rc::gen::inRange<Rights::Bits>(0, 1 << Rights::count), &Rights::from_bits)}});
}

// Preconditions shared by commands acting on an existing capability.
void require_live(const Model& m, int cap) {
  RC_PRE(static_cast<std::size_t>(cap) < m.caps.size());
  RC_PRE(m.at(cap).live);
}

// Runs `op` on the actor that owns abstract capability `cap`.
void run_as_owner(const Model& m, Sut& sut, int cap, Driver::Operation op) {
  const ProcessId owner = sut.actors[static_cast<std::size_t>(m.at(cap).owner)];
  RC_ASSERT(sut.driver.run(owner, std::move(op)));
}

struct Create : Command {
  explicit Create(const Model& m) : actor(pick_alive_actor(m)) {}
  int actor;
  ObjectType type = *rc::gen::element(ObjectType::endpoint, ObjectType::notification);

  void checkPreconditions(const Model& m) const override { RC_PRE(m.alive[static_cast<std::size_t>(actor)]); }
  void apply(Model& m) const override { m.caps.push_back({actor, no_parent, type, Rights::all(), 0, true}); }
  void run(const Model& m, Sut& sut) const override {
    Handle created;
    RC_ASSERT(sut.driver.run(sut.actors[static_cast<std::size_t>(actor)], [&](Sys& sys) {
      if (type == ObjectType::endpoint) {
        if (auto c = sys.endpoint_create()) created = c->handle();
      } else if (auto c = sys.notification_create()) {
        created = c->handle();
      }
    }));
    RC_ASSERT(!created.is_null());
    sut.handles.push_back(created);
    check_matches(nextState(m), sut);
  }
  void show(std::ostream& os) const override { os << "Create(actor " << actor << ", " << to_string(type) << ")"; }
};

// What a derive must do, from the source capability alone.
Error derive_outcome(const ModelCap& from, std::uint64_t badge) {
  if (!from.rights.contains(Rights::derive())) return Error::insufficient_rights;
  if (badge != 0 && from.badge != 0) return Error::invalid_argument;
  return Error{};
}

struct Derive : Command {
  explicit Derive(const Model& m) : cap(pick_live_cap(m)) {}
  int cap;
  Rights mask = any_mask();
  std::uint64_t badge = *rc::gen::weightedOneOf<std::uint64_t>(
      {{3, rc::gen::just<std::uint64_t>(0)}, {1, rc::gen::inRange<std::uint64_t>(1, 1000)}});

  void checkPreconditions(const Model& m) const override { require_live(m, cap); }
  void apply(Model& m) const override {
    const ModelCap from = m.at(cap);
    if (derive_outcome(from, badge) != Error{}) return;
    m.caps.push_back({from.owner, cap, from.type, from.rights & mask, badge != 0 ? badge : from.badge, true});
  }
  void run(const Model& m, Sut& sut) const override {
    const Handle from = sut.handles[static_cast<std::size_t>(cap)];
    const ModelCap& model_from = m.at(cap);
    Error error = Error::killed;
    Handle child;
    run_as_owner(m, sut, cap, [&](Sys& sys) {
      // Derivation is typed; either type goes through the same kernel path.
      if (model_from.type == ObjectType::endpoint) {
        const Result<Cap<Endpoint>> r = sys.derive(Cap<Endpoint>(from), mask, badge);
        error = r ? Error{} : r.error();
        if (r) child = r->handle();
      } else {
        const Result<Cap<Notification>> r = sys.derive(Cap<Notification>(from), mask, badge);
        error = r ? Error{} : r.error();
        if (r) child = r->handle();
      }
    });
    RC_ASSERT(error == derive_outcome(model_from, badge));
    if (error == Error{}) sut.handles.push_back(child);
    check_matches(nextState(m), sut);
  }
  void show(std::ostream& os) const override {
    os << "Derive(cap " << cap << ", mask " << mask.to_string() << ", badge " << badge << ")";
  }
};

// The owner sends the capability to another actor in a message, narrowed by `mask`.
struct Transfer : Command {
  explicit Transfer(const Model& m) : cap(pick_live_cap(m)) {
    to = *rc::gen::inRange(0, actors_count);
    RC_PRE(to != m.at(cap).owner);
  }
  int cap;
  int to = 0;
  Rights mask = any_mask();

  void checkPreconditions(const Model& m) const override {
    require_live(m, cap);
    RC_PRE(to != m.at(cap).owner);
    RC_PRE(m.alive[static_cast<std::size_t>(to)]);
  }
  bool allowed(const Model& m) const { return m.at(cap).rights.contains(Rights::grant()); }
  void apply(Model& m) const override {
    if (!allowed(m)) return;
    const ModelCap from = m.at(cap);
    m.caps.push_back({to, cap, from.type, from.rights & mask, from.badge, true});
  }
  void run(const Model& m, Sut& sut) const override {
    const ModelCap& from = m.at(cap);
    Handle received;
    Error receive_error = Error::killed;
    if (allowed(m)) {
      // The receiver waits first, so the call is delivered at once.
      const Handle inbox = sut.inbox[static_cast<std::size_t>(to)];
      RC_ASSERT(sut.driver.run(sut.actors[static_cast<std::size_t>(to)], [&received, &receive_error, inbox](Sys& sys) {
        Message request{};
        const Result<Received> r = sys.receive(Cap<Endpoint>(inbox), request);
        receive_error = r ? Error{} : r.error();
        if (!r) return;
        if (request.cap_count == 1) received = request.caps[0].handle;
        (void)sys.reply(r->reply, Message{});
      }));
    }
    const Handle send_via = sut.to_inbox[static_cast<std::size_t>(from.owner)][static_cast<std::size_t>(to)];
    const Handle h = sut.handles[static_cast<std::size_t>(cap)];
    Status sent = Error::killed;
    run_as_owner(m, sut, cap, [&](Sys& sys) {
      Message request{}, response{};
      request.attach(AnyCap(h), mask);
      sent = sys.call(Cap<Endpoint>(send_via), request, response);
    });
    if (!allowed(m)) {
      RC_ASSERT(!sent.ok());
      RC_ASSERT(sent.error() == Error::insufficient_rights);
    } else {
      RC_ASSERT(sent.ok());
      RC_ASSERT(receive_error == Error{});
      RC_ASSERT(!received.is_null());
      sut.handles.push_back(received);
    }
    check_matches(nextState(m), sut);
  }
  void show(std::ostream& os) const override {
    os << "Transfer(cap " << cap << " to actor " << to << ", mask " << mask.to_string() << ")";
  }
};

struct Delete : Command {
  explicit Delete(const Model& m) : cap(pick_live_cap(m)) {}
  int cap;

  void checkPreconditions(const Model& m) const override { require_live(m, cap); }
  void apply(Model& m) const override { m.remove(cap); }
  void run(const Model& m, Sut& sut) const override {
    Status status = Error::killed;
    const Handle h = sut.handles[static_cast<std::size_t>(cap)];
    run_as_owner(m, sut, cap, [&](Sys& sys) { status = sys.delete_cap(AnyCap(h)); });
    RC_ASSERT(status.ok());
    check_matches(nextState(m), sut);
  }
  void show(std::ostream& os) const override { os << "Delete(cap " << cap << ")"; }
};

struct Revoke : Command {
  explicit Revoke(const Model& m) : cap(pick_live_cap(m)) {}
  int cap;

  void checkPreconditions(const Model& m) const override { require_live(m, cap); }
  bool allowed(const Model& m) const { return m.at(cap).rights.contains(Rights::revoke()); }
  void apply(Model& m) const override {
    if (allowed(m)) m.revoke(cap);
  }
  void run(const Model& m, Sut& sut) const override {
    Status status = Error::killed;
    const Handle h = sut.handles[static_cast<std::size_t>(cap)];
    run_as_owner(m, sut, cap, [&](Sys& sys) { status = sys.revoke(AnyCap(h)); });
    if (allowed(m)) {
      RC_ASSERT(status.ok());
    } else {
      RC_ASSERT(!status.ok());
      RC_ASSERT(status.error() == Error::insufficient_rights);
    }
    check_matches(nextState(m), sut);
  }
  void show(std::ostream& os) const override { os << "Revoke(cap " << cap << ")"; }
};

// The host kills an actor: its capabilities go, and every descendant of each.
struct Kill : Command {
  explicit Kill(const Model& m) : actor(pick_alive_actor(m)) {}
  int actor;

  void checkPreconditions(const Model& m) const override {
    RC_PRE(m.alive[static_cast<std::size_t>(actor)]);
    RC_PRE(std::count(m.alive.begin(), m.alive.end(), true) > 1);
  }
  void apply(Model& m) const override {
    m.alive[static_cast<std::size_t>(actor)] = false;
    for (std::size_t i = 0; i < m.caps.size(); ++i) {
      if (!m.caps[i].live || m.caps[i].owner != actor) continue;
      m.revoke(static_cast<int>(i));
      m.remove(static_cast<int>(i));
    }
  }
  void run(const Model& m, Sut& sut) const override {
    RC_ASSERT(sut.driver.node().kill(sut.actors[static_cast<std::size_t>(actor)]).ok());
    check_matches(nextState(m), sut);
  }
  void show(std::ostream& os) const override { os << "Kill(actor " << actor << ")"; }
};

RC_GTEST_PROP(Derivation, RightsNarrowAndRevokeRemovesExactlyTheDescendants, ()) {
  Model initial;
  Sut sut;
  rc::state::check(initial, sut,
                   rc::state::gen::execOneOfWithArgs<Create, Derive, Derive, Transfer, Transfer, Delete, Revoke,
                                                     Kill>());
}

}  // namespace
}  // namespace persim::kernel
