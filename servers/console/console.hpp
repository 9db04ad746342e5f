// The console: per-session output and input streams, named by the supervisor
// (by default after the program instance, so a restarted program writes on).
// In simulation it records every stream's output and serves input the host
// queued; the bytes live in the host's ConsoleHost, which stands for the
// terminal and outlives the console process.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/sys.hpp"
#include "servers/client.hpp"
#include "servers/session.hpp"

namespace persim::servers {

enum class ConsoleOp : std::uint64_t {
  open = 1,   // root: str stream, u64 client -> session cap
  write = 2,  // session: bytes (<= chunk_bytes_max)
  read = 3,   // session: u32 max -> bytes, empty when no input is queued
};

struct ConsoleSession {
  std::uint64_t client = 0;
  std::string stream;
};

struct ConsoleState {
  Sessions<ConsoleSession> sessions;
  std::vector<std::byte> encode() const;
};

struct ConsoleHost {
  std::map<std::string, std::string> output;  // everything written, per stream
  std::map<std::string, std::string> input;   // queued by the host, not yet read
  ServerAudit audit;
  const ConsoleState* live = nullptr;
};

// Grants: "supervisor" (to announce "console").
void console_main(kernel::Sys& sys, ConsoleHost& host);

class ConsoleClient {
 public:
  ConsoleClient() = default;
  explicit ConsoleClient(kernel::Cap<kernel::Endpoint> session) : session_(session) {}
  kernel::Cap<kernel::Endpoint> cap() const { return session_; }
  // Writes `text`, in chunks of at most chunk_bytes_max.
  Outcome write(kernel::Sys& sys, std::string_view text) const;
  // Reads what input is queued (at most `max`, at most chunk_bytes_max); may be empty.
  Outcome read(kernel::Sys& sys, std::uint32_t max, std::string* out) const;

 private:
  kernel::Cap<kernel::Endpoint> session_;
};

Outcome console_open(kernel::Sys& sys, kernel::Cap<kernel::Endpoint> root, std::string_view stream,
                     std::uint64_t client, kernel::Cap<kernel::Endpoint>* session);

}  // namespace persim::servers
