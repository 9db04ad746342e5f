// The kernel-call gate of one process: everything a program can do. Each call
// decodes and checks its arguments first, then acts; expected failures come back
// as values. Calls marked "may suspend" switch to another fiber; a kill can land
// there, in which case the call does not return (the stack unwinds).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "kernel/handle.hpp"
#include "kernel/message.hpp"
#include "kernel/result.hpp"
#include "kernel/rights.hpp"
#include "kernel/trace.hpp"

namespace persim::kernel {

class Node;
struct Context;
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
  // Errors: bad_handle, severed (the capability is already gone; nothing changes).
  Status delete_cap(AnyCap cap);
  // Removes every descendant of the capability, in every process; keeps it.
  // Errors: lookup errors (needs revoke).
  Status revoke(AnyCap cap);

  // ---- IPC.
  // Sends `request` and waits for the reply, which lands in `response`. May
  // suspend. Errors: lookup errors (needs send; transferred caps need grant),
  // message_too_large, too_many_caps, peer_died; severed if
  // the endpoint capability or a transferred one went while the call waited in
  // the queue. A receiver without room is told (cspace_full) and the call waits.
  inline Status call(Cap<Endpoint> ep, const Message& request, Message& response);
  // call, giving up with timed_out once virtual time reaches `deadline_ns`
  // (at once, sending nothing, if it has): still queued, the call is taken
  // back; already received, the server's reply capability then reports
  // peer_died. For a caller that must not wait on an untrusted server for
  // ever (the supervisor on a program's own service).
  inline Status call_until(Cap<Endpoint> ep, const Message& request, Message& response, std::uint64_t deadline_ns);
  // Waits for a call. May suspend. Errors: lookup errors (needs receive),
  // severed (the capability went while waiting), cspace_full
  // (no room for the reply capability and the transferred ones; the call stays
  // queued).
  inline Result<Received> receive(Cap<Endpoint> ep, Message& request);
  // receive, giving up with timed_out once virtual time reaches `deadline_ns`
  // (at once if it has). May suspend.
  inline Result<Received> receive_until(Cap<Endpoint> ep, Message& request, std::uint64_t deadline_ns);
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

  // ---- Creating and watching processes (what a supervisor does).
  // A new process that will run the node's program `program` once started; the
  // caller gets its capability with all rights. Nothing runs until
  // process_start. Errors: lookup errors (needs send on the factory),
  // not_found (no such program), invalid_argument (a name over
  // program_name_bytes_max), process_limit, cspace_full.
  Result<Cap<Process>> process_create(Cap<Factory> factory, std::string_view program, std::string_view name);
  // Installs in a process that has not started a child of `cap` (rights held &
  // mask, optionally badged as derive does) under `name` in its initial table.
  // Errors: lookup errors (control on the process; grant on the capability),
  // invalid_argument (started already, name empty, too long or taken, over
  // grants_max; a badge where derive refuses one), object_dead, cspace_full.
  Status process_grant(Cap<Process> p, std::string_view name, AnyCap cap, Rights mask, std::uint64_t badge = 0);
  // Starts a process created by process_create. Errors: lookup errors (needs
  // control), invalid_argument (started already), object_dead.
  Status process_start(Cap<Process> p);
  // Signals `n` (with the badge of that capability) when the process exits, at
  // once if it has already; replaces an earlier watch. Errors: lookup errors
  // (control on the process, send on the notification).
  Status process_watch(Cap<Process> p, Cap<Notification> n);
  struct ProcessStatus {
    bool alive = false;
    ExitReason exit_reason = ExitReason::none;  // once dead
    std::uint32_t caps_released = 0;           // once dead: what its death severed
  };
  // Errors: lookup errors (needs control).
  Result<ProcessStatus> process_status(Cap<Process> p);

  // This process's grant named `name`, as its creator installed it. Errors:
  // not_found; wrong_type if it designates something other than T.
  template <class T>
  Result<Cap<T>> granted(std::string_view name) {
    Result<Handle> h = granted_any(name, Cap<T>::type);
    if (!h) return h.error();
    return Cap<T>(h.value());
  }

  // Binds a notification to this process: a receive on any endpoint also
  // returns (Received::notified) when it is signalled. One at a time; binding
  // another replaces it. Errors: lookup errors (needs receive),
  // invalid_argument (bound to another process).
  Status notification_bind(Cap<Notification> n);

  // ---- Buffers: bulk data by capability (an image to the checkpoint store).
  // A buffer of `size` zero bytes; the caller gets all rights. Errors:
  // invalid_argument (over buffer_bytes_max), cspace_full.
  Result<Cap<Buffer>> buffer_create(std::size_t size);
  // Copies `bytes` in at `offset`. Errors: lookup errors (needs send),
  // invalid_argument (past the end).
  Status buffer_write(Cap<Buffer> b, std::uint64_t offset, std::span<const std::byte> bytes);
  // Copies out `out.size()` bytes from `offset`. Errors: lookup errors (needs
  // receive), invalid_argument (past the end).
  Status buffer_read(Cap<Buffer> b, std::uint64_t offset, std::span<std::byte> out);
  // Errors: lookup errors (any right).
  Result<std::uint64_t> buffer_size(Cap<Buffer> b);
  std::uint64_t now_ns() const;
  // May suspend. Time is virtual: the run loop jumps to the next deadline.
  Status sleep_for(std::uint64_t ns);
  // Lets every other ready process run first. May suspend.
  Status yield();
  // This process's own stream of the node's seed.
  std::uint64_t random();
  // Uniform in [0, bound); 0 when bound is 0.
  std::uint64_t random_below(std::uint64_t bound);

 private:
  Result<Handle> derive_any(Handle from, ObjectType type, Rights mask, std::uint64_t badge);
  Result<Handle> granted_any(std::string_view name, ObjectType type);

  // call, receive and reply_receive are inline (in node.hpp) and switch fibers
  // there, in the program's own code: see the comment on Sys::call. These are
  // the parts before and after the switch. The `begin` parts return an error if
  // the call failed before anything happened (already traced), else set
  // `*next` to the process (receive: the context) to switch to, or to null if
  // they already blocked and resumed the ordinary way or did not block.
  Error call_begin(Cap<Endpoint> ep, const Message& request, Message& response, Process** next,
                   std::uint64_t deadline_ns);
  Error call_too_late(Cap<Endpoint> ep, const Message& request);
  Error receive_begin(Cap<Endpoint> ep, Message& request, std::uint64_t deadline_ns, Received* result,
                      Context** next);
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
