// A simulated machine: kernel objects, processes, its clock, timers and ready
// queue. It runs inside a World (kernel/world.hpp), which owns the run loop and
// virtual time for every node. The public part is the host API (the trusted
// side: test harness, scenario runner, supervisor bootstrap); processes use Sys.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernel/cspace.hpp"
#include "kernel/faults.hpp"
#include "kernel/handle.hpp"
#include "kernel/limits.hpp"
#include "kernel/objects.hpp"
#include "kernel/pool.hpp"
#include "kernel/process.hpp"
#include "kernel/real_io.hpp"
#include "kernel/result.hpp"
#include "kernel/rng.hpp"
#include "kernel/sanitizer.hpp"
#include "kernel/stack_pool.hpp"
#include "kernel/sys.hpp"
#include "kernel/trace.hpp"

namespace persim::kernel {

struct NodeConfig {
  std::uint64_t seed = 1;
  std::size_t stack_bytes = stack_bytes_default;
  std::size_t guarded_stacks_max = guarded_stacks_max_default;
  // Virtual time each kernel call costs. Zero makes time advance only by sleeps.
  std::uint64_t kernel_call_cost_ns = 100;
  HandleValidation handle_validation = HandleValidation::full;
};

struct NodeStats {
  std::size_t processes = 0;  // process objects, live or dead-but-referenced
  std::size_t live_processes = 0;
  std::size_t capabilities = 0;
  std::size_t endpoints = 0;
  std::size_t notifications = 0;
  std::size_t replies = 0;
  std::size_t stacks_in_use = 0;
  std::size_t ready = 0;
  std::size_t timers = 0;
  std::uint64_t kernel_calls = 0;
  std::uint64_t switches = 0;
};

// What the host may learn about a capability (never its bits or the object).
struct CapInfo {
  ObjectType type;
  Rights rights;
  std::uint64_t badge;
  bool operator==(const CapInfo&) const = default;
};

class Sys;
class World;

class Node {
 public:
  // Joins `world` (which must outlive the node), or, given none, a world of
  // its own with this node alone in it.
  explicit Node(NodeConfig config = {}, World* world = nullptr);
  // Kills every remaining process (their stacks unwind) and leaves the world.
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // ---- Host API. Not for use from inside a process.

  // A process that does not run yet; capabilities can be installed in it.
  Result<ProcessId> create_process(std::string name);
  // Starts an embryo: it becomes ready and runs `entry` on its own fiber.
  // Errors: bad_handle (unknown id), invalid_argument (not an embryo).
  Status start(ProcessId pid, Entry entry);
  Result<ProcessId> spawn(std::string name, Entry entry);

  // Create an object; the holder gets the original capability with all rights.
  Result<Handle> create_endpoint(ProcessId holder);
  Result<Handle> create_notification(ProcessId holder);
  Result<Handle> create_process_cap(ProcessId holder, ProcessId target);
  // Derive a child of `from`'s capability `h` into `to`, rights ANDed with
  // `mask`, optionally badged (only if unbadged). Needs no right: the host is trusted.
  Result<Handle> grant(ProcessId from, Handle h, ProcessId to, Rights mask, std::uint64_t badge = 0);

  // Programs: named entry points processes can be created to run, by the host
  // (`start`) or by a process holding a factory capability
  // (Sys::process_create). Errors: invalid_argument (empty, over
  // program_name_bytes_max, taken, or programs_max reached).
  Status register_program(std::string name, Entry entry);
  // A factory: the authority to create processes running registered programs.
  Result<Handle> create_factory(ProcessId holder);
  // Installs a child of `from`'s capability `h` in the embryo `to` under `name`
  // in its initial table (see Sys::process_grant). Errors: bad_handle,
  // invalid_argument, cspace_full.
  Result<Handle> grant_named(ProcessId from, Handle h, ProcessId to, std::string name, Rights mask,
                             std::uint64_t badge = 0);
  // Names a capability the embryo `pid` already holds in its initial table.
  // Errors: bad_handle, invalid_argument (started, or the name is taken).
  Status name_grant(ProcessId pid, std::string name, Handle h);
  // Starts an embryo running a registered program. Errors: as start, not_found.
  Status start_program(ProcessId pid, std::string_view program);

