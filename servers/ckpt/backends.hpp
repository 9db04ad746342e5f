// Where the checkpoint store keeps its images: in memory (the store's trusted
// storage) or durable (SQLite on the node's simulated disk). Internal to the
// store (servers/ckpt/).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "servers/ckpt/ckpt.hpp"
#include "servers/ckpt/durable.hpp"

namespace persim::servers::ckpt {

// What load() finds at start, what commit() makes lasting (all of a batch, or
// none of it). Errors: a message naming what failed.
class Storage {
 public:
  virtual ~Storage() = default;
  virtual std::optional<std::string> load(std::vector<StoredImage>* out) = 0;
  virtual std::optional<std::string> load_epochs(std::map<std::string, std::uint64_t>* out) = 0;
  // No key is both put and erased.
  virtual std::optional<std::string> commit(const DurableImages::Batch& batch) = 0;
  virtual bool durable() const = 0;
};

// The in-memory backend: records in the store's trusted storage, lasting once written.
class MemoryStorage final : public Storage {
 public:
  explicit MemoryStorage(TrustedStore& store) : store_(store) {}
  std::optional<std::string> load_epochs(std::map<std::string, std::uint64_t>* out) override;
  std::optional<std::string> load(std::vector<StoredImage>* out) override;
  std::optional<std::string> commit(const DurableImages::Batch& batch) override;
  bool durable() const override { return false; }

 private:
  void erase(const std::string& slot, std::uint64_t version);
  void put(const StoredImage& img);
  void put_epoch(const std::string& group, std::uint64_t epoch);

  TrustedStore& store_;
  std::string key_;  // built in a buffer kept from one commit to the next
  std::set<std::pair<std::string, std::uint64_t>> metas_;  // the images with a meta record (load and commits)
};

// The durable backend: SQLite on the node's simulated disk.
class SqliteStorage final : public Storage {
 public:
  explicit SqliteStorage(std::unique_ptr<DurableImages> db) : db_(std::move(db)) {}
  std::optional<std::string> load_epochs(std::map<std::string, std::uint64_t>* out) override;
  std::optional<std::string> load(std::vector<StoredImage>* out) override;
  std::optional<std::string> commit(const DurableImages::Batch& batch) override { return db_->commit(batch); }
  bool durable() const override { return true; }

 private:
  std::unique_ptr<DurableImages> db_;
};

// The backend `host` asks for: durable if it has a disk (its database opened
// there), else in memory. Throws (a crash, for the supervisor's policy) if the
// database will not open, `host.failure` saying why.
std::unique_ptr<Storage> open_storage(CkptHost& host);

}  // namespace persim::servers::ckpt
