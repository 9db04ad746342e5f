// Drives processes from the host one operation at a time, for state-machine
// property tests: the test posts a function to an actor, the actor runs it with
// its own Sys on its own fiber, and the host inspects the node in between.
//
// Each actor sleeps one tick at a time and runs the operation in its mailbox
// when it wakes. An operation may block (receive, call); the actor takes no
// further operation until it returns.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "kernel/node.hpp"
#include "kernel/sys.hpp"

namespace persim::testing {

using namespace persim::kernel;

class Driver {
 public:
  using Operation = std::function<void(Sys&)>;
  static constexpr std::uint64_t tick_ns = 1;
  // A posted operation is taken within one tick unless the actor is blocked or dead.
  static constexpr int ticks_to_take_max = 2;

  explicit Driver(NodeConfig config) : node_(config) {}
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  Node& node() { return node_; }

  // Creates an actor that has not started: capabilities may be granted to it.
  ProcessId create_actor(std::string name) {
    const ProcessId pid = node_.create_process(std::move(name)).value();
    actors_.push_back(pid);
    mailboxes_.emplace_back();
    return pid;
  }

  // Starts every actor created so far that is still an embryo.
  void start_actors() {
    for (std::size_t i = 0; i < actors_.size(); ++i) {
      if (node_.state(actors_[i]) != ProcessState::embryo) continue;
      const Status started = node_.start(actors_[i], [this, i](Sys& sys) { loop(sys, i); });
      EXPECT_TRUE(started.ok());
    }
    tick();
  }

  // Posts `op` to the actor and runs the node until the actor has taken it and
  // every process has come back to waiting. False if the actor never took it
  // (blocked, or dead).
  bool run(ProcessId actor, Operation op) {
    const std::size_t i = index_of(actor);
    mailboxes_[i] = std::move(op);
    for (int t = 0; t < ticks_to_take_max && mailboxes_[i]; ++t) tick();
    if (!mailboxes_[i]) return true;
    mailboxes_[i] = nullptr;
    return false;
  }

  // Runs the node for one tick.
  void tick() { (void)node_.run({.until_ns = node_.now_ns() + tick_ns}); }

 private:
  std::size_t index_of(ProcessId actor) const {
    for (std::size_t i = 0; i < actors_.size(); ++i)
      if (actors_[i] == actor) return i;
    ADD_FAILURE() << "not an actor";
    return 0;
  }

  void loop(Sys& sys, std::size_t i) {
    while (sys.sleep_for(tick_ns).ok()) {
      if (Operation op = std::exchange(mailboxes_[i], nullptr)) op(sys);
    }
  }

  std::vector<ProcessId> actors_;
  std::vector<Operation> mailboxes_;
  Node node_;  // last: destroyed first, while the mailboxes its actors read still exist
};

}  // namespace persim::testing