  // Signals a notification through the capability `h` of process `holder` (it
  // needs send), as the host: how real input reaches a server that waits for
  // it. Errors: lookup errors, object_dead.
  Status signal(ProcessId holder, Handle h);

  // Kill a process wherever it is suspended. Errors: bad_handle, object_dead.
  Status kill(ProcessId pid);
  // The fault hooks: kill at a kernel call, message delay (kernel/faults.hpp).
  FaultHooks& faults() { return faults_; }
  const FaultHooks& faults() const { return faults_; }
  // Run `event` on the run loop at virtual time `time_ns` (ordered by time, then
  // by the order of registration).
  void at(std::uint64_t time_ns, std::function<void(Node&)> event);

  // Runs the node's world (World::run) until quiescent, the time limit or
  // stop(): for a node alone in its world, the node's run. May be called again.
  RunOutcome run(RunLimits limits = {});
  // Stops the world's run (World::stop).
  void stop();
  World& world() { return *world_; }

  // ---- Inspection.
  // The node's clock: where its virtual time stands (World::now_ns for the world's).
  std::uint64_t now_ns() const { return now_ns_; }
  // When the node's next event is: its clock if a process is ready, else its
  // next live timer's deadline (at least its clock), else UINT64_MAX. Drops
  // the timers at the head that nobody waits on any more.
  std::uint64_t next_event_ns();
  std::uint64_t trace_hash() const { return trace_hash_; }
  const AuditLog& audit() const { return audit_; }
  NodeStats stats() const;
  const NodeConfig& config() const { return config_; }
  bool alive(ProcessId pid) const;
  std::optional<ProcessState> state(ProcessId pid) const;
  std::optional<ExitReason> exit_reason(ProcessId pid) const;
  std::uint64_t kernel_calls(ProcessId pid) const;
  // The name given at creation; empty once the process object is freed.
  std::string name(ProcessId pid) const;
  std::optional<CapInfo> inspect(ProcessId pid, Handle h) const;
  // Every process object, live or dead but still designated, in index order.
  std::vector<ProcessId> process_ids() const;
  // The process's initial table, as installed (empty for an unknown process).
  std::vector<NamedGrant> grants(ProcessId pid) const;
  std::vector<Handle> handles(ProcessId pid) const;
  // Walks every table and queue; returns a description of each inconsistency.
  std::vector<std::string> check_invariants() const;

  // Events go to `sink` as they happen (never during ~Node). Null to stop.
  void set_trace_sink(TraceSink* sink) { sink_ = sink; }

 private:
  friend class Sys;
  friend class FaultHooks;
  friend class World;

  // ---- The node's part of the world's run loop (node.cpp).
  enum class SliceEnd : std::uint8_t {
    stopped,       // a stop was requested
    past_horizon,  // the node's clock passed the horizon
    idle,          // nothing ready: the world decides what happens next
  };
  void begin_run(std::uint64_t until_ns);
  // Fires due timers and runs ready processes (each until it blocks) while
  // the clock is within `horizon_ns`.
  SliceEnd run_slice(std::uint64_t horizon_ns);
  // The clock jumps forward to `time_ns` (never back).
  void advance_to(std::uint64_t time_ns) { now_ns_ = std::max(now_ns_, time_ns); }
  void halt() {
    stop_requested_ = true;
    update_handoff_until();
  }

  struct Timer {
    std::uint64_t deadline_ns;
    std::uint64_t seq;
    ProcessId sleeper;  // null for host events
  };
  struct TimerLater {
    bool operator()(const Timer& a, const Timer& b) const {
      return a.deadline_ns != b.deadline_ns ? a.deadline_ns > b.deadline_ns : a.seq > b.seq;
    }
  };

