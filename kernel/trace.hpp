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
  process_create,
  process_grant,
  process_start,
  process_watch,
  process_status,
  notification_bind,
  granted,
  buffer_create,
  buffer_write,
  buffer_read,
  buffer_size,
  // lifecycle and run-loop events
  spawn,
  start,
  exit,
  crash,      // the process's entry threw
  death,      // killed (by a capability holder, the host, or a fault)
  timer,      // a host event fired
  grant,      // the host installed a capability
};
std::string_view to_string(Op op) noexcept;

// Fixed layout: sinks see the same 32 bytes on every build of the same source.
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
static_assert(sizeof(TraceEvent) == 32, "TraceEvent keeps its fixed 32-byte layout for sinks");

// The trace hash: one fold step per event. Cheap, because every kernel call
// makes at least one event (XXH3 over the struct was the largest single cost of
// an IPC round trip), yet exact about what it promises:
// - same on every build: fields are packed into four 64-bit words by
//   arithmetic, never by reading the struct's bytes (no padding, no byte order);
// - sensitive to every field: each word is multiplied by an odd constant, a
//   bijection of 64-bit words, so a change in any one field changes the digest;
// - sensitive to every event: h -> mix(h ^ digest) is a bijection of h, so one
//   changed event changes every later hash.
// Not a cryptographic hash; it only has to tell runs apart.
constexpr std::uint64_t trace_mix(std::uint64_t h) {
  // The MurmurHash3 64-bit finaliser: xor-shifts and odd multiplies, each a bijection.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

// The words an event is folded as: `who` = process | generation << 32;
// `what` = op | error << 16 | reserved << 24 | peer << 32.
constexpr std::uint64_t trace_fold(std::uint64_t h, std::uint64_t time_ns, std::uint64_t who, std::uint64_t what,
                                   std::uint64_t arg) {
  // Odd constants (from SplitMix64 and wyhash): multiplying by one is invertible mod 2^64.
  const std::uint64_t digest = time_ns * 0x9e3779b97f4a7c15ull ^ who * 0xbf58476d1ce4e5b9ull ^
                               what * 0x94d049bb133111ebull ^ arg * 0xa0761d6478bd642full;
  return trace_mix(h ^ digest);
}

constexpr std::uint64_t trace_who(std::uint32_t process, std::uint32_t process_generation) {
  return process | std::uint64_t{process_generation} << 32;
}

constexpr std::uint64_t trace_what(Op op, std::uint8_t error, std::uint8_t reserved, std::uint32_t peer) {
  return static_cast<std::uint64_t>(op) | std::uint64_t{error} << 16 | std::uint64_t{reserved} << 24 |
         std::uint64_t{peer} << 32;
}

constexpr std::uint64_t trace_fold(std::uint64_t h, const TraceEvent& e) {
  return trace_fold(h, e.time_ns, trace_who(e.process, e.process_generation),
                    trace_what(e.op, e.error, e.reserved, e.peer), e.arg);
}

// Each field, changed alone, changes the fold (checked here for one event).
static_assert(trace_fold(1, {0, 0, 0, Op::call, 0, 0, 0, 0}) != trace_fold(1, {1, 0, 0, Op::call, 0, 0, 0, 0}));
static_assert(trace_fold(1, {0, 0, 0, Op::call, 0, 0, 0, 0}) != trace_fold(1, {0, 1, 0, Op::call, 0, 0, 0, 0}));
static_assert(trace_fold(1, {0, 0, 0, Op::call, 0, 0, 0, 0}) != trace_fold(1, {0, 0, 1, Op::call, 0, 0, 0, 0}));
static_assert(trace_fold(1, {0, 0, 0, Op::call, 0, 0, 0, 0}) != trace_fold(1, {0, 0, 0, Op::reply, 0, 0, 0, 0}));
static_assert(trace_fold(1, {0, 0, 0, Op::call, 0, 0, 0, 0}) != trace_fold(1, {0, 0, 0, Op::call, 1, 0, 0, 0}));
static_assert(trace_fold(1, {0, 0, 0, Op::call, 0, 0, 0, 0}) != trace_fold(1, {0, 0, 0, Op::call, 0, 1, 0, 0}));
static_assert(trace_fold(1, {0, 0, 0, Op::call, 0, 0, 0, 0}) != trace_fold(1, {0, 0, 0, Op::call, 0, 0, 1, 0}));
static_assert(trace_fold(1, {0, 0, 0, Op::call, 0, 0, 0, 0}) != trace_fold(1, {0, 0, 0, Op::call, 0, 0, 0, 1}));
static_assert(trace_fold(1, {0, 0, 0, Op::call, 0, 0, 0, 0}) != trace_fold(2, {0, 0, 0, Op::call, 0, 0, 0, 0}));

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
