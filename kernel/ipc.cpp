// Synchronous IPC: call, receive, reply, reply_receive. Each call validates all
// of its arguments before anything changes, then acts.
#include <cassert>
#include <cstring>

#include "kernel/node.hpp"
#include "kernel/sys.hpp"

namespace persim::kernel {

namespace {

void copy_payload(Message& to, const Message& from) {
  to.label = from.label;
  to.length = from.length;
  std::memcpy(to.data.data(), from.data.data(), from.length);
  to.cap_count = 0;
}

}  // namespace

Result<Node::SendPlan> Node::validate_message(Process& sender, const Message& m, std::uint64_t badge,
                                              Handle* failed) {
  if (m.length > msg_bytes_max) return Error::message_too_large;
  if (m.cap_count > msg_caps_max) return Error::too_many_caps;
  SendPlan plan;
  plan.badge = badge;
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
  return plan;
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

void Node::deliver(const SendPlan& plan, Process& sender, Process& receiver) {
  assert(receiver.cspace.free_slots() >= slots_needed(*sender.send_message));
  Reply* reply = replies_.create();
  reply->caller = &sender;
  const Result<CapNode*> reply_cap = make_cap(receiver, reply, Rights::send(), 0, nullptr);
  assert(reply_cap.ok());
  Message& into = *receiver.receive_message;
  copy_payload(into, *sender.send_message);
  transfer_caps(plan, *sender.send_message, receiver, into);
  receiver.receive_result->badge = plan.badge;
  receiver.receive_result->reply = Cap<Reply>(receiver.cspace.handle_of(reply_cap.value()));
  receiver.wake_error = Error{};
  sender.send_message = nullptr;
  sender.blocked_on = nullptr;
  sender.awaited_reply = reply;
  sender.state = ProcessState::blocked_reply;
}

Error Node::take_queued_sender(Endpoint& ep, Process& receiver) {
  while (Process* sender = ep.senders.front()) {
    if (receiver.cspace.free_slots() < slots_needed(*sender->send_message)) return Error::cspace_full;
    ep.senders.remove(sender);
    // Time has passed since the call: its capabilities may have been revoked.
    const Result<CapNode*> cap =
        sender->cspace.lookup(sender->send_handle, ObjectType::endpoint, Rights::send(), config_.handle_validation);
    Handle failed;
    Result<SendPlan> plan = cap ? validate_message(*sender, *sender->send_message, cap.value()->badge, &failed)
                                : Result<SendPlan>(cap.error());
    if (!plan) {
      make_ready(*sender, plan.error());
      continue;
    }
    assert(cap.value()->object == &ep);
    deliver(plan.value(), *sender, receiver);
    return Error{};
  }
  return Error::would_block;
}

Error Node::answer(Process& self, Handle reply, const Message& m, Process** caller, Handle* failed) {
  const Result<CapNode*> cap = self.cspace.lookup(reply, ObjectType::reply, Rights::send(), config_.handle_validation);
  if (!cap) {
    *failed = reply;
    return cap.error();
  }
  Result<SendPlan> plan = validate_message(self, m, 0, failed);
  if (!plan) return plan.error();
  auto* r = static_cast<Reply*>(cap.value()->object);
  Process* c = r->caller;
  if (c == nullptr) {
    destroy_cap(cap.value(), SlotEnd::deleted);  // one-shot, even when the caller is gone
    return Error::peer_died;
  }
  if (c->cspace.free_slots() < m.cap_count) return Error::cspace_full;
  Message& into = *c->reply_message;
  copy_payload(into, m);
  transfer_caps(plan.value(), m, *c, into);
  c->awaited_reply = nullptr;
  c->reply_message = nullptr;
  r->caller = nullptr;
  destroy_cap(cap.value(), SlotEnd::deleted);  // consumes the reply object too
  c->wake_error = Error{};
  *caller = c;
  return Error{};
}

// ---------------------------------------------------------------- Sys

Status Sys::call(Cap<Endpoint> ep, const Message& request, Message& response) {
  if (!enter()) return Error::killed;
  Node& n = node_;
  const Result<CapNode*> cap =
      self_.cspace.lookup(ep.handle(), ObjectType::endpoint, Rights::send(), n.config_.handle_validation);
  if (!cap) return fail(Op::call, cap.error(), ep.handle());
  Handle failed;
  const Result<Node::SendPlan> plan = n.validate_message(self_, request, cap.value()->badge, &failed);
  if (!plan) return fail(Op::call, plan.error(), failed);

  auto& endpoint = *static_cast<Endpoint*>(cap.value()->object);
  self_.send_message = &request;
  self_.reply_message = &response;
  self_.send_handle = ep.handle();
  Process* server = endpoint.receivers.front();
  if (server != nullptr && server->cspace.free_slots() >= n.slots_needed(request)) {
    endpoint.receivers.remove(server);
    n.deliver(plan.value(), self_, *server);
    n.block(self_, server);  // hand the processor to the server
  } else {
    // The waiting receiver has no room for the reply capability: tell it, queue the call.
    if (server != nullptr) n.make_ready(*server, Error::cspace_full);
    self_.state = ProcessState::blocked_call;
    self_.blocked_on = &endpoint;
    endpoint.senders.push_back(&self_);
    n.block(self_, nullptr);
  }
  const Error e = self_.wake_error;
  n.trace(Op::call, &self_, e, response.length);
  if (e != Error{}) return e;
  return {};
}

Result<Received> Sys::receive(Cap<Endpoint> ep, Message& request) {
  if (!enter()) return Error::killed;
  Node& n = node_;
  const Result<CapNode*> cap =
      self_.cspace.lookup(ep.handle(), ObjectType::endpoint, Rights::receive(), n.config_.handle_validation);
  if (!cap) return fail(Op::receive, cap.error(), ep.handle());
  auto& endpoint = *static_cast<Endpoint*>(cap.value()->object);

  Received result;
  self_.receive_message = &request;
  self_.receive_result = &result;
  Error e = n.take_queued_sender(endpoint, self_);
  if (e == Error::would_block) {
    self_.state = ProcessState::blocked_receive;
    self_.blocked_on = &endpoint;
    endpoint.receivers.push_back(&self_);
    n.block(self_, nullptr);
    e = self_.wake_error;
  }
  self_.receive_message = nullptr;
  self_.receive_result = nullptr;
  n.trace(Op::receive, &self_, e, result.badge);
  if (e != Error{}) return e;
  return result;
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

Result<Received> Sys::reply_receive(Cap<Reply> reply, const Message& response, Cap<Endpoint> ep,
                                    Message& request) {
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

  Received result;
  self_.receive_message = &request;
  self_.receive_result = &result;
  Error e = n.take_queued_sender(endpoint, self_);
  if (e == Error::would_block) {
    self_.state = ProcessState::blocked_receive;
    self_.blocked_on = &endpoint;
    endpoint.receivers.push_back(&self_);
    n.block(self_, caller);  // hand the processor to the caller just answered
    e = self_.wake_error;
  } else if (caller != nullptr) {
    n.make_ready(*caller);
  }
  self_.receive_message = nullptr;
  self_.receive_result = nullptr;
  n.trace(Op::receive, &self_, e, result.badge);
  if (e != Error{}) return e;
  return result;
}

}  // namespace persim::kernel
