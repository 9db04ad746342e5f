// What a client sees of a request: the kernel's verdict on the call itself
// (the capability may be severed because the server died), then the server's.
#pragma once

#include <string>

#include "kernel/result.hpp"
#include "kernel/sys.hpp"
#include "servers/protocol.hpp"

namespace persim::servers {

struct Outcome {
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

// Sends `request` (its label set by the caller) and returns the outcome.
inline Outcome call(kernel::Sys& sys, kernel::Cap<kernel::Endpoint> cap, const kernel::Message& request,
                    kernel::Message& reply) {
  const kernel::Status s = sys.call(cap, request, reply);
  if (!s) return {s.error(), ServiceError::ok};
  return {kernel::Error{}, status_of(reply)};
}

}  // namespace persim::servers
