// A server's own trusted storage: records that outlive the server process
// (a crash, a restart) and that no capability reaches. The server alone writes
// it, before it acknowledges a request, so an acknowledged write survives the
// server's death. The host owns it (it is the disk the server sits on).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace persim::servers {

class TrustedStore {
 public:
  using Bytes = std::vector<std::byte>;

  void put(std::string_view key, std::span<const std::byte> value) {
    records_.insert_or_assign(std::string(key), Bytes(value.begin(), value.end()));
    ++writes_;
  }
  void erase(std::string_view key) {
    if (const auto it = records_.find(key); it != records_.end()) records_.erase(it);
    ++writes_;
  }
  const Bytes* get(std::string_view key) const {
    const auto it = records_.find(key);
    return it != records_.end() ? &it->second : nullptr;
  }
  // In key order (deterministic).
  const std::map<std::string, Bytes, std::less<>>& records() const { return records_; }
  std::uint64_t writes() const { return writes_; }

 private:
  std::map<std::string, Bytes, std::less<>> records_;
  std::uint64_t writes_ = 0;
};

}  // namespace persim::servers
