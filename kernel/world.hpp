// The world: the one owner of virtual time and of the run loop, above the
// nodes. Each node keeps its own clock (a kernel call adds its cost there, on
// the IPC path) and its own timers and ready queue; the world decides which
// node runs, how far, and when an idle node's clock jumps to its next event.
//
// Conservative lookahead: `lookahead_ns` is the least virtual time in which
// anything one node does can reach another (a link must take longer). A node
// may run events up to its horizon, the least of the run's time limit, every
// other node's next event plus the lookahead, and the time before the next
// world event; a process that starts by its horizon runs until it blocks.
// With one node the horizon is the time limit and the world's loop is the
// node loop it replaced, event for event (kernel/world_test.cpp pins it).
//
// Determinism: nodes are taken in the order they joined; ties in time go to
// the earlier node; world events are ordered by (time, posting order) and run
// before node events of the same time. Nothing here reads a clock or a thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "kernel/real_io.hpp"

namespace persim::kernel {

class Node;

class World {
 public:
  explicit World(std::uint64_t lookahead_ns = 0) : lookahead_ns_(lookahead_ns) {}
  // Every node must have left (been destroyed) first.
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  // The nodes, in the order they joined (Node's constructor adds a node,
  // its destructor removes it).
  std::span<Node* const> nodes() const { return nodes_; }
  std::uint64_t lookahead_ns() const { return lookahead_ns_; }

  // Runs every node until all are quiescent, the time limit or stop(). May be
  // called again; not reentrant (host events and real I/O handlers run inside
  // it and may use the host API, but not run()).
  RunOutcome run(RunLimits limits = {});
  // Ends the run at the loop's next turn (a process already switched to runs
  // until it blocks, with no more hand-offs).
  void stop();
  // A world event: `event` runs at world time `time_ns` (or at the loop's next
  // turn, if that has passed), once every node has run its events before that
  // time and before any node runs one at or after it; each node's clock then
  // reads at least `time_ns`. The place for host actions that touch several
  // nodes (moving a process, cutting a link). Not traced by any node.
  void post(std::uint64_t time_ns, std::function<void(World&)> event);

  // The virtual time the world has reached: the latest of its nodes' clocks
  // and of its world events (a node may run ahead of another by the lookahead).
  std::uint64_t now_ns() const;

 private:
  friend class Node;

  void add(Node& node);
  void remove(Node& node);

  RunOutcome loop(const RunLimits& limits);
  // Runs the first world event if nothing on any node comes before it.
  bool run_due_event(std::uint64_t until_ns);
  // One slice of each node up to its horizon; false if a stop was requested.
  bool run_slices(std::uint64_t until_ns);
  std::uint64_t horizon_ns(const Node& node, std::uint64_t until_ns) const;
  // The earliest node event (a ready process: its node's clock; else a live
  // timer's deadline) or world event; UINT64_MAX if there is none.
  std::uint64_t next_event_ns() const;
  std::uint64_t next_node_event_ns() const;
  bool all_past(std::uint64_t until_ns) const;
  // The clock of every node whose next event is within its horizon jumps to it.
  void advance_clocks(std::uint64_t until_ns);

  std::uint64_t lookahead_ns_;
  std::vector<Node*> nodes_;
  // World events by (time, posting order).
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::function<void(World&)>> events_;
  std::uint64_t events_posted_ = 0;
  std::uint64_t now_ns_ = 0;  // the latest world event or time limit reached
  std::uint64_t until_ns_ = UINT64_MAX;
  bool stop_requested_ = false;
  bool in_run_ = false;
};

}  // namespace persim::kernel
