// What every server protocol shares: how a request and a reply are laid out,
// the closed set of errors a server answers with, the operation no server
// accepts (restoring client-supplied server state), and the named limits.
//
// A request's label is its operation; its payload is wire-encoded arguments. A
// reply's label is a ServiceError (ok = 0) and its payload the results. Every
// server has the same shape (see servers/README.md): a root capability, held
// only by the supervisor, through which sessions are opened on behalf of a
// client; sessions are badged send-only capabilities minted from the server's
// endpoint, each revocable by the server.
#pragma once

#include <cstdint>
#include <string_view>

#include "kernel/message.hpp"

namespace persim::servers {

enum class ServiceError : std::uint8_t {
  ok = 0,
  unknown_operation,  // no such operation on this kind of session
  malformed,          // arguments missing, too long, or left over
  wrong_session,      // the capability used is not a session this operation applies to
  untrusted_state,    // a request to restore server state from client bytes: always refused
  not_found,          // no such file, key, image, service or grant
  exists,             // already exists (exclusive create, service announced twice)
  permission_denied,  // the session's mode does not allow it
  quota_exceeded,     // a named limit or a per-client quota
  conflict,           // compare-and-set or transaction precondition failed
  unavailable,        // the service is not running (crashed, restarting)
  failed,             // the request was authorized but could not be carried out (see the reply)
};
inline constexpr int service_error_count = static_cast<int>(ServiceError::failed) + 1;
std::string_view to_string(ServiceError e) noexcept;

inline ServiceError status_of(const kernel::Message& reply) {
  return reply.label < static_cast<std::uint64_t>(service_error_count) ? static_cast<ServiceError>(reply.label)
                                                                       : ServiceError::malformed;
}

// The one operation number reserved in every protocol: "restore my session (or
// your state) from these bytes". No server accepts it; each refuses it, audits
// it, and changes nothing. Operation numbers of the servers stay below it.
inline constexpr std::uint64_t op_restore_state = 0xffff;

// Root operations every server answers (only the supervisor holds a root).
enum class RootOp : std::uint64_t {
  // A client is gone (its process died): close every session opened for it.
  // Args: u64 client.
  client_gone = 0x100,
};

// Named limits shared by the servers.
inline constexpr std::size_t sessions_max = 4096;        // open sessions per server
inline constexpr std::size_t name_bytes_max = 128;       // paths, keys, table and console names
inline constexpr std::size_t chunk_bytes_max = 192;      // payload bytes moved by one read or write
inline constexpr std::size_t file_bytes_max = 1 << 20;   // one file
inline constexpr std::size_t files_max = 4096;           // files on one file server
inline constexpr std::size_t kv_value_bytes_max = 128;   // one value
inline constexpr std::size_t kv_keys_max = 1 << 16;      // keys in one store
inline constexpr std::size_t txn_ops_max = 8;            // operations in one transaction
inline constexpr std::size_t console_bytes_max = 1 << 20;  // output kept per console session name
static_assert(chunk_bytes_max + 32 <= kernel::msg_bytes_max, "a chunk and its header fit one message");

}  // namespace persim::servers
