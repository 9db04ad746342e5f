// The world's run loop (kernel/world.hpp): the one place virtual time jumps
// forward, for every node.
#include "kernel/world.hpp"

#include <algorithm>
#include <cassert>

#include "kernel/node.hpp"

namespace persim::kernel {

namespace {

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

}  // namespace

World::~World() { assert(nodes_.empty() && "a world must outlive its nodes"); }

void World::add(Node& node) {
  assert(std::find(nodes_.begin(), nodes_.end(), &node) == nodes_.end());
  nodes_.push_back(&node);
  if (in_run_) node.begin_run(until_ns_);  // joined from a host event: it runs from the next turn
}

void World::remove(Node& node) {
  assert(!in_run_ && "a node leaves its world between runs");
  const auto it = std::find(nodes_.begin(), nodes_.end(), &node);
  assert(it != nodes_.end());
  nodes_.erase(it);
}

void World::stop() {
  stop_requested_ = true;
  for (Node* n : nodes_) n->halt();
}

void World::post(std::uint64_t time_ns, std::function<void(World&)> event) {
  assert(event);
  events_.emplace(std::pair(time_ns, ++events_posted_), std::move(event));
}

std::uint64_t World::now_ns() const {
  std::uint64_t t = now_ns_;
  for (const Node* n : nodes_) t = std::max(t, n->now_ns());
  return t;
}

RunOutcome World::run(RunLimits limits) {
  assert(!in_run_ && "run() is not reentrant");
  assert((limits.when_idle == WhenIdle::return_quiescent || limits.real_io != nullptr) &&
         "waiting for real I/O needs a RealIo");
  in_run_ = true;
  stop_requested_ = false;
  until_ns_ = limits.until_ns;
  for (Node* n : nodes_) n->begin_run(limits.until_ns);
  const RunOutcome outcome = loop(limits);
  in_run_ = false;
  return outcome;
}

// Each turn: world events that are due; a slice of every node up to its
// horizon; then, with no node able to go on, real I/O, and the jump of each
// node whose next event is within its horizon to that event (the node with the
// earliest is always one, unless a world event comes first). With one node and
// no world events this is, step for step, the loop each node used to run for
// itself.
RunOutcome World::loop(const RunLimits& limits) {
  for (;;) {
    if (stop_requested_) return RunOutcome::stopped;
    if (!events_.empty() && run_due_event(limits.until_ns)) continue;
    if (!run_slices(limits.until_ns)) continue;
    if (all_past(limits.until_ns)) return RunOutcome::time_limit;
    // Real I/O (terminal, links) comes in between processes; none in simulations.
    if (limits.real_io != nullptr && limits.real_io->poll() > 0) continue;
    const std::uint64_t next_ns = next_event_ns();
    if (next_ns == UINT64_MAX) {
      // Only real input can wake anything now; wall time passes, virtual time does not.
      if (limits.when_idle == WhenIdle::wait_for_real_io && !stop_requested_ && limits.real_io->wait_one() > 0)
        continue;
      return RunOutcome::quiescent;
    }
    if (next_ns > limits.until_ns) {
      for (Node* n : nodes_) n->advance_to(limits.until_ns);
      now_ns_ = std::max(now_ns_, limits.until_ns);
      return RunOutcome::time_limit;
    }
    advance_clocks(limits.until_ns);
  }
}

bool World::run_due_event(std::uint64_t until_ns) {
  const auto first = events_.begin();
  const std::uint64_t time_ns = first->first.first;
  if (time_ns > until_ns || time_ns > next_node_event_ns()) return false;
  for (Node* n : nodes_) n->advance_to(time_ns);
  now_ns_ = std::max(now_ns_, time_ns);
  std::function<void(World&)> event = std::move(first->second);
  events_.erase(first);
  event(*this);
  return true;
}

bool World::run_slices(std::uint64_t until_ns) {
  bool stopped = false;
  // By index: a host event may add a node (it runs from the next turn).
  const std::size_t count = nodes_.size();
  for (std::size_t i = 0; i < count; ++i) {
    Node& n = *nodes_[i];
    stopped = n.run_slice(horizon_ns(n, until_ns)) == Node::SliceEnd::stopped || stopped;
  }
  return !stopped;
}

std::uint64_t World::horizon_ns(const Node& node, std::uint64_t until_ns) const {
  std::uint64_t h = until_ns;
  // Events strictly before the next world event (one at 0 posted during this
  // turn: none, at the next turn it runs first).
  if (!events_.empty()) h = std::min(h, std::max<std::uint64_t>(events_.begin()->first.first, 1) - 1);
  for (Node* other : nodes_)
    if (other != &node) h = std::min(h, saturating_add(other->next_event_ns(), lookahead_ns_));
  return h;
}

std::uint64_t World::next_node_event_ns() const {
  std::uint64_t t = UINT64_MAX;
  for (Node* n : nodes_) t = std::min(t, n->next_event_ns());
  return t;
}

std::uint64_t World::next_event_ns() const {
  const std::uint64_t t = next_node_event_ns();
  return events_.empty() ? t : std::min(t, events_.begin()->first.first);
}

bool World::all_past(std::uint64_t until_ns) const {
  for (const Node* n : nodes_)
    if (n->now_ns() <= until_ns) return false;
  return !nodes_.empty();
}

void World::advance_clocks(std::uint64_t until_ns) {
  // A node's jump leaves its next event where it was, so the horizons of the
  // nodes after it are as they were before it.
  for (Node* n : nodes_) {
    const std::uint64_t next_ns = n->next_event_ns();
    if (next_ns <= horizon_ns(*n, until_ns)) n->advance_to(next_ns);
  }
}

}  // namespace persim::kernel
