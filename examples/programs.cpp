#include "examples/programs.hpp"

#include <string>

namespace persim::examples {

using kernel::Sys;
using namespace persim::servers;

namespace {

constexpr int counter_steps = 10;
constexpr std::uint64_t step_ns = 1'000'000;  // a step a virtual millisecond

// Prints 1..counter_steps on its console, a step a millisecond. Grants: console.
void counter(Sys& sys) {
  const auto console = granted_session<ConsoleOp>(sys, "console");
  if (!console) return;
  for (int i = 1; i <= counter_steps; ++i) {
    if (!ConsoleClient(*console).write(sys, "count " + std::to_string(i) + "\n")) return;
    if (!sys.sleep_for(step_ns)) return;
  }
}

// Appends a line a millisecond to its log. Grants: log (a file, append mode),
// console. If the file server dies, asks the supervisor for its log again.
void logger(Sys& sys) {
  const auto log = granted_session<FsOp>(sys, "log");
  const auto console = granted_session<ConsoleOp>(sys, "console");
  if (!log || !console) return;
  FsClient file(*log);
  for (int i = 1; i <= counter_steps; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    Outcome o = file.write(sys, line);
    if (o.server_gone()) {
      Session<FsOp> fresh;
      if (!regrant(sys, "log", &fresh)) return;
      file = FsClient(fresh);
      o = file.write(sys, line);
    }
    if (!o) {
      (void)ConsoleClient(*console).write(sys, "logger: " + o.describe() + "\n");
      return;
    }
    if (!sys.sleep_for(step_ns)) return;
  }
  (void)ConsoleClient(*console).write(sys, "logger: done\n");
}

// Opens two accounts (if new) and moves random amounts between them with
// transactions that check both balances; prints the total, which never changes.
// Grants: accounts (a key-value table), console.
void bank(Sys& sys) {
  const auto accounts = granted_session<KvOp>(sys, "accounts");
  const auto console_cap = granted_session<ConsoleOp>(sys, "console");
  if (!accounts || !console_cap) return;
  const KvClient kv(*accounts);
  const ConsoleClient console(*console_cap);
  for (const char* name : {"alice", "bob"}) (void)kv.cas(sys, name, std::nullopt, "100");
  for (int i = 0; i < counter_steps; ++i) {
    std::string a, b;
    if (!kv.get(sys, "alice", &a) || !kv.get(sys, "bob", &b)) return;
    const long alice = std::stol(a), bob = std::stol(b);
    const long amount = static_cast<long>(sys.random_below(20));
    const bool to_bob = sys.random_below(2) == 0;
    const long new_alice = to_bob ? alice - amount : alice + amount;
    const long new_bob = to_bob ? bob + amount : bob - amount;
    using K = KvTxnOp::Kind;
    const Outcome o = kv.txn(sys, {{K::check_equal, "alice", a},
                                   {K::check_equal, "bob", b},
                                   {K::put, "alice", std::to_string(new_alice)},
                                   {K::put, "bob", std::to_string(new_bob)}});
    const long total = o ? new_alice + new_bob : alice + bob;
    if (!console.write(sys, "moved " + std::to_string(amount) + (to_bob ? " to bob" : " to alice") + ": " +
                                o.describe() + ", total " + std::to_string(total) + "\n"))
      return;
    if (!sys.sleep_for(step_ns)) return;
  }
}

// Reads lines from its console and writes each back numbered: a program that
// only uses stdin and stdout. Grants: console. Ends at the end of input.
void echo(Sys& sys) {
  const auto console_cap = granted_session<ConsoleOp>(sys, "console");
  if (!console_cap) return;
  const ConsoleClient console(*console_cap);
  bool end = false;
  for (int n = 1; !end; ++n) {
    std::string line;
    if (!console.read_line(sys, &line, &end) || line.empty()) return;
    if (!console.write(sys, std::to_string(n) + ": " + line)) return;
  }
}

}  // namespace

void register_examples(System& system) {
  (void)system.add_program("echo", echo);
  (void)system.add_program("counter", counter);
  (void)system.add_program("logger", logger);
  (void)system.add_program("bank", bank);
}

}  // namespace persim::examples
