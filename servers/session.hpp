// A server's sessions and its request loop: the shape every server shares.
//
// A session is a badged capability the server mints from its own endpoint
// (badge = session id); the client's copy is send-only. The server keeps
// the minted capability, so closing a session revokes every copy of it: when a
// client dies, the supervisor tells each server (RootOp::client_gone) and the
// sessions opened for that client are gone, wherever their copies went.
// Requests arriving with badge 0 come through the root capability, which only
// the supervisor holds.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "kernel/sys.hpp"
#include "servers/idempotency.hpp"
#include "servers/protocol.hpp"
#include "servers/wire.hpp"

namespace persim::servers {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Handle;
using kernel::Message;
using kernel::Rights;
using kernel::Sys;

// Counts of what a server refused, kept where the host can read them.
struct ServerAudit {
  std::uint64_t requests = 0;
  std::uint64_t refused_restores = 0;  // op_restore_state: always refused
  std::uint64_t malformed = 0;
  std::uint64_t unknown_operations = 0;
  std::uint64_t wrong_sessions = 0;
  void count(ServiceError e) {
    if (e == ServiceError::untrusted_state) ++refused_restores;
    if (e == ServiceError::malformed) ++malformed;
    if (e == ServiceError::unknown_operation) ++unknown_operations;
    if (e == ServiceError::wrong_session) ++wrong_sessions;
  }
};

// Sessions of type S (S must have `std::uint64_t client`), by badge. Badges are
// never reused within one server incarnation.
template <class S>
class Sessions {
 public:
  // Mints a session capability for `session` into `reply`, with `rights` for
  // the receiver: send and grant when the supervisor opens it for a client
  // (it passes it on send-only), send only when a client opens it itself.
  // Errors: quota_exceeded (sessions_max), failed (the kernel refused the
  // mint: the server's own space is full).
  ServiceError open(Sys& sys, Cap<Endpoint> ep, S session, Message& reply, Rights rights) {
    if (sessions_.size() >= sessions_max) return ServiceError::quota_exceeded;
    const std::uint64_t badge = next_badge_++;
    const kernel::Result<Cap<Endpoint>> minted =
        sys.derive(ep, Rights::send() | Rights::grant() | Rights::revoke(), badge);
    if (!minted) return ServiceError::failed;
    sessions_.emplace(badge, Entry{std::move(session), *minted});
    reply.attach(*minted, rights);
    return ServiceError::ok;
  }

  S* find(std::uint64_t badge) {
    const auto it = sessions_.find(badge);
    return it != sessions_.end() ? &it->second.session : nullptr;
  }

  // Revokes every copy of the session's capability and forgets it.
  void close(Sys& sys, std::uint64_t badge) {
    const auto it = sessions_.find(badge);
    if (it == sessions_.end()) return;
    (void)sys.revoke(it->second.minted);
    (void)sys.delete_cap(it->second.minted);
    sessions_.erase(it);
  }

  // Closes every session opened for `client`; returns how many.
  std::size_t close_client(Sys& sys, std::uint64_t client) {
    std::vector<std::uint64_t> badges;
    for (const auto& [badge, entry] : sessions_)
      if (entry.session.client == client) badges.push_back(badge);
    for (const std::uint64_t badge : badges) close(sys, badge);
    return badges.size();
  }

  std::size_t size() const { return sessions_.size(); }
  // In badge order (deterministic).
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [badge, entry] : sessions_) f(badge, entry.session);
  }

 private:
  struct Entry {
    S session;
    Cap<Endpoint> minted;
  };
  std::map<std::uint64_t, Entry> sessions_;
  std::uint64_t next_badge_ = 1;
};

// RootOp::client_gone, the same in every server: closes the sessions opened
// for the client named in `in`; answers how many.
template <class S>
ServiceError close_client(Sys& sys, Sessions<S>& sessions, wire::Reader& in, Message& reply) {
  const std::uint64_t client = in.u64();
  if (!in.done()) return ServiceError::malformed;
  wire::Writer(reply).u32(static_cast<std::uint32_t>(sessions.close_client(sys, client)));
  return ServiceError::ok;
}

// Capabilities a request carried that the handler did not take (it takes one by
// clearing its handle) are deleted after the request.
inline void drop_received(Sys& sys, Message& request) {
  for (std::uint32_t i = 0; i < request.cap_count; ++i)
    if (!request.caps[i].handle.is_null()) (void)sys.delete_cap(kernel::AnyCap(request.caps[i].handle));
  request.cap_count = 0;
}

