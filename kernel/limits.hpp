// Named limits of the kernel. Every table, queue and loop is bounded by one of
// these; the relations between them are checked at compile time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace persim::kernel {

// A handle is 32 bits: slot index (low bits) and generation (high bits), the
// whole word XOR-ed with a per-process salt.
inline constexpr unsigned handle_slot_bits = 12;
inline constexpr unsigned handle_generation_bits = 20;
static_assert(handle_slot_bits + handle_generation_bits == 32, "handle fields must cover the word");

// Capability slots one process may hold. Cost: 16 bytes a slot, grown on
// demand, plus a 64-byte capability node per capability held.
inline constexpr std::uint32_t cspace_slots_max = 1u << handle_slot_bits;
// A slot whose generation reaches this is retired, never reused: a stale handle
// can never come to name a new capability by wrapping around.
inline constexpr std::uint32_t generation_max = (1u << handle_generation_bits) - 1;

// IPC message bounds. Cost: a Message is 288 bytes on the stack of each party;
// only `length` bytes are copied.
inline constexpr std::size_t msg_bytes_max = 240;
inline constexpr std::size_t msg_caps_max = 4;
static_assert(msg_caps_max < cspace_slots_max);

// Process objects on one node, live or dead but still designated by a
// capability (ProcessId index width; index 0 is never used).
inline constexpr std::uint32_t processes_max = 1u << 22;

// Default fiber stack. Only touched pages become resident: a process blocked in
// receive uses one or two 4 KiB pages of it.
inline constexpr std::size_t stack_bytes_default = 64 * 1024;
inline constexpr std::size_t stack_bytes_min = 16 * 1024;
// Stacks get a guard page while fewer than this many are guarded: each guard
// splits the mapping (two VMAs), and Linux allows ~65530 per process.
inline constexpr std::size_t guarded_stacks_max_default = 16 * 1024;
inline constexpr std::size_t stacks_per_chunk = 256;

// Direct process-to-process switches (IPC handoff) allowed before control goes
// back to the run loop, so a ping-pong pair cannot starve the ready queue.
inline constexpr std::uint32_t handoff_budget_max = 64;

// Named grants a process is started with (its initial capability table), and
// the longest grant name. Cost: a name and a handle per grant, in the process.
inline constexpr std::size_t grants_max = 32;
inline constexpr std::size_t grant_name_bytes_max = 64;
// Programs a node can run (names registered by the host) and the longest name.
inline constexpr std::size_t programs_max = 1024;
inline constexpr std::size_t program_name_bytes_max = 64;

// One buffer object (bulk data by capability). Cost: the bytes themselves.
inline constexpr std::size_t buffer_bytes_max = std::size_t{64} << 20;

// Audit records kept per node (a ring; counts are kept for all).
inline constexpr std::size_t audit_records_max = 1024;

}  // namespace persim::kernel
