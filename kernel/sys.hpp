// The kernel-call gate of one process: everything a program can do. Each call
// decodes and checks its arguments first, then acts; expected failures come back
// as values. Calls marked "may suspend" switch to another fiber; a kill can land
// there, in which case the call does not return (the stack unwinds).
#pragma once

#include <cstdint>

#include "kernel/handle.hpp"
#include "kernel/message.hpp"
#include "kernel/result.hpp"
#include "kernel/rights.hpp"
#include "kernel/trace.hpp"

namespace persim::kernel {

class Node;
struct Process;

class Sys {
 public:
  Sys(Node& node, Process& self) : node_(node), self_(self) {}
  Sys(const Sys&) = delete;
  Sys& operator=(const Sys&) = delete;

  // ---- Objects. The caller gets the original capability, with all rights.
  Result<Cap<Endpoint>> endpoint_create();
  Result<Cap<Notification>> notification_create();

  // A child capability in the caller's own space: rights = held & mask; a badge
  // may be set once, on an unbadged endpoint or notification capability.
  // Errors: lookup errors (needs derive), invalid_argument, cspace_full.
  template <class T>
  Result<Cap<T>> derive(Cap<T> from, Rights mask, std::uint64_t badge = 0) {
    Result<Handle> h = derive_any(from.handle(), Cap<T>::type, mask, badge);
    if (!h) return h.error();
    return Cap<T>(h.value());
  }

  // Drops the caller's capability. Its children stay, attached to its parent.
  // Errors: bad_handle, severed (which also frees the slot).
  Status delete_cap(AnyCap cap);
  // Removes every descendant of the capability, in every process; keeps it.
  // Errors: lookup errors (needs revoke).
  Status revoke(AnyCap cap);

  // ---- IPC.
  // Sends `request` and waits for the reply, which lands in `response`. May
  // suspend. Errors: lookup errors (needs send; transferred caps need grant),
  // message_too_large, too_many_caps, object_destroyed, peer_died, cspace_full.
  inline Status call(Cap<Endpoint> ep, const Message& request, Message& response);
  // Waits for a call. May suspend. Errors: lookup errors (needs receive),
  // object_destroyed, cspace_full (no room for the reply capability and the
  // transferred ones; the call stays queued).
  Result<Received> receive(Cap<Endpoint> ep, Message& request);
  // Answers a call and consumes the reply capability. Does not suspend. Errors:
  // lookup errors, message_too_large, too_many_caps, peer_died (the caller is
  // gone; the capability is consumed), cspace_full (the caller's space is full).
  Status reply(Cap<Reply> reply, const Message& response);
  // reply, then receive; hands the processor straight to the caller replied to.
  inline Result<Received> reply_receive(Cap<Reply> reply, const Message& response, Cap<Endpoint> ep,
                                       Message& request);

  // ---- Notifications: a word of badge bits, signalled asynchronously.
  Status signal(Cap<Notification> n);                    // needs send
  Result<std::uint64_t> wait(Cap<Notification> n);       // needs receive; may suspend
  Result<std::uint64_t> poll(Cap<Notification> n);       // would_block if nothing pending

  // ---- Processes, time, randomness.
  // Kills the designated process. Errors: lookup errors (needs control),
  // object_dead. Killing oneself does not return.
  Status kill(Cap<Process> p);
  std::uint64_t now_ns() const;
  // May suspend. Time is virtual: the run loop jumps to the next deadline.
  Status sleep_for(std::uint64_t ns);
  // Lets every other ready process run first. May suspend.
  Status yield();
  // This process's own stream of the node's seed.
  std::uint64_t random();
  std::uint64_t random_below(std::uint64_t bound);

 private:
  Result<Handle> derive_any(Handle from, ObjectType type, Rights mask, std::uint64_t badge);

  // call and reply_receive are inline (in node.hpp) and switch fibers there, in
  // the program's own code: see the comment on Sys::call. These are the parts
  // before and after the switch. The `begin` parts return an error if the call
  // failed before anything happened (already traced), else set `*next` to the
  // process to hand the processor to, or to null if they already blocked and
  // resumed the ordinary way.
  Error call_begin(Cap<Endpoint> ep, const Message& request, Message& response, Process** next);
  inline Status call_end(const Message& response);
  Error reply_receive_begin(Cap<Reply> reply, const Message& response, Cap<Endpoint> ep, Message& request,
                            Received* result, Process** next);
  inline Result<Received> receive_end(const Received& result);
  // Liveness, accounting and the kill_at_call fault hook; false if the process
  // is dead (unwinding). Defined in node.hpp: inline, it is on every call.
  inline bool enter();
  Error fail(Op op, Error e, Handle h = {});

  Node& node_;
  Process& self_;
};

}  // namespace persim::kernel

// The inline kernel calls need Node; node.hpp includes this file first, so
// whichever of the two a program includes, both classes are complete there.
#include "kernel/node.hpp"
