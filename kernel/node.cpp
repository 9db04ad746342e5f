// The run loop, fiber switching, process lifecycle and the host API.
#include "kernel/node.hpp"

#include <unwind.h>

#include <algorithm>
#include <cassert>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kernel/sys.hpp"
#include "kernel/world.hpp"

namespace persim::kernel {

namespace ctx = boost::context;

Node::Node(NodeConfig config, World* world)
    : config_(config),
      trace_hash_(config.seed),
      rng_(config.seed),
      stacks_(config.stack_bytes, config.guarded_stacks_max),
      // Fault draws have a stream of their own: process streams are split(1), split(2), ...
      faults_(*this, rng_.split(UINT64_MAX)),
      table_(1, nullptr),
      generations_(1, 0),
      own_world_(world == nullptr ? std::make_unique<World>() : nullptr),
      world_(world != nullptr ? world : own_world_.get()) {
  world_->add(*this);
}

Node::~Node() {
  assert(current_ == nullptr && "a node cannot be destroyed from inside one of its processes");
  sink_ = nullptr;  // the sink may already be gone; shutdown kills are not events of the run
  for (std::size_t i = 1; i < table_.size(); ++i) {
    Process* p = table_[i];
    if (p != nullptr && p->state != ProcessState::dead) kill_suspended(*p);
  }
  reap();
  timers_.clear();
  update_handoff_until();
  events_.clear();
  assert(processes_.live() == 0 && caps_.live() == 0);
  world_->remove(*this);
}

// ---------------------------------------------------------------- scheduling

void Node::block_slow(Process& self, Process* direct) {
  if (Context* to = block_target(self, direct)) switch_to(self.context, *to);
}

Context* Node::block_target(Process& self, Process* direct) {
  assert(current_ == &self);
  if (may_hand_off()) {
    Process* next = direct != nullptr ? direct : ready_.pop_front();
    if (next != nullptr) --handoff_budget_;
    if (next == &self) {  // yield with nobody else ready
      self.state = ProcessState::running;
      return nullptr;
    }
    if (next != nullptr) return &make_current(*next);
  } else if (direct != nullptr) {
    make_ready(*direct, direct->wake_error, direct->wake_value);
  }
  current_ = nullptr;
  return &scheduler_;
}

void Node::detach(Process& p) {
  if (p.queue != nullptr) p.queue->remove(&p);
  if (p.awaited_reply != nullptr) {
    p.awaited_reply->caller = nullptr;
    p.awaited_reply = nullptr;
  }
  p.timer_seq = 0;
  p.blocked_on = nullptr;
  p.waiting_on = nullptr;
  p.blocked_via = nullptr;
  p.send_message = nullptr;
  p.receive_message = nullptr;
  p.receive_result = nullptr;
}

void Node::make_ready(Process& p, Error e, std::uint64_t value) {
  assert(p.state != ProcessState::dead && p.state != ProcessState::running && p.state != ProcessState::embryo);
  detach(p);
  p.wake_error = e;
  p.wake_value = value;
  p.state = ProcessState::ready;
  ready_.push_back(&p);
}

// ---------------------------------------------------------------- lifecycle

// How a killed process's stack unwinds. The reaper resumes the dead process
// once; `switch_to` sees `unwind` and calls `unwind_killed`, which starts a
// forced unwind (`_Unwind_ForcedUnwind`, the mechanism behind pthread_cancel)
// rather than throwing a C++ exception: a throw walks the stack twice (a search
// for a handler, then the cleanups), a forced unwind once, running every
// destructor on the way. The stop function below ends it at the process's entry
// frame (`run_entry`), where a longjmp lands: every frame the program entered
// has been cleaned up by then, and `run_entry` has nothing to clean up itself.
//
// A program's `catch (...)` sees the kill (as a foreign exception, which no
// typed handler matches) and must rethrow it with `throw;`, which goes on
// unwinding; one that swallows it ends the simulation with a message.
//
// A foreign exception cannot be caught while a handler is running (libstdc++
// terminates), so a process killed inside one of its own catch blocks unwinds
// as before this design, by a C++ throw of `Unwind`: two walks instead of one.
// (Each process has its own record of the handlers it runs, kernel/eh.hpp:
// only handlers of the killed process itself count.) And a rethrown foreign exception is counted as uncaught
// and never uncounted, so the count is put back once the kill has landed.
namespace {

// The kill as a C++ exception (see above). Not a std::exception.
struct Unwind {};

// "PERSKILL": not a C++ exception's class, so typed catch clauses never match it.
constexpr _Unwind_Exception_Class kill_exception_class = 0x5045'5253'4b49'4c4cULL;

struct KillLanding {
  std::jmp_buf jump;
  _Unwind_Exception exception;
  std::uintptr_t frame = 0;        // run_entry's canonical frame address
  unsigned int uncaught = 0;       // std::uncaught_exceptions() before the kill
};

void kill_swallowed(_Unwind_Reason_Code, _Unwind_Exception*) {
  std::fputs("persim: a killed process's catch (...) ended without rethrowing its kill (`throw;`)\n", stderr);
  std::abort();
}

// Called by the unwinder before each frame's cleanups, with the address it
// reports for the frame (the stack pointer of the frame at its call, that is
// its callee's canonical frame address). Once that reaches run_entry's own
// canonical frame address the unwinder is at run_entry's caller: every frame
// below has been unwound, so jump to the landing.
_Unwind_Reason_Code kill_stop(int, _Unwind_Action actions, _Unwind_Exception_Class, _Unwind_Exception*,
                              _Unwind_Context* context, void* parameter) {
  auto* landing = static_cast<KillLanding*>(parameter);
  if ((actions & _UA_END_OF_STACK) != 0 || _Unwind_GetCFA(context) >= landing->frame) {
    std::longjmp(landing->jump, 1);
  }
  return _URC_NO_REASON;
}

}  // namespace

void Node::unwind_killed(Context& self) {
  auto* landing = static_cast<KillLanding*>(self.landing);
  assert(landing != nullptr && "a dead process resumed outside its entry");
  EhState& eh = thread_eh();
  if (eh.caught != nullptr) throw Unwind{};  // killed inside a handler: see above
  landing->uncaught = eh.uncaught;
  landing->exception.exception_class = kill_exception_class;
  landing->exception.exception_cleanup = kill_swallowed;
  // What a throw's interception does for AddressSanitizer: the frames about to
  // be unwound leave no poisoned stack behind.
  sanitizer::handle_no_return();
  _Unwind_ForcedUnwind(&landing->exception, kill_stop, landing);
  std::fputs("persim: a killed process's stack could not be unwound\n", stderr);
  std::abort();
}

// The process's entry frame: runs the program and says how it ended. Out of
// line, with no object that needs cleaning up, so that a kill's unwinding can
// stop at its frame (see kill_stop). A program's exception (a crash) passes
// through to start_fiber.
[[gnu::noinline]] ExitReason Node::run_entry(Process& p, Entry& entry) {
  KillLanding landing;
  landing.frame = reinterpret_cast<std::uintptr_t>(__builtin_dwarf_cfa());
  p.context.landing = &landing;
  if (setjmp(landing.jump) != 0) {
    thread_eh().uncaught = landing.uncaught;  // each `throw;` of the kill counted it once more
    return ExitReason::killed;
  }
  Sys sys(*this, p);
  entry(sys);
  return ExitReason::returned;
}

ctx::fiber Node::start_fiber(Process& p, Entry entry) {
  auto body = [this, &p, entry = std::move(entry)](ctx::fiber&& resumer) mutable -> ctx::fiber {
    PooledStackAllocator::Bounds came_from;
    sanitizer::finish_switch(nullptr, &came_from.bottom, &came_from.size);
    Context* return_to = switch_from_;  // used if we were killed before running
    switch_from_->fiber = std::move(resumer);
    if constexpr (sanitizer::enabled) {  // only the sanitizer's switch hooks use it (see switch_to)
      if (return_to == &scheduler_) scheduler_.stack = came_from;
    }
    ExitReason reason = ExitReason::returned;
    if (!p.context.unwind) {
      try {
        reason = run_entry(p, entry);
      } catch (...) {
        reason = ExitReason::crashed;  // or killed while a handler ran: Unwind (then p is dead)
      }
      p.context.landing = nullptr;  // however run_entry ended, its frame is gone
      // Killed: go back to whoever reaps us. Nothing switches while a dead
      // process unwinds (its kernel calls fail at once), so switch_from_ still
      // names the reaper that resumed us.
      return_to = p.state == ProcessState::dead ? switch_from_ : &scheduler_;
      assert(return_to != nullptr);
    }
    if (p.state != ProcessState::dead) {
      on_exit(p, reason);
      current_ = nullptr;
    }
    switch_from_ = nullptr;  // this fiber ends: nothing to store
    thread_eh() = return_to->eh;  // ours ends with us
    sanitizer::start_switch(nullptr, return_to->stack.bottom, return_to->stack.size);
    return std::move(return_to->fiber);
  };
  return ctx::fiber(std::allocator_arg, PooledStackAllocator(stacks_, &p.context.stack), std::move(body));
}

void Node::on_exit(Process& p, ExitReason reason) {
  assert(p.state != ProcessState::dead);
  const bool was_embryo = p.state == ProcessState::embryo;
  detach(p);
  p.state = ProcessState::dead;
  p.exit_reason = reason;
  p.context.unwind = true;
  trace(reason == ExitReason::killed ? Op::death : reason == ExitReason::crashed ? Op::crash : Op::exit, &p);
  unbind(p);
  p.caps_released = p.cspace.live();
  release_all_caps(p);
  notify_exit(p);
  // An embryo made by the host has no fiber yet; one made by process_create
  // has one that never ran, which the reaper ends like any other.
  if (was_embryo && !p.context.fiber) p.reaped = true;
  reap_.push_back(&p);
}

void Node::kill_suspended(Process& p) {
  assert(&p != current_);
  on_exit(p, ExitReason::killed);
  reap();
}

void Node::kill_running(Process& p) {
  assert(&p == current_);
  on_exit(p, ExitReason::killed);
  current_ = nullptr;
  // The run loop reaps us: it resumes this fiber, and switch_to unwinds it
  // from here up to the entry trampoline.
  switch_to(p.context, scheduler_);
  std::abort();  // unreachable
}

void Node::reap() {
  // The reaper is whoever runs now: a process (killing another) or the run loop.
  Context& reaper = current_ != nullptr ? current_->context : scheduler_;
  while (!reap_.empty()) {
    Process* p = reap_.back();
    reap_.pop_back();
    // Resume it once so its stack unwinds (destructors run) and its fiber ends,
    // returning the stack to the pool. It comes back here when done.
    if (p->context.fiber) switch_to(reaper, p->context);
    assert(!p->context.fiber);
    p->reaped = true;
    maybe_free(*p);
  }
}

void Node::maybe_free(Process& p) {
  if (p.state != ProcessState::dead || !p.reaped || p.cap_refs != 0 || &p == current_) return;
  const std::uint32_t index = p.id.index;
  table_[index] = nullptr;
  ++generations_[index];
  free_indices_.push_back(index);
  processes_.destroy(&p);
}

// ---------------------------------------------------------------- run loop

void Node::add_timer(std::uint64_t deadline_ns, ProcessId sleeper, std::function<void(Node&)> event) {
  const std::uint64_t seq = ++timer_seq_;
  if (event) events_.emplace(seq, std::move(event));
  if (!sleeper.is_null()) table_[sleeper.index]->timer_seq = seq;
  timers_.push_back({deadline_ns, seq, sleeper});
  std::push_heap(timers_.begin(), timers_.end(), TimerLater{});
  update_handoff_until();
}

void Node::at(std::uint64_t time_ns, std::function<void(Node&)> event) {
  assert(event);
  add_timer(time_ns, ProcessId{}, std::move(event));
}

void Node::fire_due(std::uint64_t until_ns) {
  while (!timers_.empty() && timers_.front().deadline_ns <= std::min(now_ns_, until_ns)) {
    std::pop_heap(timers_.begin(), timers_.end(), TimerLater{});
    const Timer t = timers_.back();
    timers_.pop_back();
    update_handoff_until();
    if (t.sleeper.is_null()) {
      auto it = events_.find(t.seq);
      assert(it != events_.end());
      std::function<void(Node&)> event = std::move(it->second);
      events_.erase(it);
      trace(Op::timer, nullptr, Error{}, t.seq);
      event(*this);
      continue;
    }
    Process* p = find(t.sleeper);
    if (p == nullptr || !timer_is_live(*p, t.seq)) continue;
    // A sleep ends; a receive_until or call_until gives up (a call being
    // served is detached from its reply capability, as if its caller died).
    make_ready(*p, p->state == ProcessState::sleeping ? Error{} : Error::timed_out);
  }
}

void Node::drop_stale_timers() {
  while (!timers_.empty()) {
    const Timer& t = timers_.front();
    if (t.sleeper.is_null()) return;
    const Process* p = find(t.sleeper);
    if (p != nullptr && timer_is_live(*p, t.seq)) return;
    std::pop_heap(timers_.begin(), timers_.end(), TimerLater{});
    timers_.pop_back();
    update_handoff_until();
  }
}

std::uint64_t Node::next_event_ns() {
  if (!ready_.empty()) return now_ns_;
  // A timer whose sleeper was killed must not move time forward.
  drop_stale_timers();
  return timers_.empty() ? UINT64_MAX : std::max(now_ns_, next_deadline());
}

void Node::begin_run(std::uint64_t until_ns) {
  assert(current_ == nullptr && "run() is not reentrant");
  stop_requested_ = false;
  run_until_ns_ = until_ns;
  update_handoff_until();
}

Node::SliceEnd Node::run_slice(std::uint64_t horizon_ns) {
  assert(current_ == nullptr);
  if (run_until_ns_ != horizon_ns) {
    run_until_ns_ = horizon_ns;
    update_handoff_until();
  }
  for (;;) {
    if (stop_requested_) return SliceEnd::stopped;
    fire_due(horizon_ns);
    if (now_ns_ > horizon_ns) return SliceEnd::past_horizon;
    Process* p = ready_.pop_front();
    if (p == nullptr) return SliceEnd::idle;
    handoff_budget_ = handoff_budget_max;
    switch_to_process(scheduler_, *p);
    current_ = nullptr;
    reap();
  }
}

RunOutcome Node::run(RunLimits limits) { return world_->run(limits); }

void Node::stop() { world_->stop(); }

// ---------------------------------------------------------------- host API

Process* Node::find(ProcessId pid) const {
  if (pid.index == 0 || pid.index >= table_.size() || generations_[pid.index] != pid.generation) return nullptr;
  return table_[pid.index];
}

Process* Node::find_live(ProcessId pid) const {
  Process* p = find(pid);
  return p != nullptr && p->state != ProcessState::dead ? p : nullptr;
}

Result<ProcessId> Node::create_process(std::string name) {
  std::uint32_t index;
  if (!free_indices_.empty()) {
    index = free_indices_.back();
    free_indices_.pop_back();
  } else if (table_.size() < processes_max) {
    index = static_cast<std::uint32_t>(table_.size());
    table_.push_back(nullptr);
    generations_.push_back(0);
  } else {
    return Error::process_limit;
  }
  const ProcessId pid{index, generations_[index]};
  Rng stream = rng_.split(++processes_created_);
  const auto salt = static_cast<std::uint32_t>(stream.next());
  Process* p = processes_.create(*this, pid, std::move(name), salt, stream);
  table_[index] = p;
  faults_.on_create(*p);
  trace(Op::spawn, p);
  return pid;
}

Status Node::start(ProcessId pid, Entry entry) {
  Process* p = find_live(pid);
  if (p == nullptr) return Error::bad_handle;
  if (p->state != ProcessState::embryo || p->context.fiber) return Error::invalid_argument;
  p->context.fiber = start_fiber(*p, std::move(entry));
  p->state = ProcessState::ready;
  ready_.push_back(p);
  trace(Op::start, p);
  return {};
}

Result<ProcessId> Node::spawn(std::string name, Entry entry) {
  Result<ProcessId> pid = create_process(std::move(name));
  if (!pid) return pid;
  const Status started = start(pid.value(), std::move(entry));
  assert(started.ok());
  (void)started;
  return pid;
}

Status Node::kill(ProcessId pid) {
  assert(current_ == nullptr && "host API called from inside a process");
  Process* p = find(pid);
  if (p == nullptr) return Error::bad_handle;
  if (p->state == ProcessState::dead) return Error::object_dead;
  kill_suspended(*p);
  return {};
}

void Node::maybe_delay_call(Process& self) {
  const std::uint64_t ns = faults_.draw_delay_ns(self);
  if (ns == 0) return;
  trace(Op::sleep, &self, Error{}, ns);
  add_timer(now_ns_ + ns, self.id, {});
  self.state = ProcessState::sleeping;
  block(self, nullptr);
}

bool Node::alive(ProcessId pid) const { return find_live(pid) != nullptr; }

std::optional<ProcessState> Node::state(ProcessId pid) const {
  const Process* p = find(pid);
  return p != nullptr ? std::optional(p->state) : std::nullopt;
}

std::optional<ExitReason> Node::exit_reason(ProcessId pid) const {
  const Process* p = find(pid);
  return p != nullptr ? std::optional(p->exit_reason) : std::nullopt;
}

std::string Node::name(ProcessId pid) const {
  const Process* p = find(pid);
  return p != nullptr ? p->name : std::string();
}

std::uint64_t Node::kernel_calls(ProcessId pid) const {
  const Process* p = find(pid);
  return p != nullptr ? p->kernel_calls : 0;
}

NodeStats Node::stats() const {
  NodeStats s;
  s.processes = processes_.live();
  for (std::size_t i = 1; i < table_.size(); ++i)
    if (table_[i] != nullptr && table_[i]->state != ProcessState::dead) ++s.live_processes;
  s.capabilities = caps_.live() - spare_replies_;
  s.endpoints = endpoints_.live();
  s.notifications = notifications_.live();
  s.replies = replies_.live() - spare_replies_;  // a spare is not a reply object in use
  s.stacks_in_use = stacks_.in_use();
  s.ready = ready_.size();
  s.timers = timers_.size();
  s.kernel_calls = kernel_calls_;
  s.switches = switches_;
  return s;
}

}  // namespace persim::kernel
