// The key-value store: tables of keys to byte values, kept in the store's own
// trusted storage and written through before each reply. A session designates
// one table. Transactions check and write several keys atomically.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/sys.hpp"
#include "servers/client.hpp"
#include "servers/session.hpp"
#include "servers/storage.hpp"

namespace persim::servers {

// Sessions are opened through the root (RootOp::open, session.hpp), each on
// the grant's table.
enum class KvOp : std::uint64_t {
  get = 2,   // str key -> bytes value (not_found)
  put = 3,   // str key, bytes value
  del = 4,   // str key (not_found)
  cas = 5,   // str key, u8 has_expected, [bytes expected], u8 has_new, [bytes new] (conflict)
  txn = 6,   // u8 n <= txn_ops_max, n x (u8 kind, str key, [bytes value]) (conflict: u8 failing op)
};

// One operation of a transaction. Checks come first in effect: all must hold,
// then all writes apply, in order; otherwise nothing does.
struct KvTxnOp {
  enum class Kind : std::uint8_t { check_equal = 0, check_absent = 1, put = 2, del = 3 };
  Kind kind;
  std::string key;
  std::string value;  // check_equal, put
};

struct KvSession {
  std::uint64_t client = 0;
  std::string table;
};

struct KvState {
  std::map<std::string, std::map<std::string, std::string>> tables;
  Sessions<KvSession> sessions;
  std::vector<std::byte> encode() const;
};

// What outlives a key-value store process: its disk (the tables), its audit counts.
struct KvHost final : ServerHost {
  static constexpr std::string_view service = "kv";
  const KvState* live = nullptr;
};

// Grants: "supervisor" (to announce "kv").
void kv_main(kernel::Sys& sys, KvHost& host);

class KvClient {
 public:
  KvClient() = default;
  explicit KvClient(Session<KvOp> session) : session_(session) {}
  Session<KvOp> session() const { return session_; }

  Outcome get(kernel::Sys& sys, std::string_view key, std::string* value) const;
  Outcome put(kernel::Sys& sys, std::string_view key, std::string_view value) const;
  Outcome del(kernel::Sys& sys, std::string_view key) const;
  // Sets `key` to `desired` (absent: delete) if it is `expected` (absent: missing).
  Outcome cas(kernel::Sys& sys, std::string_view key, std::optional<std::string_view> expected,
              std::optional<std::string_view> desired) const;
  // On conflict, `*failed` is the index of the first check that did not hold.
  Outcome txn(kernel::Sys& sys, const std::vector<KvTxnOp>& ops, std::uint8_t* failed = nullptr) const;

 private:
  Session<KvOp> session_;
};

}  // namespace persim::servers