  // Where the send side of an IPC stands after validation: the capabilities to
  // transfer, looked up in the sender's space.
  struct SendPlan {
    std::uint64_t badge = 0;
    // The first cap_count entries are set by validate_message; the rest are
    // left unset, so a plain message costs no clearing.
    CapNode* transfers[msg_caps_max];
  };

  Process* find(ProcessId pid) const;
  Process* find_live(ProcessId pid) const;

  // ---- Capabilities (cdt.cpp)
  Result<CapNode*> make_cap(Process& holder, ObjectHeader* object, Rights rights, std::uint64_t badge, CapNode* parent);
  void destroy_cap(CapNode* cap, SlotEnd end);
  void revoke_descendants(CapNode* cap);
  void release_all_caps(Process& p);
  void object_unreferenced(ObjectHeader* object);
  Result<CapNode*> derive_cap(Process& holder, CapNode* from, Process& to, Rights mask, std::uint64_t badge);

  // ---- Processes made by processes (process_calls.cpp)
  Status install_named(Process& from, CapNode* cap, Process& to, std::string_view name, Rights mask,
                       std::uint64_t badge);
  void unwatch(Process& p);
  void unbind(Process& p);
  void notify_exit(Process& p);
  // A signal: wakes a waiter, else the bound receiver, else stays pending.
  void notify(Notification& n, std::uint64_t badge);
  // A pending signal on the process's bound notification, if any, as a receive result.
  bool take_bound_notification(Process& self, Received& result);
  // Wakes a process blocked in receive with its bound notification's signal.
  void deliver_notification(Process& receiver, std::uint64_t word);

  // ---- IPC (ipc.cpp)
  // The functions marked inline are the round trip's steps. They are defined
  // in ipc.cpp, the only file that calls them, and always inlined there (GCC
  // would keep deliver and consume_reply out of line: ~15 instructions of
  // calling convention each), so that each kernel-side half of a round trip is
  // one function with no calls in it.

  // Checks a message's bounds and looks up the capabilities it transfers (each
  // needs grant) into `plan`. On a lookup error, `*failed` names the handle.
  inline Error validate_message(Process& sender, const Message& m, SendPlan& plan, Handle* failed);
  Error lookup_transfers(Process& sender, const Message& m, SendPlan& plan, Handle* failed);
  // Moves a validated call from `sender` to `receiver`; the receiver has room.
  inline void deliver(const SendPlan& plan, Process& sender, Process& receiver);
  // Copies transferred capabilities into `to` as children of the sender's.
  void transfer_caps(const SendPlan& plan, const Message& from, Process& to, Message& into);
  // Receive side: takes the first queued caller that still validates.
  // Errors: would_block (none queued), cspace_full (no room for the first).
  inline Error take_queued_sender(Endpoint& ep, Process& receiver);
  Error take_queued_sender_slow(Endpoint& ep, Process& receiver);
  // The receive half of receive and reply_receive. receive_now: `self` takes
  // its bound notification's signal or the first queued call (into `request`
  // and `*result`); would_block if there is neither. wait_as_receiver: then
  // it waits on `ep` through the capability `via` (the caller suspends it).
  inline Error receive_now(Process& self, Endpoint& ep, Message& request, Received* result);
  inline void wait_as_receiver(Process& self, Endpoint& ep, const CapNode* via);
  // Reply side of reply/reply_receive: validates, copies, consumes the reply
  // capability. On success `*caller` is the process to wake.
  inline Error answer(Process& self, Handle reply, const Message& m, Process** caller, Handle* failed);
  std::uint32_t slots_needed(const Message& m) const { return m.cap_count + 1; }
  // The one-shot reply capability of `caller`'s call, minted into `receiver`
  // (which has room): send right only, no parent. Consumed by the reply.
  inline Cap<Reply> mint_reply(Process& receiver, Process& caller);
  // Deletes a reply capability whose reply object no longer names a caller (the
  // reply was sent, or the caller is gone) and, with its last capability, the
  // reply object.
  inline void consume_reply(CapNode* cap);

