// A server's sessions and its request loop: the shape every server shares.
//
// A session is a badged capability the server mints from its own endpoint
// (badge = session id); the client's copy is send-only. The server keeps
// the minted capability, so closing a session revokes every copy of it: when a
// client dies, the supervisor tells each server (RootOp::client_gone) and the
// sessions opened for that client are gone, wherever their copies went.
// Requests arriving with badge 0 come through the root capability, which only
// the supervisor holds: it opens every session with the same request
// (RootOp::open, an OpenRequest), whatever the server.
//
// A server is a *service*: an object the loop (`serve`) hands each request to
// once it has done what every server does (refuse restores of client state,
// answer the root, find the session). See `serve` for what a service provides.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kernel/sys.hpp"
#include "servers/idempotency.hpp"
#include "servers/protocol.hpp"
#include "servers/storage.hpp"
#include "servers/supervisor/client.hpp"
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
  std::uint64_t wrong_owners = 0;  // idempotency tokens sent through another client's session
  // The newest such use: the session it came through and the token.
  std::uint64_t last_wrong_owner_badge = 0, last_wrong_owner_token = 0;
  void count(ServiceError e) {
    if (e == ServiceError::untrusted_state) ++refused_restores;
    if (e == ServiceError::malformed) ++malformed;
    if (e == ServiceError::unknown_operation) ++unknown_operations;
    if (e == ServiceError::wrong_session) ++wrong_sessions;
    if (e == ServiceError::wrong_owner) ++wrong_owners;
  }
  void note_wrong_owner(std::uint64_t badge, std::uint64_t token) {
    last_wrong_owner_badge = badge;
    last_wrong_owner_token = token;
  }
};

// What outlives a server's process, owned by the host (System): its trusted
// storage (the disk it sits on) and its audit counts. Each server's host
// derives from it with what else it keeps (the console: the terminal's streams).
struct ServerHost {
  ServerHost() = default;
  ServerHost(const ServerHost&) = delete;
  ServerHost& operator=(const ServerHost&) = delete;
  virtual ~ServerHost() = default;
  TrustedStore store;
  ServerAudit audit;
};

// What the supervisor attests when it opens a session for a client: the one
// root request every server answers (RootOp::open). Each server takes what it
// needs and refuses what it cannot serve (malformed, not_found, ...). The
// views point into the request message.
struct OpenRequest {
  std::string_view argument;  // what the grant names after "service:" ("" if nothing)
  std::string_view mode;      // the grant's mode letters as written ("" if none); the server reads them
  std::uint64_t client = 0;   // whose session: all of a client's sessions close when it dies
  std::string_view instance;  // the client's instance, as its manifest names it
  std::string_view group;     // its checkpoint group ("" if none)
  std::uint64_t group_size = 0;  // instances of that group granted this service (0 without a group)

  // A console stream or a checkpoint slot: named by the grant, else after the
  // client's instance (so a restarted incarnation finds its predecessor's).
  std::string_view argument_or_instance() const { return argument.empty() ? instance : argument; }
};

// The open request's payload: str argument, str mode, u64 client, str instance,
// str group, u64 group_size. False if it does not fit a message.
[[nodiscard]] inline bool write_open(Message& m, const OpenRequest& r) {
  m.label = static_cast<std::uint64_t>(RootOp::open);
  return wire::Writer(m)
      .str(r.argument)
      .str(r.mode)
      .u64(r.client)
      .str(r.instance)
      .str(r.group)
      .u64(r.group_size)
      .ok();
}

// The open request `args` holds (views into its message); nullopt if it is
// malformed (short, over-long strings, or bytes left over).
inline std::optional<OpenRequest> read_open(wire::Reader& args) {
  OpenRequest r;
  r.argument = args.str();
  r.mode = args.str();
  r.client = args.u64();
  r.instance = args.str();
  r.group = args.str();
  r.group_size = args.u64();
  if (!args.done()) return std::nullopt;
  return r;
}

