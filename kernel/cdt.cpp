// Capabilities: creation, the derivation tree, delete, revoke, and the host's
// grant and inspection calls.
#include <algorithm>
#include <cassert>
#include <map>
#include <string>

#include "kernel/node.hpp"

namespace persim::kernel {

namespace {

void link_child(CapNode* parent, CapNode* child) {
  child->parent = parent;
  child->prev_sibling = nullptr;
  child->next_sibling = parent->first_child;
  if (parent->first_child != nullptr) parent->first_child->prev_sibling = child;
  parent->first_child = child;
}

void unlink_from_parent(CapNode* cap) {
  if (cap->prev_sibling != nullptr) {
    cap->prev_sibling->next_sibling = cap->next_sibling;
  } else if (cap->parent != nullptr) {
    cap->parent->first_child = cap->next_sibling;
  }
  if (cap->next_sibling != nullptr) cap->next_sibling->prev_sibling = cap->prev_sibling;
  cap->parent = cap->prev_sibling = cap->next_sibling = nullptr;
}

bool badgeable(ObjectType t) { return t == ObjectType::endpoint || t == ObjectType::notification; }

}  // namespace

Result<CapNode*> Node::make_cap(Process& holder, ObjectHeader* object, Rights rights, std::uint64_t badge,
                                CapNode* parent) {
  CapNode* cap = caps_.create();
  cap->object = object;
  cap->owner = &holder;
  cap->rights = rights;
  cap->badge = badge;
  const Result<Handle> installed = holder.cspace.install(cap);
  if (!installed) {
    caps_.destroy(cap);
    return installed.error();
  }
  ++object->cap_refs;
  if (parent != nullptr) link_child(parent, cap);
  return cap;
}

void Node::destroy_cap(CapNode* cap, SlotEnd end) {
  // Children outlive a deleted parent: they move up to its parent (or become
  // roots). Only revoke removes descendants.
  while (CapNode* child = cap->first_child) {
    unlink_from_parent(child);
    if (cap->parent != nullptr) link_child(cap->parent, child);
  }
  unlink_from_parent(cap);
  // A process waiting through this capability loses the authority to wait.
  Process* owner = cap->owner;
  if (owner->blocked_via == cap && owner->state != ProcessState::dead) make_ready(*owner, Error::severed);
  owner->cspace.remove(cap, end);
  ObjectHeader* object = cap->object;
  caps_.destroy(cap);
  assert(object->cap_refs > 0);
  if (--object->cap_refs == 0) object_unreferenced(object);
}

void Node::revoke_descendants(CapNode* root) {
  // Iterative post-order: descend to a leaf, sever it, step back to its parent.
  // Each capability is visited a bounded number of times; no recursion.
  CapNode* at = root;
  while (root->first_child != nullptr) {
    while (at->first_child != nullptr) at = at->first_child;
    CapNode* parent = at->parent;
    destroy_cap(at, SlotEnd::severed);
    at = parent;
  }
}

void Node::release_all_caps(Process& p) {
  // Slot order keeps it deterministic. A slot may already be empty when reached
  // (revoked as a descendant of an earlier one); nothing here creates capabilities.
  for (std::uint32_t slot = 0; slot < p.cspace.slot_count(); ++slot) {
    CapNode* cap = p.cspace.at(slot);
    if (cap == nullptr) continue;
    revoke_descendants(cap);
    destroy_cap(cap, SlotEnd::deleted);
  }
  assert(p.cspace.live() == 0);
  free_spare_reply(p);
}

void Node::free_spare_reply(Process& p) {
  CapNode* spare = p.spare_reply;
  if (spare == nullptr) return;
  p.spare_reply = nullptr;
  --spare_replies_;
  replies_.destroy(static_cast<Reply*>(spare->object));
  caps_.destroy(spare);
}

void Node::object_unreferenced(ObjectHeader* object) {
  switch (object->type) {
    case ObjectType::endpoint: {
      auto* ep = static_cast<Endpoint*>(object);
      // A waiter's own capability keeps the object alive, and losing it ends
      // the wait (severed): nobody can still be queued here.
      assert(ep->senders.empty() && ep->receivers.empty());
      endpoints_.destroy(ep);
      return;
    }
    case ObjectType::notification: {
      auto* n = static_cast<Notification*>(object);
      assert(n->waiters.empty() && "a waiter's capability keeps the notification alive");
      if (n->bound != nullptr) unbind(*n->bound);
      while (!n->watched.empty()) unwatch(*n->watched.back());
      notifications_.destroy(n);
      return;
    }
    case ObjectType::factory:
      factories_.destroy(static_cast<Factory*>(object));
      return;
    case ObjectType::buffer:
      buffers_.destroy(static_cast<Buffer*>(object));
      return;
    case ObjectType::reply: {
      auto* r = static_cast<Reply*>(object);
      if (Process* caller = r->caller) {
        caller->awaited_reply = nullptr;
        r->caller = nullptr;
        make_ready(*caller, Error::peer_died);
      }
      replies_.destroy(r);
      return;
    }
    case ObjectType::process: {
      auto* p = static_cast<Process*>(object);
      // Nobody can start it any more: an unstarted process dies unborn.
      if (p->state == ProcessState::embryo) {
        kill_suspended(*p);
        return;
      }
      maybe_free(*p);
      return;
    }
  }
}

Result<CapNode*> Node::derive_cap(Process& holder, CapNode* from, Process& to, Rights mask, std::uint64_t badge) {
  (void)holder;
  if (badge != 0 && (from->badge != 0 || !badgeable(from->object->type))) return Error::invalid_argument;
  return make_cap(to, from->object, from->rights & mask, badge != 0 ? badge : from->badge, from);
}

// ---------------------------------------------------------------- host API

Result<Handle> Node::create_endpoint(ProcessId holder) {
  Process* p = find_live(holder);
  if (p == nullptr) return Error::bad_handle;
  Endpoint* ep = endpoints_.create();
  const Result<CapNode*> cap = make_cap(*p, ep, Rights::all(), 0, nullptr);
  if (!cap) {
    endpoints_.destroy(ep);
    return cap.error();
  }
  trace(Op::grant, p, Error{}, p->cspace.handle_of(cap.value()).raw());
  return p->cspace.handle_of(cap.value());
}

Result<Handle> Node::create_notification(ProcessId holder) {
  Process* p = find_live(holder);
  if (p == nullptr) return Error::bad_handle;
  Notification* n = notifications_.create();
  const Result<CapNode*> cap = make_cap(*p, n, Rights::all(), 0, nullptr);
  if (!cap) {
    notifications_.destroy(n);
    return cap.error();
  }
  trace(Op::grant, p, Error{}, p->cspace.handle_of(cap.value()).raw());
  return p->cspace.handle_of(cap.value());
}

Result<Handle> Node::create_process_cap(ProcessId holder, ProcessId target) {
  Process* p = find_live(holder);
  Process* t = find_live(target);
  if (p == nullptr || t == nullptr) return Error::bad_handle;
  const Result<CapNode*> cap = make_cap(*p, t, Rights::all(), 0, nullptr);
  if (!cap) return cap.error();
  trace(Op::grant, p, Error{}, p->cspace.handle_of(cap.value()).raw(), t);
  return p->cspace.handle_of(cap.value());
}

Result<Handle> Node::grant(ProcessId from, Handle h, ProcessId to, Rights mask, std::uint64_t badge) {
  Process* src = find_live(from);
  Process* dst = find_live(to);
  if (src == nullptr || dst == nullptr) return Error::bad_handle;
  const Result<CapNode*> cap = src->cspace.lookup_any(h, HandleValidation::full);
  if (!cap) return cap.error();
  const Result<CapNode*> child = derive_cap(*src, cap.value(), *dst, mask, badge);
  if (!child) return child.error();
  const Handle granted = dst->cspace.handle_of(child.value());
  trace(Op::grant, dst, Error{}, granted.raw(), src);
  return granted;
}

std::optional<CapInfo> Node::inspect(ProcessId pid, Handle h) const {
  const Process* p = find(pid);
  if (p == nullptr) return std::nullopt;
  const Result<CapNode*> cap = p->cspace.lookup_any(h, HandleValidation::full);
  if (!cap) return std::nullopt;
  return CapInfo{cap.value()->object->type, cap.value()->rights, cap.value()->badge};
}

std::vector<Handle> Node::handles(ProcessId pid) const {
  std::vector<Handle> out;
  if (const Process* p = find(pid)) p->cspace.for_each([&](CapNode* c) { out.push_back(p->cspace.handle_of(c)); });
  return out;
}

// ---------------------------------------------------------------- invariants

std::vector<std::string> Node::check_invariants() const {
  std::vector<std::string> problems;
  auto problem = [&](const Process& p, const std::string& what) {
    problems.push_back("process " + std::to_string(p.id.index) + " (" + p.name + "): " + what);
  };
  std::map<const ObjectHeader*, std::uint32_t> refs;  // checking only; never drives the simulation
  std::size_t caps_seen = 0;
  std::size_t spares_seen = 0;
  std::size_t with_stack = 0;
  for (std::size_t i = 1; i < table_.size(); ++i) {
    const Process* p = table_[i];
    if (p == nullptr) continue;
    if (p->id.index != i || p->id.generation != generations_[i]) problem(*p, "id does not match its table entry");
    const bool dead = p->state == ProcessState::dead;
    if (dead && p->cspace.live() != 0) problem(*p, "dead but holds capabilities");
    if (dead && p->queue != nullptr) problem(*p, "dead but still queued");
    if (dead && p->awaited_reply != nullptr) problem(*p, "dead but awaits a reply");
    if (dead && p->reaped && p->context.fiber) problem(*p, "reaped but its fiber survives");
    const bool has_stack = p->state == ProcessState::embryo ? static_cast<bool>(p->context.fiber) : !(dead && p->reaped);
    if (has_stack) ++with_stack;
    if (p->bound != nullptr && p->bound->bound != p) problem(*p, "bound notification does not name it");
    if (p->exit_watch != nullptr &&
        std::find(p->exit_watch->watched.begin(), p->exit_watch->watched.end(), p) == p->exit_watch->watched.end())
      problem(*p, "exit watch does not list it");
    if (dead && (p->bound != nullptr || p->exit_watch != nullptr)) problem(*p, "dead but bound or watched");
    if (p->state == ProcessState::ready && p->queue != &ready_) problem(*p, "ready but not in the ready queue");
    if ((p->state == ProcessState::blocked_call) != (p->queue != nullptr && p->blocked_on != nullptr &&
                                                     p->queue == &p->blocked_on->senders))
      problem(*p, "blocked_call state and endpoint send queue disagree");
    if ((p->state == ProcessState::blocked_receive) != (p->queue != nullptr && p->blocked_on != nullptr &&
                                                        p->queue == &p->blocked_on->receivers))
      problem(*p, "blocked_receive state and endpoint receive queue disagree");
    if (p->state == ProcessState::blocked_reply &&
        (p->awaited_reply == nullptr || p->awaited_reply->caller != p))
      problem(*p, "blocked_reply without a reply object naming it");
    p->cspace.for_each([&](const CapNode* c) {
      ++caps_seen;
      ++refs[c->object];
      if (c->owner != p) problem(*p, "holds a capability owned by another process");
      if (c->parent != nullptr) {
        if (!c->rights.contains(c->rights & c->parent->rights) || !c->parent->rights.contains(c->rights))
          problem(*p, "capability has rights its parent lacks");
        if (c->parent->object != c->object) problem(*p, "capability derived from another object's");
        bool listed = false;
        for (const CapNode* s = c->parent->first_child; s != nullptr; s = s->next_sibling) listed |= s == c;
        if (!listed) problem(*p, "capability missing from its parent's children");
      }
      for (const CapNode* s = c->first_child; s != nullptr; s = s->next_sibling)
        if (s->parent != c) problem(*p, "child does not name its parent");
    });
    if (const CapNode* spare = p->spare_reply) {
      ++spares_seen;
      const auto* reply = static_cast<const Reply*>(spare->object);
      if (spare->owner != p || spare->object->type != ObjectType::reply || reply->caller != nullptr ||
          reply->cap_refs != 0 || spare->parent != nullptr || spare->first_child != nullptr ||
          (spare->slot < p->cspace.slot_count() && p->cspace.at(spare->slot) == spare))
        problem(*p, "spare reply capability is in use");
    }
  }
  if (spares_seen != spare_replies_)
    problems.push_back("spare replies: " + std::to_string(spare_replies_) + " counted, " +
                       std::to_string(spares_seen) + " held");
  if (caps_seen + spares_seen != caps_.live())
    problems.push_back("capability nodes: " + std::to_string(caps_.live() - spares_seen) + " allocated, " +
                       std::to_string(caps_seen) + " held");
  for (const auto& [object, count] : refs)
    if (object->cap_refs != count)
      problems.push_back(std::string("object of type ") + to_string(object->type) + " counts " +
                         std::to_string(object->cap_refs) + " capabilities, " + std::to_string(count) + " exist");
  if (with_stack != stacks_.in_use())
    problems.push_back("stacks: " + std::to_string(stacks_.in_use()) + " in use, " + std::to_string(with_stack) +
                       " processes own one");
  std::size_t objects = 0;
  for (const auto& entry : refs) objects += entry.first->type != ObjectType::process ? 1 : 0;
  const std::size_t allocated =
      endpoints_.live() + notifications_.live() + replies_.live() + factories_.live() + buffers_.live() - spares_seen;
  if (objects != allocated)
    problems.push_back("objects: " + std::to_string(allocated) + " allocated, " + std::to_string(objects) +
                       " reachable from a capability");
  return problems;
}

}  // namespace persim::kernel
