#include "servers/protocol.hpp"

namespace persim::servers {

std::string_view to_string(ServiceError e) noexcept {
  switch (e) {
    case ServiceError::ok: return "ok";
    case ServiceError::unknown_operation: return "unknown_operation";
    case ServiceError::malformed: return "malformed";
    case ServiceError::wrong_session: return "wrong_session";
    case ServiceError::untrusted_state: return "untrusted_state";
    case ServiceError::not_found: return "not_found";
    case ServiceError::exists: return "exists";
    case ServiceError::permission_denied: return "permission_denied";
    case ServiceError::quota_exceeded: return "quota_exceeded";
    case ServiceError::conflict: return "conflict";
    case ServiceError::unavailable: return "unavailable";
    case ServiceError::failed: return "failed";
    case ServiceError::wrong_owner: return "wrong_owner";
  }
  return "unknown_service_error";
}

}  // namespace persim::servers
