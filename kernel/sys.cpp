// Kernel calls other than IPC. Each: enter (liveness, accounting, fault hook),
// decode and check, then act.
#include "kernel/sys.hpp"

#include <cstring>

#include "kernel/node.hpp"

namespace persim::kernel {

Error Sys::fail(Op op, Error e, Handle h) {
  if (is_lookup_error(e)) node_.audit_failure(op, self_, e, h);
  node_.trace(op, &self_, e, h.raw());
  return e;
}

Result<Cap<Endpoint>> Sys::endpoint_create() {
  if (!enter()) return Error::killed;
  Endpoint* ep = node_.endpoints_.create();
  const Result<CapNode*> cap = node_.make_cap(self_, ep, Rights::all(), 0, nullptr);
  if (!cap) {
    node_.endpoints_.destroy(ep);
    return fail(Op::endpoint_create, cap.error());
  }
  const Handle h = self_.cspace.handle_of(cap.value());
  node_.trace(Op::endpoint_create, &self_, Error{}, h.raw());
  return Cap<Endpoint>(h);
}

Result<Cap<Notification>> Sys::notification_create() {
  if (!enter()) return Error::killed;
  Notification* n = node_.notifications_.create();
  const Result<CapNode*> cap = node_.make_cap(self_, n, Rights::all(), 0, nullptr);
  if (!cap) {
    node_.notifications_.destroy(n);
    return fail(Op::notification_create, cap.error());
  }
  const Handle h = self_.cspace.handle_of(cap.value());
  node_.trace(Op::notification_create, &self_, Error{}, h.raw());
  return Cap<Notification>(h);
}

Result<Handle> Sys::derive_any(Handle from, ObjectType type, Rights mask, std::uint64_t badge) {
  if (!enter()) return Error::killed;
  const Result<CapNode*> cap = self_.cspace.lookup(from, type, Rights::derive(), node_.config_.handle_validation);
  if (!cap) return fail(Op::derive, cap.error(), from);
  const Result<CapNode*> child = node_.derive_cap(self_, cap.value(), self_, mask, badge);
  if (!child) return fail(Op::derive, child.error(), from);
  const Handle h = self_.cspace.handle_of(child.value());
  node_.trace(Op::derive, &self_, Error{}, h.raw());
  return h;
}

Status Sys::delete_cap(AnyCap c) {
  if (!enter()) return Error::killed;
  const Result<CapNode*> cap = self_.cspace.lookup_any(c.handle(), node_.config_.handle_validation);
  if (!cap) return fail(Op::delete_cap, cap.error(), c.handle());
  node_.trace(Op::delete_cap, &self_, Error{}, c.handle().raw());
  node_.destroy_cap(cap.value(), SlotEnd::deleted);
  return {};
}

Status Sys::revoke(AnyCap c) {
  if (!enter()) return Error::killed;
  const Result<CapNode*> cap = self_.cspace.lookup_any(c.handle(), node_.config_.handle_validation);
  if (!cap) return fail(Op::revoke, cap.error(), c.handle());
  if (!cap.value()->rights.contains(Rights::revoke())) return fail(Op::revoke, Error::insufficient_rights, c.handle());
  node_.trace(Op::revoke, &self_, Error{}, c.handle().raw());
  node_.revoke_descendants(cap.value());
  return {};
}

Status Sys::signal(Cap<Notification> n) {
  if (!enter()) return Error::killed;
  const Result<CapNode*> cap =
      self_.cspace.lookup(n.handle(), ObjectType::notification, Rights::send(), node_.config_.handle_validation);
  if (!cap) return fail(Op::signal, cap.error(), n.handle());
  auto& note = *static_cast<Notification*>(cap.value()->object);
  const std::uint64_t badge = cap.value()->badge;
  node_.notify(note, badge);
  node_.trace(Op::signal, &self_, Error{}, badge);
  return {};
}

Result<std::uint64_t> Sys::wait(Cap<Notification> n) {
  if (!enter()) return Error::killed;
  const Result<CapNode*> cap =
      self_.cspace.lookup(n.handle(), ObjectType::notification, Rights::receive(), node_.config_.handle_validation);
  if (!cap) return fail(Op::wait, cap.error(), n.handle());
  auto& note = *static_cast<Notification*>(cap.value()->object);
  std::uint64_t word;
  if (note.pending) {
    word = note.word;
    note.word = 0;
    note.pending = false;
  } else {
    self_.state = ProcessState::blocked_wait;
    self_.waiting_on = &note;
    self_.blocked_via = cap.value();
    note.waiters.push_back(&self_);
    node_.block(self_, nullptr);
    // Woken by an error (the notification destroyed, the capability severed):
    // not a lookup of this call's, so traced but not audited.
    if (self_.wake_error != Error{}) {
      node_.trace(Op::wait, &self_, self_.wake_error);
      return self_.wake_error;
    }
    word = self_.wake_value;
  }
  node_.trace(Op::wait, &self_, Error{}, word);
  return word;
}

Result<std::uint64_t> Sys::poll(Cap<Notification> n) {
  if (!enter()) return Error::killed;
  const Result<CapNode*> cap =
      self_.cspace.lookup(n.handle(), ObjectType::notification, Rights::receive(), node_.config_.handle_validation);
  if (!cap) return fail(Op::poll, cap.error(), n.handle());
  auto& note = *static_cast<Notification*>(cap.value()->object);
  if (!note.pending) return fail(Op::poll, Error::would_block);
  const std::uint64_t word = note.word;
  note.word = 0;
  note.pending = false;
  node_.trace(Op::poll, &self_, Error{}, word);
  return word;
}

Status Sys::kill(Cap<Process> p) {
  if (!enter()) return Error::killed;
  const Result<CapNode*> cap =
      self_.cspace.lookup(p.handle(), ObjectType::process, Rights::control(), node_.config_.handle_validation);
  if (!cap) return fail(Op::kill, cap.error(), p.handle());
  auto& target = *static_cast<Process*>(cap.value()->object);
  if (target.state == ProcessState::dead) return fail(Op::kill, Error::object_dead);
  node_.trace(Op::kill, &self_, Error{}, 0, &target);
  if (&target == &self_) node_.kill_running(self_);
  node_.kill_suspended(target);
  return {};
}

std::uint64_t Sys::now_ns() const { return node_.now_ns_; }

Status Sys::sleep_for(std::uint64_t ns) {
  if (!enter()) return Error::killed;
  node_.add_timer(node_.now_ns_ + ns, self_.id, {});
  self_.state = ProcessState::sleeping;
  node_.block(self_, nullptr);
  node_.trace(Op::sleep, &self_, Error{}, ns);
  return {};
}

Status Sys::yield() {
  if (!enter()) return Error::killed;
  self_.state = ProcessState::ready;
  node_.ready_.push_back(&self_);
  node_.block(self_, nullptr);
  node_.trace(Op::yield, &self_);
  return {};
}

std::uint64_t Sys::random() { return self_.rng.next(); }
std::uint64_t Sys::random_below(std::uint64_t bound) { return bound == 0 ? 0 : self_.rng.below(bound); }

// ---------------------------------------------------------------- buffers

Result<Cap<Buffer>> Sys::buffer_create(std::size_t size) {
  if (!enter()) return Error::killed;
  if (size > buffer_bytes_max) return fail(Op::buffer_create, Error::invalid_argument);
  Buffer* b = node_.buffers_.create(size);
  const Result<CapNode*> cap = node_.make_cap(self_, b, Rights::all(), 0, nullptr);
  if (!cap) {
    node_.buffers_.destroy(b);
    return fail(Op::buffer_create, cap.error());
  }
  const Handle h = self_.cspace.handle_of(cap.value());
  node_.trace(Op::buffer_create, &self_, Error{}, size);
  return Cap<Buffer>(h);
}

Status Sys::buffer_write(Cap<Buffer> b, std::uint64_t offset, std::span<const std::byte> bytes) {
  if (!enter()) return Error::killed;
  const Result<CapNode*> cap =
      self_.cspace.lookup(b.handle(), ObjectType::buffer, Rights::send(), node_.config_.handle_validation);
  if (!cap) return fail(Op::buffer_write, cap.error(), b.handle());
  std::vector<std::byte>& data = static_cast<Buffer*>(cap.value()->object)->bytes;
  if (offset > data.size() || bytes.size() > data.size() - offset) return fail(Op::buffer_write, Error::invalid_argument);
  if (!bytes.empty()) std::memcpy(data.data() + offset, bytes.data(), bytes.size());
  node_.trace(Op::buffer_write, &self_, Error{}, bytes.size());
  return {};
}

Status Sys::buffer_read(Cap<Buffer> b, std::uint64_t offset, std::span<std::byte> out) {
  if (!enter()) return Error::killed;
  const Result<CapNode*> cap =
      self_.cspace.lookup(b.handle(), ObjectType::buffer, Rights::receive(), node_.config_.handle_validation);
  if (!cap) return fail(Op::buffer_read, cap.error(), b.handle());
  const std::vector<std::byte>& data = static_cast<const Buffer*>(cap.value()->object)->bytes;
  if (offset > data.size() || out.size() > data.size() - offset) return fail(Op::buffer_read, Error::invalid_argument);
  if (!out.empty()) std::memcpy(out.data(), data.data() + offset, out.size());
  node_.trace(Op::buffer_read, &self_, Error{}, out.size());
  return {};
}

Result<std::uint64_t> Sys::buffer_size(Cap<Buffer> b) {
  if (!enter()) return Error::killed;
  const Result<CapNode*> cap =
      self_.cspace.lookup(b.handle(), ObjectType::buffer, Rights::none(), node_.config_.handle_validation);
  if (!cap) return fail(Op::buffer_size, cap.error(), b.handle());
  const std::uint64_t size = static_cast<const Buffer*>(cap.value()->object)->bytes.size();
  node_.trace(Op::buffer_size, &self_, Error{}, size);
  return size;
}

}  // namespace persim::kernel