// What a server finds wrong with a grant of its service as a manifest gives
// it (before anything runs): in the grant's source ("fs:/path") or its mode.
struct GrantProblem {
  enum class Where : std::uint8_t { source, mode };
  Where where;
  std::string message;
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
  // `owner` is whose the session is for what outlives it (idempotency
  // tokens): the client's instance as the supervisor attested it in the open
  // request (OpenRequest::instance), or the owner of the session it was
  // opened through. A session without one cannot hold tokens.
  ServiceError open(Sys& sys, Cap<Endpoint> ep, std::string_view owner, S session, Message& reply, Rights rights) {
    if (sessions_.size() >= sessions_max) return ServiceError::quota_exceeded;
    const std::uint64_t badge = next_badge_++;
    const kernel::Result<Cap<Endpoint>> minted =
        sys.derive(ep, Rights::send() | Rights::grant() | Rights::revoke(), badge);
    if (!minted) return ServiceError::failed;
    sessions_.emplace(badge, Entry{std::move(session), *minted, std::string(owner)});
    reply.attach(*minted, rights);
    return ServiceError::ok;
  }

  S* find(std::uint64_t badge) {
    const auto it = sessions_.find(badge);
    return it != sessions_.end() ? &it->second.session : nullptr;
  }
  // The session's owner ("" if it has none); nullptr if there is no such session.
  const std::string* owner(std::uint64_t badge) const {
    const auto it = sessions_.find(badge);
    return it != sessions_.end() ? &it->second.owner : nullptr;
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
    std::string owner;
  };
  std::map<std::uint64_t, Entry> sessions_;
  std::uint64_t next_badge_ = 1;
};

// A session that is nothing but its client's: what a service of a program's
// own needs when its sessions carry no state.
struct ClientSession {
  std::uint64_t client = 0;
};

// The root of a service of a program's own whose sessions carry nothing but
// whose they are: it opens one for any client the supervisor asks for. A
// service derives from it and adds `handle` (see serve).
class BasicService {
 public:
  BasicService(Sys& sys, Cap<Endpoint> ep) : sys_(sys), ep_(ep) {}
  Sessions<ClientSession>& sessions() { return sessions_; }
  ServiceError open(const OpenRequest& r, Message& reply) {
    return sessions_.open(sys_, ep_, r.instance, ClientSession{r.client}, reply, for_supervisor);
  }

 protected:
  Sys& sys_;
  Cap<Endpoint> ep_;

 private:
  Sessions<ClientSession> sessions_;
};

// One request through a session, as a service's `handle` sees it: the
// operation, its arguments to read in order, and the message itself for the
// capabilities it carries (a handler takes one by clearing its handle).
struct Request {
  std::uint64_t badge;
  std::uint64_t op;
  Message& message;
  wire::Reader args;
};

// Capabilities a request carried that the handler did not take (it takes one by
// clearing its handle) are deleted after the request.
inline void drop_received(Sys& sys, Message& request) {
  for (std::uint32_t i = 0; i < request.cap_count; ++i)
    if (!request.caps[i].handle.is_null()) (void)sys.delete_cap(kernel::AnyCap(request.caps[i].handle));
  request.cap_count = 0;
}

// The root, the same in every server: RootOp::open goes to the service's
// `open`; RootOp::client_gone closes the client's sessions (after the
// service's `closing(client)`, if it has one) and answers u32 how many.
template <class Service>
ServiceError dispatch_root(Sys& sys, Service& service, Message& request, Message& reply) {
  wire::Reader args(request);
  if (request.label == static_cast<std::uint64_t>(RootOp::open)) {
    const std::optional<OpenRequest> open = read_open(args);
    if (!open) return ServiceError::malformed;
    return service.open(*open, reply);
  }
  if (request.label == static_cast<std::uint64_t>(RootOp::client_gone)) {
    const std::uint64_t client = args.u64();
    if (!args.done()) return ServiceError::malformed;
    if constexpr (requires { service.closing(client); }) service.closing(client);
    wire::Writer(reply).u32(static_cast<std::uint32_t>(service.sessions().close_client(sys, client)));
    return ServiceError::ok;
  }
  return ServiceError::wrong_session;  // the root opens sessions and closes them, nothing else
}

