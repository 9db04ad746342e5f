// Exactly-once effects on the server side: tokens a server issues, and for
// each the last sequence number applied, kept in the server's trusted storage.
#pragma once

#include <cassert>
#include <cstdint>
#include <map>
#include <string>

#include "kernel/sys.hpp"
#include "servers/protocol.hpp"
#include "servers/storage.hpp"

namespace persim::servers {

class Idempotency {
 public:
  // Loads the tokens `store` holds (a restarted server remembers them).
  explicit Idempotency(TrustedStore& store) : store_(store) {
    for (const auto& [key, value] : store_.records()) {
      if (!key.starts_with(prefix)) continue;
      std::uint64_t seq = 0;
      for (std::size_t i = 0; i < value.size() && i < 8; ++i) seq |= static_cast<std::uint64_t>(value[i]) << (8 * i);
      last_[std::stoull(key.substr(prefix.size()), nullptr, 16)] = seq;
    }
  }

  // A fresh token (never 0, never issued before). Errors: quota_exceeded.
  ServiceError issue(kernel::Sys& sys, std::uint64_t* token) {
    if (last_.size() >= tokens_max) return ServiceError::quota_exceeded;
    std::uint64_t t = 0;
    while (t == 0 || last_.contains(t)) t = sys.random();
    last_[t] = 0;
    persist(t);
    *token = t;
    return ServiceError::ok;
  }
  bool known(std::uint64_t token) const { return last_.contains(token); }
  // Whether (token, seq) was applied already.
  bool applied(std::uint64_t token, std::uint64_t seq) const { return seq <= last_.at(token); }
  // Sequence numbers only advance: `seq` was not applied already.
  void record(std::uint64_t token, std::uint64_t seq) {
    assert(known(token) && !applied(token, seq));
    last_[token] = seq;
    persist(token);
    assert(last_.at(token) == seq);
  }
  std::size_t size() const { return last_.size(); }

 private:
  static constexpr std::string_view prefix = "once:";
  void persist(std::uint64_t token) {
    std::byte seq[8];
    for (int i = 0; i < 8; ++i) seq[i] = static_cast<std::byte>(last_[token] >> (8 * i));
    static constexpr char hex[] = "0123456789abcdef";
    std::string key(prefix);
    for (int i = 15; i >= 0; --i) key.push_back(hex[(token >> (4 * i)) & 0xf]);
    store_.put(key, seq);
  }

  TrustedStore& store_;
  std::map<std::uint64_t, std::uint64_t> last_;
};

}  // namespace persim::servers
