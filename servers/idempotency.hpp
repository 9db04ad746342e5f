// Exactly-once effects on the server side: tokens a server issues, and for
// each the last sequence number applied, kept in the server's trusted storage.
#pragma once

#include <cassert>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/sys.hpp"
#include "servers/protocol.hpp"
#include "servers/storage.hpp"

namespace persim::servers {

// A token's owner is the client's instance, as the supervisor attested it
// when it opened the session the token was issued through: stable across the
// client's restarts, different for every other client.
class Idempotency {
 public:
  // Loads the tokens `store` holds (a restarted server remembers them).
  explicit Idempotency(TrustedStore& store) : store_(store) {
    for (const auto& [key, value] : store_.records()) {
      if (!key.starts_with(prefix)) continue;
      assert(value.size() >= 8);
      Record r;
      for (std::size_t i = 0; i < 8; ++i) r.seq |= static_cast<std::uint64_t>(value[i]) << (8 * i);
      r.owner.assign(reinterpret_cast<const char*>(value.data()) + 8, value.size() - 8);
      tokens_[std::stoull(key.substr(prefix.size()), nullptr, 16)] = std::move(r);
    }
  }

  // A fresh token for `owner` (never 0, never issued before). Errors:
  // quota_exceeded; wrong_session for a session that has no owner (one a
  // program's own service opened without naming one).
  ServiceError issue(kernel::Sys& sys, std::string_view owner, std::uint64_t* token) {
    if (owner.empty()) return ServiceError::wrong_session;
    if (tokens_.size() >= tokens_max) return ServiceError::quota_exceeded;
    std::uint64_t t = 0;
    while (t == 0 || tokens_.contains(t)) t = sys.random();
    tokens_[t] = Record{std::string(owner), 0};
    persist(t);
    *token = t;
    assert(tokens_.at(t).seq == 0 && tokens_.at(t).owner == owner);
    return ServiceError::ok;
  }

  // Whether `owner` may apply (token, seq): ok if it is new, already_applied
  // if it was applied before (acknowledged, not redone); not_found for a
  // token this server never issued, wrong_owner for another client's.
  enum class Check : std::uint8_t { fresh, already_applied, not_found, wrong_owner };
  Check check(std::uint64_t token, std::string_view owner, std::uint64_t seq) const {
    const auto it = tokens_.find(token);
    if (it == tokens_.end()) return Check::not_found;
    if (it->second.owner != owner) return Check::wrong_owner;
    return seq <= it->second.seq ? Check::already_applied : Check::fresh;
  }
  // After (token, seq) was applied for its owner: later seqs only.
  void record(std::uint64_t token, std::uint64_t seq) {
    Record& r = tokens_.at(token);
    assert(seq > r.seq);  // sequence numbers only advance
    r.seq = seq;
    persist(token);
    assert(tokens_.at(token).seq == seq);
  }
  std::size_t size() const { return tokens_.size(); }

 private:
  struct Record {
    std::string owner;
    std::uint64_t seq = 0;  // the last applied
  };
  static constexpr std::string_view prefix = "once:";
  // The record: u64 seq (little-endian), then the owner's bytes.
  void persist(std::uint64_t token) {
    const Record& r = tokens_.at(token);
    std::vector<std::byte> value(8 + r.owner.size());
    for (int i = 0; i < 8; ++i) value[i] = static_cast<std::byte>(r.seq >> (8 * i));
    std::memcpy(value.data() + 8, r.owner.data(), r.owner.size());
    static constexpr char hex[] = "0123456789abcdef";
    std::string key(prefix);
    for (int i = 15; i >= 0; --i) key.push_back(hex[(token >> (4 * i)) & 0xf]);
    store_.put(key, value);
  }

  TrustedStore& store_;
  std::map<std::uint64_t, Record> tokens_;
};

}  // namespace persim::servers