  // ---- Scheduling (node.cpp)
  void make_ready(Process& p, Error e = Error{}, std::uint64_t value = 0);
  void detach(Process& p);
  // Suspends `self` (already queued or marked where it waits). Runs `direct`
  // next if given and allowed (a hand-off), else the next ready process or the
  // run loop. Inline: the IPC hand-off is on every call and every reply.
  void block(Process& self, Process* direct);
  void block_slow(Process& self, Process* direct);
  // block_slow without the switch, for callers that make it themselves: marks
  // where `self` goes and returns the context to switch to now (a process's or
  // the run loop's), or null if `self` runs on (a yield with nobody else ready).
  Context* block_target(Process& self, Process* direct);
  // block, for callers that make the switch themselves: returns the process to
  // switch to now, or null once it has blocked the ordinary way and resumed.
  Process* block_or_hand_off(Process& self, Process* direct) {
    assert(current_ == &self && direct != &self);
    if (direct != nullptr && may_hand_off()) [[likely]] {
      --handoff_budget_;
      return direct;
    }
    block_slow(self, direct);
    return nullptr;
  }
  // A hand-off keeps the run loop out, so it is allowed only while no timer is
  // due, the node's horizon (the run's time limit, for a node alone) is not
  // passed and nobody asked to stop; those
  // three are folded into handoff_until_ns_ whenever one changes.
  bool may_hand_off() const {
    assert(handoff_until_ns_ == handoff_until());
    return handoff_budget_ > 0 && now_ns_ < handoff_until_ns_;
  }
  std::uint64_t handoff_until() const {
    const std::uint64_t past_limit_ns = run_until_ns_ == UINT64_MAX ? UINT64_MAX : run_until_ns_ + 1;
    return stop_requested_ ? 0 : std::min(next_deadline(), past_limit_ns);
  }
  void update_handoff_until() { handoff_until_ns_ = handoff_until(); }
  // Always inline: a switch in its own frame would leave that frame's return
  // to be mispredicted after the switch (see Sys::call) and one more frame
  // for a kill to unwind.
  [[gnu::always_inline]] void switch_to(Context& from, Context& to);
  [[gnu::always_inline]] void switch_to_process(Context& from, Process& to);
  // `to` (suspended) becomes the running process; returns its context, to switch to.
  Context& make_current(Process& to) {
    assert(to.context.fiber && "switching to a process that is not suspended");
    current_ = &to;
    to.state = ProcessState::running;
    return to.context;
  }
  boost::context::fiber start_fiber(Process& p, Entry entry);
  ExitReason run_entry(Process& p, Entry& entry);
  // A kill's unwinding (node.cpp): the stack of a dead process unwound from
  // its suspension point to run_entry.
  [[noreturn]] void unwind_killed(Context& self);
  void on_exit(Process& p, ExitReason reason);
  void kill_suspended(Process& p);
  [[noreturn]] void kill_running(Process& p);
  void reap();
  void maybe_free(Process& p);
  void fire_due(std::uint64_t until_ns);
  // Pops the timers at the top of the heap whose sleeper is gone or awake.
  void drop_stale_timers();
  // A process's timer still counts while it sleeps, or waits in receive_until, on it.
  static bool timer_is_live(const Process& p, std::uint64_t seq) {
    return p.timer_seq == seq &&
           (p.state == ProcessState::sleeping || p.state == ProcessState::blocked_receive ||
            p.state == ProcessState::blocked_call || p.state == ProcessState::blocked_reply);
  }
  std::uint64_t next_deadline() const { return timers_.empty() ? UINT64_MAX : timers_.front().deadline_ns; }
  void add_timer(std::uint64_t deadline_ns, ProcessId sleeper, std::function<void(Node&)> event);

  // ---- Trace and audit
  // Folds an event into the trace hash and hands it to the sink. Inline: every
  // kernel call makes at least one.
  void trace(Op op, const Process* p, Error e = Error{}, std::uint64_t arg = 0, const Process* peer = nullptr);
  [[gnu::noinline]] void emit(const TraceEvent& ev) { sink_->on_event(ev); }
  void audit_failure(Op op, const Process& p, Error e, Handle h);

