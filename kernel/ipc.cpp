// Synchronous IPC: call, receive, reply, reply_receive. Each call validates all
// of its arguments before anything changes, then acts.
#include <cassert>
#include <cstring>

#include "kernel/node.hpp"
#include "kernel/sys.hpp"

namespace persim::kernel {

namespace {

// Payloads over this many bytes are copied by libc's memcpy.
constexpr std::size_t small_payload_bytes_max = 16;

// Copies exactly `n` bytes: no byte past a message's `length` ever crosses from
// one process to another. Out of line so the compiler, which knows n <=
// msg_bytes_max at the call sites, calls libc's memcpy instead of expanding it
// to `rep movsq` (measured: ~30 cycles to start, most of a round trip).
[[gnu::noinline]] void copy_large(std::byte* to, const std::byte* from, std::size_t n) { std::memcpy(to, from, n); }

// Exactly `n` bytes, n <= small_payload_bytes_max, by at most two overlapping
// moves of one word size (the usual request or reply is a few words).
template <class Word>
void copy_two_words(std::byte* to, const std::byte* from, std::size_t n) {
  Word head, tail;
  std::memcpy(&head, from, sizeof head);
  std::memcpy(&tail, from + n - sizeof tail, sizeof tail);
  std::memcpy(to, &head, sizeof head);
  std::memcpy(to + n - sizeof tail, &tail, sizeof tail);
}

[[gnu::always_inline]] inline void copy_bytes(std::byte* to, const std::byte* from, std::size_t n) {
  assert(n <= msg_bytes_max);
  static_assert(small_payload_bytes_max == 2 * sizeof(std::uint64_t));
  if (n > small_payload_bytes_max) {
    copy_large(to, from, n);
  } else if (n >= sizeof(std::uint64_t)) {
    copy_two_words<std::uint64_t>(to, from, n);
  } else if (n >= sizeof(std::uint32_t)) {
    copy_two_words<std::uint32_t>(to, from, n);
  } else if (n != 0) {  // 1 to 3 bytes: first, middle, last
    to[0] = from[0];
    to[n / 2] = from[n / 2];
    to[n - 1] = from[n - 1];
  }
}

[[gnu::always_inline]] inline void copy_payload(Message& to, const Message& from) {
  to.label = from.label;
  to.length = from.length;
  copy_bytes(to.data.data(), from.data.data(), from.length);
  to.cap_count = 0;
}

}  // namespace

[[gnu::always_inline]] inline Error Node::validate_message(Process& sender, const Message& m, SendPlan& plan, Handle* failed) {
  if (m.cap_count == 0 && m.length <= msg_bytes_max) [[likely]] return Error{};  // the usual message: both checks at once
  if (m.length > msg_bytes_max) return Error::message_too_large;
  if (m.cap_count > msg_caps_max) return Error::too_many_caps;
  return lookup_transfers(sender, m, plan, failed);
}

Error Node::lookup_transfers(Process& sender, const Message& m, SendPlan& plan, Handle* failed) {
  for (std::uint32_t i = 0; i < m.cap_count; ++i) {
    const Result<CapNode*> cap = sender.cspace.lookup_any(m.caps[i].handle, config_.handle_validation);
    Error e = cap ? Error{} : cap.error();
    if (cap && !cap.value()->rights.contains(Rights::grant())) e = Error::insufficient_rights;
    if (e != Error{}) {
      *failed = m.caps[i].handle;
      return e;
    }
    plan.transfers[i] = cap.value();
  }
  return Error{};
}

void Node::transfer_caps(const SendPlan& plan, const Message& from, Process& to, Message& into) {
  for (std::uint32_t i = 0; i < from.cap_count; ++i) {
    CapNode* src = plan.transfers[i];
    const Result<CapNode*> child = make_cap(to, src->object, src->rights & from.caps[i].rights, src->badge, src);
    assert(child.ok() && "room was checked before");
    into.caps[i] = {to.cspace.handle_of(child.value()), child.value()->rights};
  }
  into.cap_count = from.cap_count;
}

// What make_cap does, for the one kind of capability every call makes: no
// parent to link, no badge, and room already checked. Reuses the receiver's
// spare (see Process::spare_reply) when it has one.
[[gnu::always_inline]] inline Cap<Reply> Node::mint_reply(Process& receiver, Process& caller) {
  CapNode* cap = receiver.spare_reply;
  if (cap != nullptr) [[likely]] {
    receiver.spare_reply = nullptr;
    --spare_replies_;
  } else {
    cap = caps_.create();
    cap->object = replies_.create();
    cap->owner = &receiver;
    cap->rights = Rights::send();
  }
  auto* reply = static_cast<Reply*>(cap->object);
  assert(reply->caller == nullptr && reply->cap_refs == 0 && cap->parent == nullptr && cap->first_child == nullptr);
  reply->caller = &caller;
  const Result<Handle> installed = receiver.cspace.install(cap);
  assert(installed.ok() && "room was checked before");
  ++reply->cap_refs;
  caller.awaited_reply = reply;
  return Cap<Reply>(installed.value());
}

// What destroy_cap does, without its general steps when the capability is a
// leaf with no parent, as every minted reply capability is unless the host
// derived from it. The slot is freed either way (its generation moves on, so
// the handle is stale); the capability node and its reply object become the
// holder's spare if it has none.
[[gnu::always_inline]] inline void Node::consume_reply(CapNode* cap) {
  assert(cap->object->type == ObjectType::reply);
  if (cap->parent != nullptr || cap->first_child != nullptr) [[unlikely]] {
    destroy_cap(cap, SlotEnd::deleted);
    return;
  }
  auto* reply = static_cast<Reply*>(cap->object);
  assert(reply->caller == nullptr && reply->cap_refs > 0);
  Process& holder = *cap->owner;
  holder.cspace.remove(cap, SlotEnd::deleted);
  if (--reply->cap_refs == 0 && holder.spare_reply == nullptr) [[likely]] {
    holder.spare_reply = cap;
    ++spare_replies_;
    return;
  }
  caps_.destroy(cap);
  if (reply->cap_refs == 0) replies_.destroy(reply);  // nobody to wake: see object_unreferenced
}

[[gnu::always_inline]] inline void Node::deliver(const SendPlan& plan, Process& sender, Process& receiver) {
  const Message& from = *sender.send_message;
  assert(receiver.cspace.free_slots() >= slots_needed(from));
  // The reply capability first, then the transferred ones: handle values
  // follow from the order slots are taken in.
  const Cap<Reply> reply = mint_reply(receiver, sender);
  Message& into = *receiver.receive_message;
  copy_payload(into, from);
  if (from.cap_count != 0) transfer_caps(plan, from, receiver, into);
  receiver.receive_result->badge = plan.badge;
  receiver.receive_result->reply = reply;
  receiver.wake_error = Error{};
  receiver.blocked_via = nullptr;  // it has its call: nothing to sever any more
  receiver.timer_seq = 0;          // nor a receive_until deadline to keep
  sender.send_message = nullptr;
  sender.blocked_on = nullptr;
  sender.blocked_via = nullptr;
  sender.state = ProcessState::blocked_reply;
}

[[gnu::always_inline]] inline Error Node::take_queued_sender(Endpoint& ep, Process& receiver) {
  if (ep.senders.empty()) return Error::would_block;  // a server keeping up with its callers
  return take_queued_sender_slow(ep, receiver);
}

Error Node::take_queued_sender_slow(Endpoint& ep, Process& receiver) {
  while (Process* sender = ep.senders.front()) {
    if (receiver.cspace.free_slots() < slots_needed(*sender->send_message)) return Error::cspace_full;
    ep.senders.remove(sender);
    // Time has passed since the call: its capabilities may have been revoked.
    const Result<CapNode*> cap =
        sender->cspace.lookup(sender->send_handle, ObjectType::endpoint, Rights::send(), config_.handle_validation);
    SendPlan plan;
    Handle failed;
    const Error e = cap ? validate_message(*sender, *sender->send_message, plan, &failed) : cap.error();
    if (e != Error{}) {
      // A capability it was sending went while it waited: a failed lookup of
      // the sender's, audited like one made at the call.
      if (is_lookup_error(e)) audit_failure(Op::call, *sender, e, cap ? failed : sender->send_handle);
      make_ready(*sender, e);
      continue;
    }
    assert(cap.value()->object == &ep);
    plan.badge = cap.value()->badge;
    deliver(plan, *sender, receiver);
    return Error{};
  }
  return Error::would_block;
}

[[gnu::always_inline]] inline Error Node::receive_now(Process& self, Endpoint& ep, Message& request, Received* result) {
  self.receive_message = &request;
  self.receive_result = result;
  // A pending signal on the bound notification comes first: it is one word
  // however often it was signalled, so it cannot starve callers.
  return self.bound != nullptr && take_bound_notification(self, *result) ? Error{} : take_queued_sender(ep, self);
}

[[gnu::always_inline]] inline void Node::wait_as_receiver(Process& self, Endpoint& ep, const CapNode* via) {
  self.state = ProcessState::blocked_receive;
  self.blocked_on = &ep;
  self.blocked_via = via;
  ep.receivers.push_back(&self);
}

[[gnu::always_inline]] inline Error Node::answer(Process& self, Handle reply, const Message& m, Process** caller, Handle* failed) {
  const Result<CapNode*> cap = self.cspace.lookup(reply, ObjectType::reply, Rights::send(), config_.handle_validation);
  if (!cap) {
    *failed = reply;
    return cap.error();
  }
  SendPlan plan;
  if (const Error e = validate_message(self, m, plan, failed); e != Error{}) return e;
  auto* r = static_cast<Reply*>(cap.value()->object);
  Process* c = r->caller;
  if (c == nullptr) {
    consume_reply(cap.value());  // one-shot, even when the caller is gone
    return Error::peer_died;
  }
  if (c->cspace.free_slots() < m.cap_count) return Error::cspace_full;
  Message& into = *c->reply_message;
  copy_payload(into, m);
  if (m.cap_count != 0) transfer_caps(plan, m, *c, into);
  c->awaited_reply = nullptr;
  c->reply_message = nullptr;
  r->caller = nullptr;
  consume_reply(cap.value());  // and the reply object with it
  c->wake_error = Error{};
  *caller = c;
  return Error{};
}

// ---------------------------------------------------------------- Sys

// A call_until whose deadline has passed: timed_out, but lookup errors come
// first (and are audited), as for every call kind: the endpoint's, then those
// of the capabilities the message would transfer. Nothing is sent. (The same
// lookups as call_begin's, written out again: shared through one inlined
// helper, they cost the round trip 6 instructions, 683 -> 689, callgrind.)
Error Sys::call_too_late(Cap<Endpoint> ep, const Message& request) {
  Node& n = node_;
  const Result<CapNode*> cap =
      self_.cspace.lookup(ep.handle(), ObjectType::endpoint, Rights::send(), n.config_.handle_validation);
  if (!cap) return fail(Op::call, cap.error(), ep.handle());
  Node::SendPlan plan;
  Handle failed;
  if (const Error e = n.validate_message(self_, request, plan, &failed); e != Error{}) return fail(Op::call, e, failed);
  return fail(Op::call, Error::timed_out);
}

Error Sys::call_begin(Cap<Endpoint> ep, const Message& request, Message& response, Process** next,
                      std::uint64_t deadline_ns) {
  if (!enter()) return Error::killed;
  Node& n = node_;
  if (deadline_ns <= n.now_ns_) [[unlikely]] return call_too_late(ep, request);
  // The message delay fault: the call waits (and may be killed) before it is sent.
  if (self_.delay_ns_max != 0) [[unlikely]] n.maybe_delay_call(self_);
  const Result<CapNode*> cap =
      self_.cspace.lookup(ep.handle(), ObjectType::endpoint, Rights::send(), n.config_.handle_validation);
  if (!cap) return fail(Op::call, cap.error(), ep.handle());
  Node::SendPlan plan;
  Handle failed;
  if (const Error e = n.validate_message(self_, request, plan, &failed); e != Error{}) return fail(Op::call, e, failed);
  plan.badge = cap.value()->badge;

  auto& endpoint = *static_cast<Endpoint*>(cap.value()->object);
  self_.send_message = &request;
  self_.reply_message = &response;
  self_.send_handle = ep.handle();
  if (deadline_ns != UINT64_MAX) [[unlikely]] n.add_timer(deadline_ns, self_.id, {});
  Process* server = endpoint.receivers.front();
  if (server != nullptr && server->cspace.free_slots() >= n.slots_needed(request)) {
    [[maybe_unused]] Process* const taken = endpoint.receivers.pop_front();
    assert(taken == server);
    n.deliver(plan, self_, *server);
    *next = n.block_or_hand_off(self_, server);  // hand the processor to the server
  } else {
    // The waiting receiver has no room for the reply capability: tell it, queue the call.
    if (server != nullptr) n.make_ready(*server, Error::cspace_full);
    self_.state = ProcessState::blocked_call;
    self_.blocked_on = &endpoint;
    self_.blocked_via = cap.value();
    endpoint.senders.push_back(&self_);
    n.block(self_, nullptr);
  }
  return Error{};
}

Error Sys::receive_begin(Cap<Endpoint> ep, Message& request, std::uint64_t deadline_ns, Received* result,
                         Context** next) {
  if (!enter()) return Error::killed;
  Node& n = node_;
  const Result<CapNode*> cap =
      self_.cspace.lookup(ep.handle(), ObjectType::endpoint, Rights::receive(), n.config_.handle_validation);
  if (!cap) return fail(Op::receive, cap.error(), ep.handle());
  auto& endpoint = *static_cast<Endpoint*>(cap.value()->object);

  Error e = n.receive_now(self_, endpoint, request, result);
  if (e == Error::would_block && deadline_ns <= n.now_ns_) e = Error::timed_out;
  if (e == Error::would_block) {
    n.wait_as_receiver(self_, endpoint, cap.value());
    if (deadline_ns != UINT64_MAX) n.add_timer(deadline_ns, self_.id, {});
    *next = n.block_target(self_, nullptr);
    assert(*next != nullptr && "a receiver in a wait queue is not ready: it cannot be yielded back to");
    return Error{};  // receive_end reads how the receive went from wake_error
  }
  self_.wake_error = e;
  return Error{};
}

Status Sys::reply(Cap<Reply> reply, const Message& response) {
  if (!enter()) return Error::killed;
  Node& n = node_;
  Process* caller = nullptr;
  Handle failed;
  const Error e = n.answer(self_, reply.handle(), response, &caller, &failed);
  if (e != Error{}) return fail(Op::reply, e, failed);
  n.make_ready(*caller);
  n.trace(Op::reply, &self_, Error{}, response.length, caller);
  return {};
}

Error Sys::reply_receive_begin(Cap<Reply> reply, const Message& response, Cap<Endpoint> ep, Message& request,
                               Received* result, Process** next) {
  if (!enter()) return Error::killed;
  Node& n = node_;
  // Decode both halves before acting on either.
  const Result<CapNode*> cap =
      self_.cspace.lookup(ep.handle(), ObjectType::endpoint, Rights::receive(), n.config_.handle_validation);
  if (!cap) return fail(Op::reply_receive, cap.error(), ep.handle());
  auto& endpoint = *static_cast<Endpoint*>(cap.value()->object);
  Process* caller = nullptr;
  Handle failed;
  const Error replied = n.answer(self_, reply.handle(), response, &caller, &failed);
  // A caller that went away does not stop a server loop: the reply capability
  // is consumed and the receive goes ahead.
  if (replied != Error{} && replied != Error::peer_died) return fail(Op::reply_receive, replied, failed);
  n.trace(Op::reply, &self_, replied, response.length, caller);

  const Error e = n.receive_now(self_, endpoint, request, result);
  if (e == Error::would_block) {
    n.wait_as_receiver(self_, endpoint, cap.value());
    *next = n.block_or_hand_off(self_, caller);  // hand the processor to the caller just answered
    return Error{};  // receive_end reads how the receive went from wake_error
  }
  if (caller != nullptr) n.make_ready(*caller);
  self_.wake_error = e;
  return Error{};
}

}  // namespace persim::kernel
