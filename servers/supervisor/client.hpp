// The supervisor's client side: what a program (a server among them) asks of
// the supervisor through its "supervisor" grant, a send-only capability badged
// with its client id that every program is given. Servers include this, never
// the supervisor itself.
#pragma once

#include <cstdint>
#include <string_view>

#include "kernel/sys.hpp"
#include "servers/client.hpp"

namespace persim::servers {

// The grant every program is given (a manifest may not name a grant so).
inline constexpr std::string_view supervisor_grant = "supervisor";

// Supervisor protocol (requests through the "supervisor" grant).
enum class SupervisorOp : std::uint64_t {
  announce = 1,  // args: str service; caps: the service's endpoint (send)
  regrant = 2,   // args: str grant name -> caps: the grant, resolved afresh
};

// A server announces `service`, handing the supervisor its endpoint (the
// supervisor keeps a send-only capability to it: the service's root). Errors:
// permission_denied (the manifest does not provide it), exists (announced
// already). May suspend.
[[nodiscard]] Outcome announce(kernel::Sys& sys, std::string_view service, kernel::Cap<kernel::Endpoint> endpoint);

// Asks the supervisor for manifest grant `name` again; waits while its service
// restarts. On success `*granted` is the new capability. Errors: not_found (no
// such grant), unavailable (its service will not come back), or the server's
// refusal of the open. May suspend.
[[nodiscard]] Outcome regrant(kernel::Sys& sys, std::string_view name, kernel::Cap<kernel::Endpoint>* granted);

// The same, for a grant the caller knows the protocol of.
template <class Protocol>
[[nodiscard]] Outcome regrant(kernel::Sys& sys, std::string_view name, Session<Protocol>* granted) {
  kernel::Cap<kernel::Endpoint> cap;
  const Outcome o = regrant(sys, name, &cap);
  if (o) *granted = Session<Protocol>(cap);
  return o;
}

}  // namespace persim::servers
