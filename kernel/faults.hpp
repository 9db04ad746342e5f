// The node's fault hooks: what the host (a test, the scenario runner) uses to
// inject faults that must land inside the kernel, at a precise point of a
// process's life. Reached as Node::faults(). Kills at a time are host events
// (Node::at with Node::kill) and power loss is servers::System's; neither is
// here.
//
// The hooks live in the code under test (Sys::enter checks a kill at a call,
// Sys::call_begin a delay) but their rules and counts are kept here, apart
// from the node's objects and run loop.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernel/process.hpp"
#include "kernel/result.hpp"
#include "kernel/rng.hpp"

namespace persim::kernel {

class Node;
class Sys;

class FaultHooks {
 public:
  // `draws`: the stream the delay fault draws from, one of its own so that a
  // delay moves no other random choice of the node.
  FaultHooks(Node& node, Rng draws) : node_(node), draws_(draws) {}
  FaultHooks(const FaultHooks&) = delete;
  FaultHooks& operator=(const FaultHooks&) = delete;

  // Kill at a call: kill `pid` as it makes its n-th kernel call (1-based,
  // counted from its start). Errors: bad_handle (unknown or dead).
  Status kill_at_call(ProcessId pid, std::uint64_t n);
  // The same for a process that does not exist yet: the next process created
  // with this exact name (e.g. a supervisor's "counter#1") gets the hook.
  void kill_at_call(std::string name, std::uint64_t n);
  // How many kill-at-call hooks have fired.
  std::uint64_t kills_at_call_fired() const { return kills_fired_; }

  // Message delay: every process whose name starts with `prefix` (now or
  // created later) holds each call back, with probability `per_million`/1e6,
  // for a uniform 1..delay_ns_max virtual ns before sending it.
  void delay_calls(std::string prefix, std::uint64_t delay_ns_max, std::uint32_t per_million);
  // How many calls the delay rules have held back.
  std::uint64_t calls_delayed() const { return calls_delayed_; }

 private:
  friend class Node;
  friend class Sys;

  // A process is created: the rules written for its name apply to it.
  void on_create(Process& p);
  // Whether `self`'s call is held back, and for how long (0: sent now). Draws
  // from the fault stream only for a process a delay rule marked.
  std::uint64_t draw_delay_ns(const Process& self);
  // Sys::enter, as a kill-at-call hook fires.
  void count_kill() { ++kills_fired_; }

  struct DelayRule {
    std::string prefix;
    std::uint64_t ns_max;
    std::uint32_t per_million;
  };

  Node& node_;
  std::vector<std::pair<std::string, std::uint64_t>> named_kills_;  // kill_at_call(name, n) not yet applied
  std::uint64_t kills_fired_ = 0;
  std::vector<DelayRule> delay_rules_;
  Rng draws_;
  std::uint64_t calls_delayed_ = 0;
};

}  // namespace persim::kernel
