// The console: per-session output and input streams, named by the supervisor
// (by default after the program instance, so a restarted program writes on).
// In simulation it records every stream's output and serves input the host
// queues (System::console_input); the bytes live in the host's ConsoleHost,
// which stands for the terminal and outlives the console process. In
// interactive mode a TerminalBridge (terminal.hpp) connects one stream to the
// real stdin and stdout through the node's Boost.Asio io_context.
//
// A read waits until input is queued for its stream, or the stream is closed
// (end of input); the console answers it then.
//
// Input is kept whole, and read by position: a session starts reading where
// the stream's readers got to, and may go back (seek_input) to a position it
// recorded, so a restarted program re-reads what it read since its checkpoint.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/sys.hpp"
#include "servers/client.hpp"
#include "servers/session.hpp"
#include "servers/storage.hpp"

namespace persim::servers {

// Sessions are opened through the root (RootOp::open, session.hpp) on the
// grant's stream, by default the client's instance's.
enum class ConsoleOp : std::uint64_t {
  write = 2,  // session: bytes (<= chunk_bytes_max)
  read = 3,   // session: u32 max -> bytes, u8 end of input; waits for input
  tell_input = 4,  // session: -> u64 the session's input position
  seek_input = 5,  // session: u64 position (at most what has arrived) to read from next
};

struct ConsoleSession {
  std::uint64_t client = 0;
  std::string stream;
  std::uint64_t input_at = 0;  // where this session reads its stream's input next
};

struct ConsoleState {
  Sessions<ConsoleSession> sessions;
  std::vector<std::byte> encode() const;
};

// The terminal, and the console's own storage (its idempotency tokens).
struct ConsoleHost final : ServerHost {
  static constexpr std::string_view service = "console";
  std::map<std::string, std::string> output;  // everything written, per stream
  std::map<std::string, std::string> input;   // all input that arrived, per stream
  std::map<std::string, std::uint64_t> read_to;  // how far the stream's readers got: where new sessions start
  std::map<std::string, bool> closed;         // no more input will come
  const ConsoleState* live = nullptr;
  // The running console's notification (in its own space): the host signals it
  // (Node::signal) when it queues input, so waiting reads are answered.
  kernel::Handle wake;
  // Called on every write, e.g. to copy a stream to the real stdout.
  std::function<void(const std::string& stream, std::string_view text)> echo;
};

// Grants: "supervisor" (to announce "console").
void console_main(kernel::Sys& sys, ConsoleHost& host);

class ConsoleClient {
 public:
  ConsoleClient() = default;
  explicit ConsoleClient(Session<ConsoleOp> session) : session_(session) {}
  Session<ConsoleOp> session() const { return session_; }
  // Writes `text`, in chunks of at most chunk_bytes_max.
  Outcome write(kernel::Sys& sys, std::string_view text) const;
  // Reads queued input (at most `max`, at most chunk_bytes_max), waiting until
  // there is some or the stream is closed (then `*end` is set and `out` may be short).
  Outcome read(kernel::Sys& sys, std::uint32_t max, std::string* out, bool* end = nullptr) const;
  // Reads up to and including the next newline (or to the end of input).
  Outcome read_line(kernel::Sys& sys, std::string* line, bool* end) const;
  Outcome tell_input(kernel::Sys& sys, std::uint64_t* position) const;
  Outcome seek_input(kernel::Sys& sys, std::uint64_t position) const;

 private:
  Session<ConsoleOp> session_;
};

}  // namespace persim::servers
