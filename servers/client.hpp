// What a client sees of a request: the kernel's verdict on the call itself
// (the capability may be severed because the server died), then the server's;
// and sessions typed by the protocol they speak.
#pragma once

#include <cstring>
#include <string>
#include <string_view>

#include "kernel/result.hpp"
#include "kernel/sys.hpp"
#include "servers/protocol.hpp"
#include "servers/wire.hpp"

namespace persim::servers {

// Two closed error sets, the kernel's and the servers', one of them set at
// most; describe() is the message. Like the kernel's Result, not to be ignored.
struct [[nodiscard]] Outcome {
  kernel::Error kernel{};  // the call failed: the request never reached a server
  ServiceError service = ServiceError::ok;

  bool ok() const { return kernel == kernel::Error{} && service == ServiceError::ok; }
  explicit operator bool() const { return ok(); }
  // A dead server shows as a severed or destroyed capability: re-obtain it.
  bool server_gone() const {
    return kernel == kernel::Error::severed || kernel == kernel::Error::object_destroyed ||
           kernel == kernel::Error::peer_died || kernel == kernel::Error::bad_handle;
  }
  // "ok", "kernel: severed" or "not_found".
  std::string describe() const {
    if (kernel != kernel::Error{}) return "kernel: " + std::string(kernel::to_string(kernel));
    return std::string(to_string(service));
  }
};

// A session capability typed by the protocol it speaks (its server's operation
// enum: Session<FsOp>, Session<KvOp>, ...), in the manner of Genode's
// Capability<Session>: a file session cannot be passed where a key-value one
// is expected. An endpoint capability is given its type once, where a grant is
// taken by name (granted_session) or a server's reply hands one over; the
// kernel still checks every use.
template <class Protocol>
class Session {
 public:
  constexpr Session() = default;
  constexpr explicit Session(kernel::Cap<kernel::Endpoint> cap) : cap_(cap) {}
  constexpr kernel::Cap<kernel::Endpoint> cap() const { return cap_; }
  constexpr bool is_null() const { return cap_.is_null(); }
  constexpr bool operator==(const Session&) const = default;

 private:
  kernel::Cap<kernel::Endpoint> cap_;
};

// The grant `name` of this process, as a session of `Protocol`. Errors: as
// Sys::granted (not_found).
template <class Protocol>
kernel::Result<Session<Protocol>> granted_session(kernel::Sys& sys, std::string_view name) {
  const kernel::Result<kernel::Cap<kernel::Endpoint>> cap = sys.granted<kernel::Endpoint>(name);
  if (!cap) return cap.error();
  return Session<Protocol>(*cap);
}

// Sends `request` (its label set by the caller) and returns the outcome.
inline Outcome call(kernel::Sys& sys, kernel::Cap<kernel::Endpoint> cap, const kernel::Message& request,
                    kernel::Message& reply) {
  const kernel::Status s = sys.call(cap, request, reply);
  if (!s) return {s.error(), ServiceError::ok};
  return {kernel::Error{}, status_of(reply)};
}

// The same, through a typed session.
template <class Protocol>
Outcome call(kernel::Sys& sys, Session<Protocol> session, const kernel::Message& request, kernel::Message& reply) {
  return call(sys, session.cap(), request, reply);
}

// A fresh idempotency token from the server behind `session`.
inline Outcome issue_token(kernel::Sys& sys, kernel::Cap<kernel::Endpoint> session, std::uint64_t* token) {
  kernel::Message request{}, reply{};
  request.label = op_issue_token;
  const Outcome o = call(sys, session, request, reply);
  if (o) *token = wire::Reader(reply).u64();
  return o;
}

// Turns an encoded request into its at-most-once form: (token, seq) appended,
// op_once_bit set. False if the trailer does not fit.
inline bool make_once(kernel::Message& request, std::uint64_t token, std::uint64_t seq) {
  if (request.length + once_trailer_bytes > kernel::msg_bytes_max) return false;
  kernel::Message trailer{};
  wire::Writer(trailer).u64(token).u64(seq);
  std::memcpy(request.data.data() + request.length, trailer.data.data(), once_trailer_bytes);
  request.length += once_trailer_bytes;
  request.label |= op_once_bit;
  return true;
}

}  // namespace persim::servers
