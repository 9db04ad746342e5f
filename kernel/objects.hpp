// Kernel objects and the capability nodes that designate them. Kernel-internal:
// processes see only handles.
#pragma once

#include <cassert>
#include <cstdint>
#include <vector>

#include "kernel/handle.hpp"
#include "kernel/rights.hpp"

namespace persim::kernel {

// Common header of every kernel object. `cap_refs` counts the capabilities that
// designate it; endpoints, notifications and replies are destroyed when it
// reaches zero. Processes live until killed or exited (and then until their
// last capability goes).
struct ObjectHeader {
  explicit ObjectHeader(ObjectType t) : type(t) {}
  ObjectType type;
  std::uint32_t cap_refs = 0;
};

// An intrusive FIFO of processes. A process is in at most one queue at a time
// (the ready queue, or one wait queue), so the links live in the process.
// The operations are defined in process.hpp, where Process is complete.
class ProcessQueue {
 public:
  bool empty() const { return head_ == nullptr; }
  std::uint32_t size() const { return size_; }
  Process* front() const { return head_; }
  inline void push_back(Process* p);
  inline Process* pop_front();
  inline void remove(Process* p);
  inline bool contains(const Process* p) const;

 private:
  Process* head_ = nullptr;
  Process* tail_ = nullptr;
  std::uint32_t size_ = 0;
};

struct Endpoint : ObjectHeader {
  Endpoint() : ObjectHeader(ObjectType::endpoint) {}
  ProcessQueue senders;    // blocked in call, waiting for a receiver
  ProcessQueue receivers;  // blocked in receive, waiting for a caller
};

struct Notification : ObjectHeader {
  Notification() : ObjectHeader(ObjectType::notification) {}
  std::uint64_t word = 0;  // OR of the badges signalled since the last wait
  bool pending = false;    // signalled since the last wait (an unbadged signal sets no bit)
  ProcessQueue waiters;
  Process* bound = nullptr;  // the process whose receive it also wakes, if any
  // Processes whose exit signals this notification (each with the badge of the
  // capability used to watch). Unlinked on either side's end.
  std::vector<Process*> watched;
};

// Authority to create processes running the node's registered programs.
struct Factory : ObjectHeader {
  Factory() : ObjectHeader(ObjectType::factory) {}
};

// Bytes that travel by capability: bulk data (a checkpoint image) moves in one
// call and one message instead of many. Reading needs `receive`, writing `send`.
struct Buffer : ObjectHeader {
  explicit Buffer(std::size_t size) : ObjectHeader(ObjectType::buffer), bytes(size) {}
  std::vector<std::byte> bytes;
};

// One-shot reply capability of a call in progress. `caller` is null once the
// caller went away (killed); replying then reports peer_died.
struct Reply : ObjectHeader {
  Reply() : ObjectHeader(ObjectType::reply) {}
  Process* caller = nullptr;
};

// A capability: an entry in one process's capability space and a node in the
// capability derivation tree (CDT) of its object. One cache line each: a
// lookup, a mint or a consume touches one line, not two.
struct alignas(64) CapNode {
  ObjectHeader* object = nullptr;
  Process* owner = nullptr;
  std::uint32_t slot = 0;
  Rights rights;
  std::uint64_t badge = 0;  // 0: unbadged

  CapNode* parent = nullptr;
  CapNode* first_child = nullptr;
  CapNode* next_sibling = nullptr;
  CapNode* prev_sibling = nullptr;
};
static_assert(sizeof(CapNode) == 64, "a capability node is one cache line");

}  // namespace persim::kernel