// Root or session: the prologue every request goes through before the
// service's handler. A root operation sent through a session is refused as
// one sent through the wrong kind of capability.
template <class Service>
ServiceError dispatch(Sys& sys, Service& service, std::uint64_t badge, Message& request, Message& reply) {
  if (badge == 0) return dispatch_root(sys, service, request, reply);
  auto* session = service.sessions().find(badge);
  if (session == nullptr) return ServiceError::wrong_session;  // closed: its copies are being revoked
  if (request.label == static_cast<std::uint64_t>(RootOp::open) ||
      request.label == static_cast<std::uint64_t>(RootOp::client_gone))
    return ServiceError::wrong_session;
  Request r{badge, request.label, request, wire::Reader(request)};
  return service.handle(*session, r, reply);
}

// Token issue and at-most-once application around dispatch. A token is
// issued to the owner of the session it is asked through, and applies only
// through a session of that owner (wrong_owner otherwise, counted in `audit`).
template <class Service>
ServiceError dispatch_once(Sys& sys, Service& service, std::uint64_t badge, Message& request, Message& reply,
                           Idempotency& once, ServerAudit& audit) {
  if (request.label == op_issue_token) {
    if (badge == 0) return ServiceError::wrong_session;
    const std::string* owner = service.sessions().owner(badge);
    if (owner == nullptr) return ServiceError::wrong_session;  // closed: its copies are being revoked
    std::uint64_t token = 0;
    const ServiceError e = once.issue(sys, *owner, &token);
    if (e == ServiceError::ok) wire::Writer(reply).u64(token);
    return e;
  }
  if ((request.label & op_once_bit) == 0) return dispatch(sys, service, badge, request, reply);
  if (badge == 0) return ServiceError::wrong_session;
  const std::string* owner = service.sessions().owner(badge);
  if (owner == nullptr) return ServiceError::wrong_session;
  if (request.length < once_trailer_bytes) return ServiceError::malformed;
  Message trailer{};
  trailer.length = once_trailer_bytes;
  std::memcpy(trailer.data.data(), request.data.data() + request.length - once_trailer_bytes, once_trailer_bytes);
  wire::Reader in(trailer);
  const std::uint64_t token = in.u64();
  const std::uint64_t seq = in.u64();
  request.length -= once_trailer_bytes;
  request.label &= ~op_once_bit;
  switch (once.check(token, *owner, seq)) {
    case Idempotency::Check::not_found: return ServiceError::not_found;
    case Idempotency::Check::wrong_owner: audit.note_wrong_owner(badge, token); return ServiceError::wrong_owner;
    case Idempotency::Check::already_applied: return ServiceError::ok;  // done before: acknowledged, not redone
    case Idempotency::Check::fresh: break;
  }
  const ServiceError e = dispatch(sys, service, badge, request, reply);
  if (e == ServiceError::ok) once.record(token, seq);
  return e;
}

