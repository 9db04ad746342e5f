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

#include "kernel/limits.hpp"
#include "kernel/message.hpp"
#include "kernel/rights.hpp"

namespace persim::servers {

enum class ServiceError : std::uint8_t {
  ok = 0,
  unknown_operation,  // no such operation on this kind of session
  malformed,          // arguments missing, too long, or left over
  wrong_session,      // the capability used is not a session this operation applies to
  untrusted_state,    // a request to restore server state from client bytes: always refused
  not_found,          // no such file, key, image, service or grant
  exists,             // already exists (a service announced twice)
  permission_denied,  // the session's mode does not allow it
  quota_exceeded,     // a named limit or a per-client quota
  conflict,           // compare-and-set or transaction precondition failed
  unavailable,        // the service is not running (crashed, restarting)
  failed,             // the request was authorized but could not be carried out (see the reply)
  wrong_owner,        // an idempotency token sent through a session of another client than its owner's
};
inline constexpr int service_error_count = static_cast<int>(ServiceError::wrong_owner) + 1;
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
  // A session for a client: the one open every server answers, standard or a
  // program's own. Args: an OpenRequest (servers/session.hpp: argument, mode,
  // client, instance, group, group size; write_open / read_open). Result:
  // the session capability.
  open = 0x101,
};

// Exactly-once effects (libpersist's exactly-once mode). Any session of a
// server that supports them answers op_issue_token with a fresh token (u64).
// An operation whose label has op_once_bit set carries a trailer after its
// arguments, u64 token then u64 seq: the server applies it at most once per
// token and sequence number (a seq at or below the last applied one is
// answered ok, with no results, and not applied). A token belongs to the
// client it was issued to (the instance the supervisor attested when it
// opened the session the token was asked through), so a restarted program
// still uses its own; sent through a session of any other client it is
// refused with wrong_owner, audited, and changes nothing. Tokens live in the
// server's trusted storage, so a server crash does not forget them. Send
// only effects this way.
inline constexpr std::uint64_t op_issue_token = 0x200;
inline constexpr std::uint64_t op_once_bit = std::uint64_t{1} << 32;
inline constexpr std::size_t once_trailer_bytes = 16;

// The rights of a session capability opened through the root, for the
// supervisor to pass on (send-only) to its client.
inline constexpr kernel::Rights for_supervisor = kernel::Rights::send() | kernel::Rights::grant();

// Named limits shared by the servers.
// Open sessions per server. With pending_max deferred replies and a few
// capabilities of its own, a server's space never fills (kernel cspace_slots_max).
inline constexpr std::size_t sessions_max = 2048;
inline constexpr std::size_t pending_max = 1024;  // requests a server keeps to answer later (console reads)
inline constexpr std::size_t name_bytes_max = 128;       // paths, keys, table and console names
inline constexpr std::size_t chunk_bytes_max = 192;      // payload bytes moved by one read or write
inline constexpr std::size_t file_bytes_max = 1 << 20;   // one file
inline constexpr std::size_t files_max = 4096;           // files on one file server
inline constexpr std::size_t kv_value_bytes_max = 128;   // one value
inline constexpr std::size_t kv_keys_max = 1 << 16;      // keys in one store
inline constexpr std::size_t txn_ops_max = 8;            // operations in one transaction
inline constexpr std::size_t console_bytes_max = 1 << 20;  // output kept per console session name
inline constexpr std::size_t tokens_max = 1 << 16;         // idempotency tokens one server keeps
static_assert(chunk_bytes_max + 32 <= kernel::msg_bytes_max, "a chunk and its header fit one message");
static_assert(sessions_max + pending_max + 16 < kernel::cspace_slots_max, "a server's space never fills");

}  // namespace persim::servers
