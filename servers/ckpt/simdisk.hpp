// A simulated disk for SQLite: a VFS whose files live in memory, each with what
// has reached the platter (synced) and what only the cache holds (written
// since the last sync). A power loss throws the cache away, or tears it: a
// prefix of the unsynced writes survives, the last of them cut at a sector
// boundary. A corrupt write flips a byte of synced data. All choices come from
// the seed given, so a failure replays.
//
// It stands for the durable storage of one node. The checkpoint store keeps
// its SQLite database on it; tests and scenarios cut the power under it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace persim::servers {

enum class PowerLoss : std::uint8_t {
  clean,  // every unsynced write is lost
  torn,   // a prefix of the unsynced writes survives, the last one torn at a sector
};

struct SimDiskStats {
  std::uint64_t syncs = 0;
  std::uint64_t writes = 0;
  std::uint64_t bytes_written = 0;
  std::uint64_t power_losses = 0;
};

class SimDisk {
 public:
  static constexpr std::size_t sector_bytes = 512;

  // Registers a VFS named `vfs_name` (unique per disk) with SQLite.
  explicit SimDisk(std::string vfs_name);
  // Unregisters it. No database may be open on it.
  ~SimDisk();
  SimDisk(const SimDisk&) = delete;
  SimDisk& operator=(const SimDisk&) = delete;

  const std::string& vfs_name() const { return vfs_name_; }

  // Cuts the power: every file reverts to what was synced (plus, when torn,
  // some of what was not). No database may be open on the disk: a node's
  // processes die with its power, the store's connection with them.
  void power_loss(PowerLoss mode, std::uint64_t seed);
  // Arms a crash: the power will be found to have gone just as the n-th write
  // from now began (1: the next write). Writing goes on until power_loss() is
  // called, which then restores the disk as it was at that instant (that write
  // in progress, torn or not). crashed() tells whether the instant has passed.
  void crash_at_write(std::uint64_t n);
  // The power goes now: what is written from here on (the store's connection
  // closing as its process dies, say) is gone at power_loss(), which restores
  // the disk as it is at this instant.
  void cut();
  bool crashed() const { return crashed_; }
  // Called at the instant of an armed crash (e.g. to stop the node there).
  std::function<void()> on_crash;

  // Flips one bit of synced data of `file` at `offset` (no-op past its end).
  void corrupt(std::string_view file, std::uint64_t offset, int bit = 0);

  SimDiskStats stats() const { return stats_; }
  // The files and their current (cached) sizes, for tests and inspection.
  std::map<std::string, std::size_t> files() const;

  // ---- used by the VFS glue (simdisk.cpp)
  struct Write {
    std::uint64_t offset;
    std::vector<std::byte> bytes;  // empty with truncate: a truncation to `offset`
    bool truncate = false;
  };
  struct File {
    std::vector<std::byte> durable;  // what survives a power loss
    std::vector<std::byte> current;  // what reads see: durable with pending applied
    std::vector<Write> pending;      // since the last sync, in order
    int open_handles = 0;
  };
  File& file(const std::string& name) { return files_[name]; }
  File* find(const std::string& name);
  void remove(const std::string& name) { files_.erase(name); }
  // Called before each write is applied; takes the crash snapshot when armed.
  void before_write(const std::string& name, const Write& w);
  void count_sync() { ++stats_.syncs; }
  std::uint64_t next_random();
  // A name for one of SQLite's nameless temporary files.
  std::string temp_name() { return "temp-" + std::to_string(++temp_files_); }

 private:
  std::string vfs_name_;
  std::map<std::string, File> files_;
  SimDiskStats stats_;
  std::uint64_t random_state_ = 0x9e3779b97f4a7c15ull;
  std::uint64_t temp_files_ = 0;
  std::uint64_t crash_countdown_ = 0;  // 0: not armed
  bool crashed_ = false;
  std::map<std::string, File> at_crash_;
  struct Vfs;
  std::unique_ptr<Vfs> vfs_;
};

}  // namespace persim::servers
