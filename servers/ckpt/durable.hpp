// The checkpoint store's durable backend: an embedded SQLite database (WAL,
// synchronous=FULL) on a SimDisk or a real file. Many processes' checkpoints
// commit in one transaction (group commit): one sync for the whole batch.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace persim::servers {

struct StoredImage {
  std::string slot;
  std::uint64_t version;
  std::vector<std::byte> bytes;
  std::uint64_t base = 0;   // the version this image is a delta on (0: whole)
  std::uint64_t epoch = 0;  // the group epoch it committed in (0: not a group member's)
};

class DurableImages {
 public:
  // Opens (creating if need be) the database `path` through `vfs` (null: the
  // operating system's, on a real file). Error: a message naming what failed.
  static std::variant<std::unique_ptr<DurableImages>, std::string> open(const std::string& path, const char* vfs);
  ~DurableImages();
  DurableImages(const DurableImages&) = delete;
  DurableImages& operator=(const DurableImages&) = delete;

  // Every image kept, by slot, oldest version first.
  std::variant<std::vector<StoredImage>, std::string> load();

  // Each checkpoint group's last committed epoch.
  std::variant<std::map<std::string, std::uint64_t>, std::string> load_epochs();

  // One transaction: the puts, the erasures, the groups' new epochs. When it
  // returns ok the batch is on the platter (synced); on error nothing of it is.
  struct Batch {
    std::vector<StoredImage> puts;
    std::vector<std::pair<std::string, std::uint64_t>> erases;
    std::vector<std::pair<std::string, std::uint64_t>> epochs;  // group, its committed epoch from now
  };
  std::optional<std::string> commit(const Batch& batch);

  std::uint64_t transactions() const { return transactions_; }

 private:
  explicit DurableImages(sqlite3* db) : db_(db) {}
  std::optional<std::string> exec(const char* sql);
  std::string error(const char* what) const;

  sqlite3* db_;
  sqlite3_stmt* put_ = nullptr;
  sqlite3_stmt* erase_ = nullptr;
  sqlite3_stmt* epoch_ = nullptr;
  std::uint64_t transactions_ = 0;
};

}  // namespace persim::servers
