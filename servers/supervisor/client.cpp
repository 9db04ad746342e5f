#include "servers/supervisor/client.hpp"

#include "servers/wire.hpp"

namespace persim::servers {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Error;
using kernel::Message;
using kernel::Rights;
using kernel::Sys;

Outcome announce(Sys& sys, std::string_view service, Cap<Endpoint> endpoint) {
  const kernel::Result<Cap<Endpoint>> supervisor = sys.granted<Endpoint>(supervisor_grant);
  if (!supervisor) return {supervisor.error(), ServiceError::ok};
  Message request{}, reply{};
  request.label = static_cast<std::uint64_t>(SupervisorOp::announce);
  wire::Writer(request).str(service);
  request.attach(endpoint, Rights::send());
  return call(sys, *supervisor, request, reply);
}

Outcome regrant(Sys& sys, std::string_view name, Cap<Endpoint>* granted) {
  const kernel::Result<Cap<Endpoint>> supervisor = sys.granted<Endpoint>(supervisor_grant);
  if (!supervisor) return {supervisor.error(), ServiceError::ok};
  Message request{}, reply{};
  request.label = static_cast<std::uint64_t>(SupervisorOp::regrant);
  if (!wire::Writer(request).str(name).ok()) return {Error{}, ServiceError::malformed};
  const Outcome o = call(sys, *supervisor, request, reply);
  if (o) *granted = reply.received_cap<Endpoint>(0);
  return o;
}

}  // namespace persim::servers