// Token issue and at-most-once application around a handler.
template <class Handler>
ServiceError dispatch_once(Sys& sys, std::uint64_t badge, Message& request, Message& reply, Handler& handler,
                           Idempotency& once) {
  if (request.label == op_issue_token) {
    if (badge == 0) return ServiceError::wrong_session;
    std::uint64_t token = 0;
    const ServiceError e = once.issue(sys, &token);
    if (e == ServiceError::ok) wire::Writer(reply).u64(token);
    return e;
  }
  if ((request.label & op_once_bit) == 0) return handler(badge, request, reply);
  if (badge == 0) return ServiceError::wrong_session;
  if (request.length < once_trailer_bytes) return ServiceError::malformed;
  Message trailer{};
  trailer.length = once_trailer_bytes;
  std::memcpy(trailer.data.data(), request.data.data() + request.length - once_trailer_bytes, once_trailer_bytes);
  wire::Reader in(trailer);
  const std::uint64_t token = in.u64();
  const std::uint64_t seq = in.u64();
  request.length -= once_trailer_bytes;
  request.label &= ~op_once_bit;
  if (!once.known(token)) return ServiceError::not_found;
  if (once.applied(token, seq)) return ServiceError::ok;  // done before: acknowledged, not redone
  const ServiceError e = handler(badge, request, reply);
  if (e == ServiceError::ok) once.record(token, seq);
  return e;
}

// The request loop every server runs: receive, refuse restores, hand the rest
// to `handler(badge, request, reply) -> ServiceError`, reply with that status,
// until the endpoint goes. A reply the caller cannot take (its space is full)
// is dropped; the loop goes on. Received::notified wakeups go to
// `handler.notified(word)` if the handler binds a notification. A handler with
// `bool defer(badge, request, reply_cap)` may keep a request to answer later
// (a read that waits for input): it then owns the reply capability.
// With `once`, the loop also issues idempotency tokens and applies operations
// sent with op_once_bit at most once (see protocol.hpp).
template <class Handler>
void serve(Sys& sys, Cap<Endpoint> ep, Handler& handler, ServerAudit& audit, Idempotency* once = nullptr) {
  Message request{}, reply{};
  // A handler with `deadline()` (UINT64_MAX: none) and `timeout()` keeps time:
  // while a deadline is set the loop receives until it, and calls timeout()
  // when it passes with nothing received (a group commit's flush).
  auto deadline = [&]() -> std::uint64_t {
    if constexpr (requires { handler.deadline(); }) return handler.deadline();
    return UINT64_MAX;
  };
  auto next = [&]() -> kernel::Result<kernel::Received> {
    for (;;) {
      const std::uint64_t d = deadline();
      kernel::Result<kernel::Received> got = d == UINT64_MAX ? sys.receive(ep, request) : sys.receive_until(ep, request, d);
      if constexpr (requires { handler.timeout(); }) {
        if (!got && got.error() == kernel::Error::timed_out) {
          handler.timeout();
          continue;
        }
      }
      return got;
    }
  };
  kernel::Result<kernel::Received> r = next();
  while (r) {
    if (r->notified) {
      if constexpr (requires { handler.notified(std::uint64_t{}); }) handler.notified(r->badge);
      r = next();
      continue;
    }
    ++audit.requests;
    if constexpr (requires { handler.defer(std::uint64_t{}, request, r->reply); }) {
      if ((request.label & ~op_once_bit) != op_restore_state && handler.defer(r->badge, request, r->reply)) {
        drop_received(sys, request);
        r = next();
        continue;
      }
    }
    reply.label = 0;  // only the header: `length` bytes are all that is used
    reply.length = 0;
    reply.cap_count = 0;
    // A restore is refused whatever else its label says (op_once_bit included).
    const bool restore = (request.label & ~op_once_bit) == op_restore_state;
    ServiceError e = restore                           ? ServiceError::untrusted_state
                     : once != nullptr                 ? dispatch_once(sys, r->badge, request, reply, handler, *once)
                                                       : handler(r->badge, request, reply);
    drop_received(sys, request);
    audit.count(e);
    if (e != ServiceError::ok) reply.cap_count = 0;  // a refusal carries no capability (a detail at most)
    reply.label = static_cast<std::uint64_t>(e);
    const Cap<kernel::Reply> answer = r->reply;
    if (deadline() != UINT64_MAX) {
      // A caller gone consumes the reply capability; one without room leaves it to drop.
      if (const kernel::Status sent = sys.reply(answer, reply); !sent && sent.error() == kernel::Error::cspace_full)
        (void)sys.delete_cap(answer);
      r = next();
      continue;
    }
    r = sys.reply_receive(answer, reply, ep, request);
    if (!r && r.error() == kernel::Error::cspace_full) {
      (void)sys.delete_cap(answer);
      r = next();
    }
  }
}

}  // namespace persim::servers