  // What every kernel call and switch touches comes first, within its first
  // 120 bytes (the IPC round trip reads and writes nothing else of the node).
  NodeConfig config_;
  std::uint64_t now_ns_ = 0;
  std::uint64_t trace_hash_;
  TraceSink* sink_ = nullptr;
  Context* switch_from_ = nullptr;  // set by whoever switches; read by whoever resumes
  Process* current_ = nullptr;
  std::uint64_t handoff_until_ns_ = UINT64_MAX;  // see may_hand_off
  std::uint64_t kernel_calls_ = 0;
  std::uint64_t switches_ = 0;
  std::size_t spare_replies_ = 0;  // Process::spare_reply nodes: allocated, but no capability or object
  std::uint32_t handoff_budget_ = 0;

  Rng rng_;
  AuditLog audit_;

  StackPool stacks_;
  Pool<Process, 256> processes_;
  Pool<CapNode> caps_;
  Pool<Endpoint> endpoints_;
  Pool<Notification> notifications_;
  Pool<Reply> replies_;
  Pool<Factory, 16> factories_;
  Pool<Buffer, 64> buffers_;
  std::map<std::string, Entry, std::less<>> programs_;  // ordered: deterministic
  FaultHooks faults_;
  // Holds `self`'s call back if a delay rule draws it (may suspend).
  void maybe_delay_call(Process& self);
  void free_spare_reply(Process& p);

  // ProcessId index -> process (null when the index is free). Index 0 unused.
  std::vector<Process*> table_;
  std::vector<std::uint32_t> generations_;
  std::vector<std::uint32_t> free_indices_;

  ProcessQueue ready_;
  std::vector<Timer> timers_;  // min-heap by (deadline, seq)
  std::map<std::uint64_t, std::function<void(Node&)>> events_;  // host events by timer seq
  std::uint64_t timer_seq_ = 0;
  std::uint64_t processes_created_ = 0;  // names each process's random stream

  Context scheduler_;
  std::vector<Process*> reap_;  // dead processes whose fiber or memory awaits the run loop
  std::uint64_t run_until_ns_ = UINT64_MAX;  // the current slice's horizon
  bool stop_requested_ = false;

