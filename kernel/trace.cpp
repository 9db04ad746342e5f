// The audit log and the names of things. (Node::trace is inline in node.hpp:
// it is on every kernel call's path.)
#include "kernel/node.hpp"

namespace persim::kernel {

void Node::audit_failure(Op op, const Process& p, Error e, Handle h) {
  audit_.record({now_ns_, p.id.index, p.id.generation, op, e, h.raw()});
}

void AuditLog::record(const AuditRecord& r) {
  ++counts_[static_cast<std::size_t>(r.error)];
  ++total_;
  if (ring_.size() < audit_records_max) {
    ring_.push_back(r);
  } else {
    ring_[next_] = r;
  }
  next_ = (next_ + 1) % audit_records_max;
}

std::vector<AuditRecord> AuditLog::records() const {
  if (ring_.size() < audit_records_max) return ring_;
  std::vector<AuditRecord> out(ring_.begin() + static_cast<std::ptrdiff_t>(next_), ring_.end());
  out.insert(out.end(), ring_.begin(), ring_.begin() + static_cast<std::ptrdiff_t>(next_));
  return out;
}

// ---------------------------------------------------------------- names

std::string_view to_string(Error e) noexcept {
  switch (e) {
    case Error::bad_handle: return "bad_handle";
    case Error::severed: return "severed";
    case Error::wrong_type: return "wrong_type";
    case Error::insufficient_rights: return "insufficient_rights";
    case Error::invalid_argument: return "invalid_argument";
    case Error::message_too_large: return "message_too_large";
    case Error::too_many_caps: return "too_many_caps";
    case Error::cspace_full: return "cspace_full";
    case Error::peer_died: return "peer_died";
    case Error::object_destroyed: return "object_destroyed";
    case Error::killed: return "killed";
    case Error::would_block: return "would_block";
    case Error::process_limit: return "process_limit";
    case Error::object_dead: return "object_dead";
    case Error::not_found: return "not_found";
    case Error::timed_out: return "timed_out";
  }
  return "unknown_error";
}

const char* to_string(ObjectType t) noexcept {
  switch (t) {
    case ObjectType::endpoint: return "endpoint";
    case ObjectType::notification: return "notification";
    case ObjectType::reply: return "reply";
    case ObjectType::process: return "process";
    case ObjectType::factory: return "factory";
    case ObjectType::buffer: return "buffer";
  }
  return "unknown_type";
}

const char* to_string(ExitReason r) noexcept {
  switch (r) {
    case ExitReason::none: return "none";
    case ExitReason::returned: return "returned";
    case ExitReason::crashed: return "crashed";
    case ExitReason::killed: return "killed";
  }
  return "unknown_exit";
}

const char* to_string(ProcessState s) noexcept {
  switch (s) {
    case ProcessState::embryo: return "embryo";
    case ProcessState::ready: return "ready";
    case ProcessState::running: return "running";
    case ProcessState::blocked_call: return "blocked_call";
    case ProcessState::blocked_reply: return "blocked_reply";
    case ProcessState::blocked_receive: return "blocked_receive";
    case ProcessState::blocked_wait: return "blocked_wait";
    case ProcessState::sleeping: return "sleeping";
    case ProcessState::dead: return "dead";
  }
  return "unknown_state";
}

std::string_view to_string(Op op) noexcept {
  switch (op) {
    case Op::endpoint_create: return "endpoint_create";
    case Op::notification_create: return "notification_create";
    case Op::derive: return "derive";
    case Op::delete_cap: return "delete";
    case Op::revoke: return "revoke";
    case Op::call: return "call";
    case Op::receive: return "receive";
    case Op::reply: return "reply";
    case Op::reply_receive: return "reply_receive";
    case Op::signal: return "signal";
    case Op::wait: return "wait";
    case Op::poll: return "poll";
    case Op::kill: return "kill";
    case Op::sleep: return "sleep";
    case Op::yield: return "yield";
    case Op::process_create: return "process_create";
    case Op::process_grant: return "process_grant";
    case Op::process_start: return "process_start";
    case Op::process_watch: return "process_watch";
    case Op::process_status: return "process_status";
    case Op::notification_bind: return "notification_bind";
    case Op::granted: return "granted";
    case Op::buffer_create: return "buffer_create";
    case Op::buffer_write: return "buffer_write";
    case Op::buffer_read: return "buffer_read";
    case Op::buffer_size: return "buffer_size";
    case Op::spawn: return "spawn";
    case Op::start: return "start";
    case Op::exit: return "exit";
    case Op::crash: return "crash";
    case Op::death: return "death";
    case Op::timer: return "timer";
    case Op::grant: return "grant";
  }
  return "unknown_op";
}

std::string Rights::to_string() const {
  static constexpr const char* names[count] = {"send", "receive", "grant", "derive", "revoke", "control"};
  std::string out;
  for (int i = 0; i < count; ++i) {
    if ((bits_ & (1u << i)) == 0) continue;
    if (!out.empty()) out += '|';
    out += names[i];
  }
  return out.empty() ? "none" : out;
}

}  // namespace persim::kernel
