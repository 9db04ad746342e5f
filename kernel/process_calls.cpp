// Processes made and watched by processes: programs, factories, initial grant
// tables, exit watches, and notifications bound to a receiver. What a
// supervisor needs to start programs from manifests and restart them.
#include <algorithm>
#include <cassert>

#include "kernel/node.hpp"
#include "kernel/sys.hpp"

namespace persim::kernel {

namespace {

bool valid_name(std::string_view name, std::size_t bytes_max) { return !name.empty() && name.size() <= bytes_max; }

}  // namespace

// ---------------------------------------------------------------- host API

Status Node::register_program(std::string name, Entry entry) {
  if (!valid_name(name, program_name_bytes_max) || !entry || programs_.size() >= programs_max ||
      programs_.contains(name))
    return Error::invalid_argument;
  programs_.emplace(std::move(name), std::move(entry));
  return {};
}

Result<Handle> Node::create_factory(ProcessId holder) {
  Process* p = find_live(holder);
  if (p == nullptr) return Error::bad_handle;
  Factory* f = factories_.create();
  const Result<CapNode*> cap = make_cap(*p, f, Rights::all(), 0, nullptr);
  if (!cap) {
    factories_.destroy(f);
    return cap.error();
  }
  const Handle h = p->cspace.handle_of(cap.value());
  trace(Op::grant, p, Error{}, h.raw());
  return h;
}

Result<Handle> Node::grant_named(ProcessId from, Handle h, ProcessId to, std::string name, Rights mask,
                                 std::uint64_t badge) {
  Process* src = find_live(from);
  Process* dst = find_live(to);
  if (src == nullptr || dst == nullptr) return Error::bad_handle;
  const Result<CapNode*> cap = src->cspace.lookup_any(h, HandleValidation::full);
  if (!cap) return cap.error();
  const Status installed = install_named(*src, cap.value(), *dst, name, mask, badge);
  if (!installed) return installed.error();
  const Handle granted = dst->grants.back().handle;
  trace(Op::grant, dst, Error{}, granted.raw(), src);
  return granted;
}

Status Node::name_grant(ProcessId pid, std::string name, Handle h) {
  Process* p = find_live(pid);
  if (p == nullptr || !p->cspace.lookup_any(h, HandleValidation::full)) return Error::bad_handle;
  const bool taken =
      std::any_of(p->grants.begin(), p->grants.end(), [&](const NamedGrant& g) { return g.name == name; });
  if (p->state != ProcessState::embryo || !valid_name(name, grant_name_bytes_max) || taken ||
      p->grants.size() >= grants_max)
    return Error::invalid_argument;
  p->grants.push_back({std::move(name), h});
  return {};
}

Status Node::signal(ProcessId holder, Handle h) {
  assert(current_ == nullptr && "host API called from inside a process");
  Process* p = find(holder);
  if (p == nullptr) return Error::bad_handle;
  if (p->state == ProcessState::dead) return Error::object_dead;
  const Result<CapNode*> cap = p->cspace.lookup(h, ObjectType::notification, Rights::send(), HandleValidation::full);
  if (!cap) return cap.error();
  const std::uint64_t badge = cap.value()->badge;
  notify(*static_cast<Notification*>(cap.value()->object), badge);
  trace(Op::signal, nullptr, Error{}, badge, p);
  return {};
}

Status Node::start_program(ProcessId pid, std::string_view program) {
  const auto it = programs_.find(program);
  if (it == programs_.end()) return Error::not_found;
  return start(pid, it->second);
}

std::vector<ProcessId> Node::process_ids() const {
  std::vector<ProcessId> out;
  for (std::size_t i = 1; i < table_.size(); ++i)
    if (table_[i] != nullptr) out.push_back(table_[i]->id);
  return out;
}

std::vector<NamedGrant> Node::grants(ProcessId pid) const {
  const Process* p = find(pid);
  return p != nullptr ? p->grants : std::vector<NamedGrant>{};
}

// ---------------------------------------------------------------- internals

Status Node::install_named(Process& from, CapNode* cap, Process& to, std::string_view name, Rights mask,
                           std::uint64_t badge) {
  if (to.state != ProcessState::embryo || !valid_name(name, grant_name_bytes_max) || to.grants.size() >= grants_max)
    return Error::invalid_argument;
  const bool taken =
      std::any_of(to.grants.begin(), to.grants.end(), [&](const NamedGrant& g) { return g.name == name; });
  if (taken) return Error::invalid_argument;
  const Result<CapNode*> child = derive_cap(from, cap, to, mask, badge);
  if (!child) return child.error();
  // A process given one named grant is usually given several: room for 4 at
  // once rather than growing 1, 2, 4.
  if (to.grants.empty()) to.grants.reserve(4);
  to.grants.push_back({std::string(name), to.cspace.handle_of(child.value())});
  return {};
}

void Node::unwatch(Process& p) {
  Notification* n = p.exit_watch;
  if (n == nullptr) return;
  std::erase(n->watched, &p);
  p.exit_watch = nullptr;
}

void Node::unbind(Process& p) {
  if (p.bound == nullptr) return;
  p.bound->bound = nullptr;
  p.bound = nullptr;
}

void Node::notify_exit(Process& p) {
  Notification* n = p.exit_watch;
  if (n == nullptr) return;
  const std::uint64_t badge = p.exit_badge;
  unwatch(p);
  notify(*n, badge);
}

void Node::notify(Notification& n, std::uint64_t badge) {
  if (Process* waiter = n.waiters.front()) {
    make_ready(*waiter, Error{}, badge);
  } else if (n.bound != nullptr && n.bound->state == ProcessState::blocked_receive) {
    deliver_notification(*n.bound, badge);
  } else {
    n.word |= badge;
    n.pending = true;
  }
}

bool Node::take_bound_notification(Process& self, Received& result) {
  Notification* n = self.bound;
  if (n == nullptr || !n->pending) return false;
  result.badge = n->word;
  result.notified = true;
  n->word = 0;
  n->pending = false;
  return true;
}

void Node::deliver_notification(Process& receiver, std::uint64_t word) {
  assert(receiver.state == ProcessState::blocked_receive);
  receiver.receive_result->badge = word;
  receiver.receive_result->notified = true;
  make_ready(receiver, Error{}, word);
}

// ---------------------------------------------------------------- Sys

Result<Cap<Process>> Sys::process_create(Cap<Factory> factory, std::string_view program, std::string_view name) {
  if (!enter()) return Error::killed;
  Node& n = node_;
  const Result<CapNode*> cap =
      self_.cspace.lookup(factory.handle(), ObjectType::factory, Rights::send(), n.config_.handle_validation);
  if (!cap) return fail(Op::process_create, cap.error(), factory.handle());
  const auto it = n.programs_.find(program);
  if (it == n.programs_.end()) return fail(Op::process_create, Error::not_found);
  if (!valid_name(name, program_name_bytes_max)) return fail(Op::process_create, Error::invalid_argument);
  if (self_.cspace.free_slots() == 0) return fail(Op::process_create, Error::cspace_full);
  const Result<ProcessId> pid = n.create_process(std::string(name));
  if (!pid) return fail(Op::process_create, pid.error());
  Process& child = *n.find(pid.value());
  const Result<CapNode*> child_cap = n.make_cap(self_, &child, Rights::all(), 0, nullptr);
  assert(child_cap.ok() && "room was checked");
  // The program is fixed at creation; it runs when process_start says so.
  child.context.fiber = n.start_fiber(child, it->second);
  const Handle h = self_.cspace.handle_of(child_cap.value());
  n.trace(Op::process_create, &self_, Error{}, h.raw(), &child);
  return Cap<Process>(h);
}

Status Sys::process_grant(Cap<Process> p, std::string_view name, AnyCap cap, Rights mask, std::uint64_t badge) {
  if (!enter()) return Error::killed;
  Node& n = node_;
  const Result<CapNode*> target =
      self_.cspace.lookup(p.handle(), ObjectType::process, Rights::control(), n.config_.handle_validation);
  if (!target) return fail(Op::process_grant, target.error(), p.handle());
  const Result<CapNode*> source = self_.cspace.lookup_any(cap.handle(), n.config_.handle_validation);
  if (!source) return fail(Op::process_grant, source.error(), cap.handle());
  if (!source.value()->rights.contains(Rights::grant()))
    return fail(Op::process_grant, Error::insufficient_rights, cap.handle());
  auto& child = *static_cast<Process*>(target.value()->object);
  if (child.state == ProcessState::dead) return fail(Op::process_grant, Error::object_dead);
  const Status installed = n.install_named(self_, source.value(), child, name, mask, badge);
  if (!installed) return fail(Op::process_grant, installed.error());
  n.trace(Op::process_grant, &self_, Error{}, child.grants.back().handle.raw(), &child);
  return {};
}

Status Sys::process_start(Cap<Process> p) {
  if (!enter()) return Error::killed;
  Node& n = node_;
  const Result<CapNode*> target =
      self_.cspace.lookup(p.handle(), ObjectType::process, Rights::control(), n.config_.handle_validation);
  if (!target) return fail(Op::process_start, target.error(), p.handle());
  auto& child = *static_cast<Process*>(target.value()->object);
  if (child.state == ProcessState::dead) return fail(Op::process_start, Error::object_dead);
  // Only a process made by process_create has its fiber before it starts.
  if (child.state != ProcessState::embryo || !child.context.fiber)
    return fail(Op::process_start, Error::invalid_argument);
  child.state = ProcessState::ready;
  n.ready_.push_back(&child);
  n.trace(Op::process_start, &self_, Error{}, 0, &child);
  return {};
}

Status Sys::process_watch(Cap<Process> p, Cap<Notification> note) {
  if (!enter()) return Error::killed;
  Node& n = node_;
  const Result<CapNode*> target =
      self_.cspace.lookup(p.handle(), ObjectType::process, Rights::control(), n.config_.handle_validation);
  if (!target) return fail(Op::process_watch, target.error(), p.handle());
  const Result<CapNode*> notifier =
      self_.cspace.lookup(note.handle(), ObjectType::notification, Rights::send(), n.config_.handle_validation);
  if (!notifier) return fail(Op::process_watch, notifier.error(), note.handle());
  auto& child = *static_cast<Process*>(target.value()->object);
  auto* notification = static_cast<Notification*>(notifier.value()->object);
  n.unwatch(child);
  child.exit_watch = notification;
  child.exit_badge = notifier.value()->badge;
  notification->watched.push_back(&child);
  n.trace(Op::process_watch, &self_, Error{}, child.exit_badge, &child);
  if (child.state == ProcessState::dead) n.notify_exit(child);
  return {};
}

Result<Sys::ProcessStatus> Sys::process_status(Cap<Process> p) {
  if (!enter()) return Error::killed;
  const Result<CapNode*> target =
      self_.cspace.lookup(p.handle(), ObjectType::process, Rights::control(), node_.config_.handle_validation);
  if (!target) return fail(Op::process_status, target.error(), p.handle());
  const auto& child = *static_cast<const Process*>(target.value()->object);
  ProcessStatus status;
  status.alive = child.state != ProcessState::dead;
  status.exit_reason = child.exit_reason;
  status.caps_released = child.caps_released;
  node_.trace(Op::process_status, &self_, Error{}, static_cast<std::uint64_t>(child.exit_reason), &child);
  return status;
}

Result<Handle> Sys::granted_any(std::string_view name, ObjectType type) {
  if (!enter()) return Error::killed;
  for (const NamedGrant& g : self_.grants) {
    if (g.name != name) continue;
    const Result<CapNode*> cap = self_.cspace.lookup(g.handle, type, Rights::none(), node_.config_.handle_validation);
    // A grant deleted since, or revoked, is reported like any stale handle.
    if (!cap) return fail(Op::granted, cap.error(), g.handle);
    node_.trace(Op::granted, &self_, Error{}, g.handle.raw());
    return g.handle;
  }
  return fail(Op::granted, Error::not_found);
}

Status Sys::notification_bind(Cap<Notification> note) {
  if (!enter()) return Error::killed;
  Node& n = node_;
  const Result<CapNode*> cap =
      self_.cspace.lookup(note.handle(), ObjectType::notification, Rights::receive(), n.config_.handle_validation);
  if (!cap) return fail(Op::notification_bind, cap.error(), note.handle());
  auto* notification = static_cast<Notification*>(cap.value()->object);
  if (notification->bound != nullptr && notification->bound != &self_)
    return fail(Op::notification_bind, Error::invalid_argument);
  n.unbind(self_);
  self_.bound = notification;
  notification->bound = &self_;
  n.trace(Op::notification_bind, &self_);
  return {};
}

}  // namespace persim::kernel