  std::unique_ptr<World> own_world_;  // a node given no world has one of its own
  World* world_;
};

inline void Node::trace(Op op, const Process* p, Error e, std::uint64_t arg, const Process* peer) {
  // Folded from words, not from a TraceEvent: the event is only built when a
  // sink wants it.
  const ProcessId who = p != nullptr ? p->id : ProcessId{};
  const std::uint32_t peer_index = peer != nullptr ? peer->id.index : 0;
  const auto error = static_cast<std::uint8_t>(e);
  trace_hash_ = trace_fold(trace_hash_, now_ns_, trace_who(who.index, who.generation),
                           trace_what(op, error, 0, peer_index), arg);
  if (sink_ != nullptr) [[unlikely]] emit(TraceEvent{now_ns_, who.index, who.generation, op, error, 0, peer_index, arg});
}

inline void Node::switch_to(Context& from, Context& to) {
  ++switches_;
  switch_from_ = &from;
  EhState& eh = thread_eh();  // each context its own record of the exceptions it handles
  from.eh = eh;
  eh = to.eh;
  void* fake_stack = nullptr;
  sanitizer::start_switch(&fake_stack, to.stack.bottom, to.stack.size);
  {
    boost::context::fiber resumer = std::move(to.fiber).resume();
    // Back on `from`'s stack. Whoever switched here named their context in
    // switch_from_ (null if they terminated) and `resumer` is their continuation.
    PooledStackAllocator::Bounds came_from;
    sanitizer::finish_switch(fake_stack, &came_from.bottom, &came_from.size);
    if (switch_from_ != nullptr) {
      switch_from_->fiber = std::move(resumer);
      // The run loop's stack, learnt, not known in advance; only the sanitizer's switch hooks use it.
      if constexpr (sanitizer::enabled) {
        if (switch_from_ == &scheduler_) scheduler_.stack = came_from;
      }
    }
  }  // nothing with a destructor is left in this frame: the unwinding has no cleanup to run here
  // We are dead: the reaper wants our stack unwound. Out of line: started here,
  // inline, AddressSanitizer's no-return handling ran in the program's frame and
  // tripped on the stack's shadow (false stack-buffer-overflow reports).
  if (from.unwind) [[unlikely]] unwind_killed(from);
}

inline void Node::switch_to_process(Context& from, Process& to) { switch_to(from, make_current(to)); }

inline void Node::block(Process& self, Process* direct) {
  if (Process* next = block_or_hand_off(self, direct)) switch_to_process(self.context, *next);
}

// call and reply_receive switch fibers here, inline in the program's code,
// rather than inside an out-of-line kernel function. Why: after a switch the
// CPU's return-address predictor holds the other fiber's return addresses, so
// each `ret` the resumed fiber makes out of a frame it entered before the
// switch is mispredicted (measured here: ~12 ns each, two per round trip when
// the switch sat inside Sys::call). Switching in the caller's frame leaves
// nothing to return from: what follows the switch is a fresh, predicted call.
inline Status Sys::call(Cap<Endpoint> ep, const Message& request, Message& response) {
  Process* next = nullptr;
  if (const Error e = call_begin(ep, request, response, &next, UINT64_MAX); e != Error{}) return e;
  if (next != nullptr) node_.switch_to_process(self_.context, *next);
  return call_end(response);
}

inline Status Sys::call_until(Cap<Endpoint> ep, const Message& request, Message& response, std::uint64_t deadline_ns) {
  Process* next = nullptr;
  if (const Error e = call_begin(ep, request, response, &next, deadline_ns); e != Error{}) return e;
  if (next != nullptr) node_.switch_to_process(self_.context, *next);
  return call_end(response);
}

// Inline, and switching in the program's frame: a process killed while it
// waits in receive has no kernel frame to unwind.
inline Result<Received> Sys::receive(Cap<Endpoint> ep, Message& request) {
  return receive_until(ep, request, UINT64_MAX);
}

inline Result<Received> Sys::receive_until(Cap<Endpoint> ep, Message& request, std::uint64_t deadline_ns) {
  Received result;
  Context* next = nullptr;
  if (const Error e = receive_begin(ep, request, deadline_ns, &result, &next); e != Error{}) return e;
  if (next != nullptr) node_.switch_to(self_.context, *next);
  return receive_end(result);
}

inline Result<Received> Sys::reply_receive(Cap<Reply> reply, const Message& response, Cap<Endpoint> ep,
                                           Message& request) {
  Received result;
  Process* next = nullptr;
  if (const Error e = reply_receive_begin(reply, response, ep, request, &result, &next); e != Error{}) return e;
  if (next != nullptr) node_.switch_to_process(self_.context, *next);
  return receive_end(result);
}

inline Status Sys::call_end(const Message& response) {
  const Error e = self_.wake_error;
  node_.trace(Op::call, &self_, e, response.length);
  if (e != Error{}) return e;
  return {};
}

inline Result<Received> Sys::receive_end(const Received& result) {
  const Error e = self_.wake_error;
  self_.receive_message = nullptr;
  self_.receive_result = nullptr;
  node_.trace(Op::receive, &self_, e, result.badge);
  if (e != Error{}) return e;
  return result;
}

inline bool Sys::enter() {
  if (self_.state == ProcessState::dead) [[unlikely]] return false;  // unwinding after a kill
  ++self_.kernel_calls;
  ++node_.kernel_calls_;
  node_.now_ns_ += node_.config_.kernel_call_cost_ns;
  if (self_.kernel_calls == self_.kill_at_call) [[unlikely]] {
    node_.faults_.count_kill();
    node_.kill_running(self_);
  }
  return true;
}

}  // namespace persim::kernel