// The request loop every server runs: receive, refuse restores, answer the
// root and find the session (dispatch), hand the rest to the service, reply
// with its status, until the endpoint goes. A reply the caller cannot take
// (its space is full) is dropped; the loop goes on.
//
// A service provides:
//   Sessions<S>& sessions();
//   ServiceError open(const OpenRequest&, Message& reply);   // a session for a client (root)
//   ServiceError handle(S& session, Request& request, Message& reply);
// and may provide:
//   void closing(std::uint64_t client);   // before a dead client's sessions close
//   void notified(std::uint64_t word);    // its bound notification was signalled
//   bool defer(std::uint64_t badge, Message& request, Cap<Reply> reply);
//       keeps a request to answer later (a read that waits for input): it then owns the reply capability
//   std::uint64_t deadline(); void timeout();
//       while a deadline is set (UINT64_MAX: none) the loop receives until it, and
//       calls timeout() when it passes with nothing received (a group commit's flush)
//   void replied();
//       called after each reply, before the next receive (the loop then replies and
//       receives in two calls): work a server does between requests (a checkpoint)
// With `once`, the loop also issues idempotency tokens and applies operations
// sent with op_once_bit at most once (see protocol.hpp).
template <class Service>
void serve(Sys& sys, Cap<Endpoint> ep, Service& service, ServerAudit& audit, Idempotency* once = nullptr) {
  Message request{}, reply{};
  auto deadline = [&]() -> std::uint64_t {
    if constexpr (requires { service.deadline(); }) return service.deadline();
    return UINT64_MAX;
  };
  auto next = [&]() -> kernel::Result<kernel::Received> {
    for (;;) {
      const std::uint64_t d = deadline();
      kernel::Result<kernel::Received> got = d == UINT64_MAX ? sys.receive(ep, request) : sys.receive_until(ep, request, d);
      if constexpr (requires { service.timeout(); }) {
        if (!got && got.error() == kernel::Error::timed_out) {
          service.timeout();
          continue;
        }
      }
      return got;
    }
  };
  constexpr bool replies_apart = requires { service.replied(); };
  kernel::Result<kernel::Received> r = next();
  while (r) {
    if (r->notified) {
      if constexpr (requires { service.notified(std::uint64_t{}); }) service.notified(r->badge);
      r = next();
      continue;
    }
    ++audit.requests;
    if constexpr (requires { service.defer(std::uint64_t{}, request, r->reply); }) {
      if ((request.label & ~op_once_bit) != op_restore_state && service.defer(r->badge, request, r->reply)) {
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
    ServiceError e = restore           ? ServiceError::untrusted_state
                     : once != nullptr ? dispatch_once(sys, service, r->badge, request, reply, *once, audit)
                                       : dispatch(sys, service, r->badge, request, reply);
    drop_received(sys, request);
    audit.count(e);
    if (e != ServiceError::ok) reply.cap_count = 0;  // a refusal carries no capability (a detail at most)
    reply.label = static_cast<std::uint64_t>(e);
    const Cap<kernel::Reply> answer = r->reply;
    if (replies_apart || deadline() != UINT64_MAX) {
      // A caller gone consumes the reply capability; one without room leaves it to drop.
      if (const kernel::Status sent = sys.reply(answer, reply); !sent && sent.error() == kernel::Error::cspace_full)
        (void)sys.delete_cap(answer);
      if constexpr (replies_apart) service.replied();
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

// A server's life once it is set up: announce `service` to the supervisor,
// handing it the root (a send-only capability to `ep`), then serve until the
// endpoint goes. Returns at once if the announcement is refused. May suspend.
template <class Service>
void announce_and_serve(Sys& sys, std::string_view name, Cap<Endpoint> ep, Service& service, ServerAudit& audit,
                        Idempotency* once = nullptr) {
  if (!announce(sys, name, ep)) return;
  serve(sys, ep, service, audit, once);
}

// The whole main of a server whose setup is its constructor,
// `Service(sys, ep, host)`: its endpoint, the service on it, the idempotency
// tokens its trusted storage keeps, announced as its host's service and served.
template <class Service, class Host>
void run_server(Sys& sys, Host& host) {
  const kernel::Result<Cap<Endpoint>> ep = sys.endpoint_create();
  if (!ep) return;
  Service service(sys, *ep, host);
  Idempotency once(host.store);
  announce_and_serve(sys, Host::service, *ep, service, host.audit, &once);
}

}  // namespace persim::servers
