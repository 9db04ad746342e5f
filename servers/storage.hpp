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
    ++writes_;
    if (const auto it = records_.find(key); it != records_.end()) {
      it->second.assign(value.begin(), value.end());
      return;
    }
    if (spare_.empty()) {
      records_.emplace(std::string(key), Bytes(value.begin(), value.end()));
      return;
    }
    // The record erased last, its key and bytes reused (a checkpoint store
    // erases one image and puts the next, over and over).
    spare_.key().assign(key);
    spare_.mapped().assign(value.begin(), value.end());
    records_.insert(std::move(spare_));
    spare_ = {};
  }
  void erase(std::string_view key) {
    ++writes_;
    if (const auto it = records_.find(key); it != records_.end()) spare_ = records_.extract(it);
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
  std::map<std::string, Bytes, std::less<>>::node_type spare_;
  std::uint64_t writes_ = 0;
};

}  // namespace persim::servers
