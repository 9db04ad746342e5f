// Structured events out of the kernel: every kernel call's outcome and every
// lifecycle change is folded into the node's trace hash, and optionally handed
// to a sink (timelines, JSON Lines and Perfetto traces are built on it).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "kernel/handle.hpp"
#include "kernel/limits.hpp"
#include "kernel/result.hpp"

namespace persim::kernel {

enum class Op : std::uint16_t {
  // kernel calls
  endpoint_create = 1,
  notification_create,
  derive,
  delete_cap,
  revoke,
  call,
  receive,
  reply,
  reply_receive,
  signal,
  wait,
  poll,
  kill,
  sleep,
  yield,
  // lifecycle and run-loop events
  spawn,
  start,
  exit,
  crash,      // the process's entry threw
  death,      // killed (by a capability holder, the host, or a fault)
  wake,       // a blocked process became ready
  deliver,    // a message reached a receiver
  timer,      // a host event fired
  grant,      // the host installed a capability
};
std::string_view to_string(Op op) noexcept;

// Fixed layout so the hash is the same on every build of the same source.
struct TraceEvent {
  std::uint64_t time_ns;
  std::uint32_t process;  // ProcessId index (0 = the node itself)
  std::uint32_t process_generation;
  Op op;
  std::uint8_t error;  // 0: success, else kernel::Error
  std::uint8_t reserved = 0;
  std::uint32_t peer = 0;  // the other process of an IPC event, if any
  std::uint64_t arg = 0;   // op-specific: badge, length, handle value, etc.
};
static_assert(sizeof(TraceEvent) == 32, "TraceEvent is hashed as 32 bytes");

class TraceSink {
 public:
  virtual ~TraceSink() = default;
  virtual void on_event(const TraceEvent& e) = 0;
};

// A lookup failure: who tried what with which handle, when.
struct AuditRecord {
  std::uint64_t time_ns;
  std::uint32_t process;
  std::uint32_t process_generation;
  Op op;
  Error error;
  std::uint32_t handle_raw;
};

// Per-node audit log of failed lookups: counts for all, the newest
// audit_records_max records in a ring.
class AuditLog {
 public:
  void record(const AuditRecord& r);
  std::uint64_t count(Error e) const { return counts_[static_cast<std::size_t>(e)]; }
  std::uint64_t total() const { return total_; }
  // Oldest first.
  std::vector<AuditRecord> records() const;

 private:
  std::array<std::uint64_t, error_count> counts_{};
  std::uint64_t total_ = 0;
  std::vector<AuditRecord> ring_;
  std::size_t next_ = 0;
};

}  // namespace persim::kernel
