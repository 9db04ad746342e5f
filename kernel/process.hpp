// The process kernel object: a fiber, a capability space and its IPC state.
// Kernel-internal; programs see it only through Sys.
#pragma once

#include <boost/context/fiber.hpp>
#include <cassert>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernel/cspace.hpp"
#include "kernel/eh.hpp"
#include "kernel/message.hpp"
#include "kernel/objects.hpp"
#include "kernel/rng.hpp"
#include "kernel/stack_pool.hpp"

namespace persim::kernel {

class Sys;
class Node;

// Host-side name of a process: table index and generation. Never given to
// processes (no call reveals an object's identity).
struct ProcessId {
  std::uint32_t index = 0;  // 0 is never a process
  std::uint32_t generation = 0;
  constexpr bool is_null() const { return index == 0; }
  constexpr bool operator==(const ProcessId&) const = default;
};

enum class ProcessState : std::uint8_t {
  embryo,         // created, not started: capabilities may be installed
  ready,          // in the ready queue
  running,
  blocked_call,   // queued on an endpoint, waiting for a receiver
  blocked_reply,  // delivered, waiting for the reply
  blocked_receive,
  blocked_wait,   // waiting on a notification
  sleeping,
  dead,
};
const char* to_string(ProcessState s) noexcept;


using Entry = std::function<void(Sys&)>;

struct NamedGrant {
  std::string name;
  Handle handle;
};

// A suspended execution context: a process, or the run loop itself.
struct Context {
  boost::context::fiber fiber;
  // Set when the process is dead: the next resume unwinds its stack.
  bool unwind = false;
  // Where a kill's unwinding ends: a KillLanding (kernel/node.cpp) in the
  // process's entry frame, set before the program runs.
  void* landing = nullptr;
  // Stack bounds, for the sanitizer's switch annotations.
  PooledStackAllocator::Bounds stack;
  // Its C++ exception-handling record while it is not running (kernel/eh.hpp).
  EhState eh;
};

struct Process : ObjectHeader {
  Process(Node& n, ProcessId i, std::string nm, std::uint32_t salt, Rng r)
      : ObjectHeader(ObjectType::process), id(i), cspace(salt), node(n), name(std::move(nm)), rng(r) {}

  // What a kernel call or an IPC round trip reads or writes comes first (about
  // four cache lines); the rest after it.
  ProcessId id;
  ProcessState state = ProcessState::embryo;
  // Set by whoever wakes it; read when it resumes.
  Error wake_error{};
  Handle send_handle;  // blocked_call: the endpoint capability used
  std::uint64_t kernel_calls = 0;
  // Fault hook: the process is killed when it makes this kernel call (1-based).
  std::uint64_t kill_at_call = UINT64_MAX;
  // Fault hook: each call it makes is held back, with this probability (per
  // million), for a uniform 1..delay_ns_max virtual ns before it is sent.
  std::uint64_t delay_ns_max = 0;
  CapSpace cspace;
  Context context;

  // Queue links: the ready queue or one wait queue.
  Process* queue_prev = nullptr;
  Process* queue_next = nullptr;
  ProcessQueue* queue = nullptr;

  // IPC in progress. Pointers into this process's own (suspended) stack.
  const Message* send_message = nullptr;  // blocked_call: the request
  Message* reply_message = nullptr;       // blocked_call/blocked_reply: where the reply goes
  Message* receive_message = nullptr;     // blocked_receive: where the request goes
  Received* receive_result = nullptr;     // blocked_receive: badge and reply handle
  Reply* awaited_reply = nullptr;         // blocked_reply: the reply object it waits on
  // The last reply capability this process consumed, kept so the next call
  // delivered here reuses it instead of allocating (a server loop mints and
  // consumes one per call): in no slot, counted nowhere, designating a Reply
  // with no caller and no capabilities. Freed with the process's capabilities.
  CapNode* spare_reply = nullptr;
  Endpoint* blocked_on = nullptr;         // blocked_call/blocked_receive
  // blocked_call/blocked_receive/blocked_wait: the capability it waits
  // through. If that capability goes (revoked, or its holder's ancestor died),
  // the wait ends with severed: authority is checked for the whole wait.
  const CapNode* blocked_via = nullptr;
  std::uint64_t timer_seq = 0;            // sleeping: the timer that wakes it
  // The notification its receive also waits for (Sys::notification_bind).
  Notification* bound = nullptr;

  Node& node;
  std::string name;
  ExitReason exit_reason = ExitReason::none;
  bool reaped = false;  // dead and its fiber is gone: the memory may be freed
  std::uint32_t delay_per_million = 0;
  Rng rng;
  Notification* waiting_on = nullptr;     // blocked_wait
  std::uint64_t wake_value = 0;           // set with wake_error by some wakers

  // Its initial capability table: what its creator granted it, by name. The
  // handles are as installed; one the process deleted since is simply stale.
  std::vector<NamedGrant> grants;
  // Signalled with `exit_badge` when this process exits (Sys::process_watch).
  Notification* exit_watch = nullptr;
  std::uint64_t exit_badge = 0;
  // How many capabilities it held when it died: what its death severed.
  std::uint32_t caps_released = 0;
};

// The queue operations are inline: IPC takes a receiver off a queue and puts
// one on it on every round trip.

inline void ProcessQueue::push_back(Process* p) {
  assert(p->queue == nullptr);
  p->queue = this;
  p->queue_prev = tail_;
  p->queue_next = nullptr;
  if (tail_ != nullptr) {
    tail_->queue_next = p;
  } else {
    head_ = p;
  }
  tail_ = p;
  ++size_;
}

inline void ProcessQueue::remove(Process* p) {
  assert(p->queue == this);
  if (p->queue_prev != nullptr) {
    p->queue_prev->queue_next = p->queue_next;
  } else {
    head_ = p->queue_next;
  }
  if (p->queue_next != nullptr) {
    p->queue_next->queue_prev = p->queue_prev;
  } else {
    tail_ = p->queue_prev;
  }
  p->queue = nullptr;
  p->queue_prev = p->queue_next = nullptr;
  --size_;
}

// remove() of the head, which has no predecessor to unlink (the IPC hand-off
// takes the first waiting receiver on every call).
inline Process* ProcessQueue::pop_front() {
  Process* p = head_;
  if (p == nullptr) return nullptr;
  assert(p->queue == this && p->queue_prev == nullptr);
  head_ = p->queue_next;
  if (head_ != nullptr) {
    head_->queue_prev = nullptr;
  } else {
    tail_ = nullptr;
  }
  p->queue = nullptr;
  p->queue_next = nullptr;
  --size_;
  return p;
}

inline bool ProcessQueue::contains(const Process* p) const { return p->queue == this; }

}  // namespace persim::kernel
