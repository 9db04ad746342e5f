#include "servers/ckpt/simdisk.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "kernel/rng.hpp"

namespace persim::servers {

namespace {

// What SQLite allocates per open file (szOsFile): the base, then ours.
struct OpenFile {
  sqlite3_file base;
  SimDisk* disk;
  std::string* name;  // owned; the key of the disk's file
  bool delete_on_close;
};

SimDisk* disk_of(sqlite3_vfs* vfs) { return static_cast<SimDisk*>(vfs->pAppData); }
OpenFile* open_file(sqlite3_file* f) { return reinterpret_cast<OpenFile*>(f); }

void apply_write(std::vector<std::byte>& data, const SimDisk::Write& w) {
  if (w.truncate) {
    data.resize(w.offset);
    return;
  }
  if (data.size() < w.offset + w.bytes.size()) data.resize(w.offset + w.bytes.size());
  std::copy(w.bytes.begin(), w.bytes.end(), data.begin() + static_cast<std::ptrdiff_t>(w.offset));
  assert(data.size() >= w.offset + w.bytes.size());
}

// ---------------------------------------------------------------- io methods

int x_close(sqlite3_file* f) {
  OpenFile* of = open_file(f);
  if (SimDisk::File* file = of->disk->find(*of->name)) {
    --file->open_handles;
    if (of->delete_on_close) of->disk->remove(*of->name);
  }
  delete of->name;
  of->name = nullptr;
  return SQLITE_OK;
}

int x_read(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  OpenFile* of = open_file(f);
  const SimDisk::File* file = of->disk->find(*of->name);
  const std::vector<std::byte> empty;
  const std::vector<std::byte>& data = file != nullptr ? file->current : empty;
  const auto at = static_cast<std::size_t>(offset);
  const std::size_t n = at < data.size() ? std::min<std::size_t>(static_cast<std::size_t>(amount), data.size() - at) : 0;
  assert(n <= static_cast<std::size_t>(amount) && (n == 0 || at + n <= data.size()));
  if (n > 0) std::memcpy(out, data.data() + at, n);
  if (n < static_cast<std::size_t>(amount)) {
    std::memset(static_cast<char*>(out) + n, 0, static_cast<std::size_t>(amount) - n);
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

int x_write(sqlite3_file* f, const void* in, int amount, sqlite3_int64 offset) {
  OpenFile* of = open_file(f);
  SimDisk::File& file = of->disk->file(*of->name);
  SimDisk::Write w{static_cast<std::uint64_t>(offset), {}, false};
  const auto* bytes = static_cast<const std::byte*>(in);
  w.bytes.assign(bytes, bytes + amount);
  assert(amount >= 0 && w.bytes.size() == static_cast<std::size_t>(amount));
  of->disk->before_write(*of->name, w);
  apply_write(file.current, w);
  // Read back: what reads now see at `offset` is what was written, all of it.
  assert(w.bytes.empty() || std::memcmp(file.current.data() + offset, in, w.bytes.size()) == 0);
  file.pending.push_back(std::move(w));
  return SQLITE_OK;
}

int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  OpenFile* of = open_file(f);
  SimDisk::File& file = of->disk->file(*of->name);
  const SimDisk::Write w{static_cast<std::uint64_t>(size), {}, true};
  of->disk->before_write(*of->name, w);
  apply_write(file.current, w);
  assert(file.current.size() == static_cast<std::size_t>(size));
  file.pending.push_back(w);
  return SQLITE_OK;
}

int x_sync(sqlite3_file* f, int) {
  OpenFile* of = open_file(f);
  SimDisk::File& file = of->disk->file(*of->name);
  // What the cache held reaches the platter: the pending writes, in order
  // (not a copy of the whole file: a sync costs what was written since the last).
  for (const SimDisk::Write& w : file.pending) apply_write(file.durable, w);
  file.pending.clear();
  // What reads saw is what survives now (the same writes, in the same order).
  assert(file.durable.size() == file.current.size());
  of->disk->count_sync();
  return SQLITE_OK;
}

int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
  OpenFile* of = open_file(f);
  const SimDisk::File* file = of->disk->find(*of->name);
  *size = file != nullptr ? static_cast<sqlite3_int64>(file->current.size()) : 0;
  return SQLITE_OK;
}

// One process uses the disk at a time (the checkpoint store, in EXCLUSIVE
// locking mode): locks always succeed.
int x_lock(sqlite3_file*, int) { return SQLITE_OK; }
int x_unlock(sqlite3_file*, int) { return SQLITE_OK; }
int x_check_reserved_lock(sqlite3_file*, int* out) {
  *out = 0;
  return SQLITE_OK;
}
int x_file_control(sqlite3_file*, int, void*) { return SQLITE_NOTFOUND; }
int x_sector_size(sqlite3_file*) { return static_cast<int>(SimDisk::sector_bytes); }
// No atomic or safe-append guarantees: SQLite must assume the worst.
int x_device_characteristics(sqlite3_file*) { return 0; }

const sqlite3_io_methods io_methods = {
    1,  // version 1: no shared memory; WAL runs in EXCLUSIVE locking mode
    x_close, x_read, x_write, x_truncate, x_sync, x_file_size, x_lock, x_unlock, x_check_reserved_lock,
    x_file_control, x_sector_size, x_device_characteristics,
    nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

// ---------------------------------------------------------------- vfs methods

int x_open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  OpenFile* of = open_file(f);
  of->base.pMethods = nullptr;
  SimDisk* disk = disk_of(vfs);
  std::string key = name != nullptr ? std::string(name) : disk->temp_name();
  SimDisk::File* existing = disk->find(key);
  if (existing == nullptr && (flags & SQLITE_OPEN_CREATE) == 0) return SQLITE_CANTOPEN;
  SimDisk::File& file = disk->file(key);
  ++file.open_handles;
  of->disk = disk;
  of->name = new std::string(std::move(key));
  of->delete_on_close = (flags & SQLITE_OPEN_DELETEONCLOSE) != 0 || name == nullptr;
  of->base.pMethods = &io_methods;
  if (out_flags != nullptr) *out_flags = flags;
  return SQLITE_OK;
}

int x_delete(sqlite3_vfs* vfs, const char* name, int) {
  disk_of(vfs)->remove(name);
  return SQLITE_OK;
}

int x_access(sqlite3_vfs* vfs, const char* name, int, int* out) {
  *out = disk_of(vfs)->find(name) != nullptr ? 1 : 0;
  return SQLITE_OK;
}

int x_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  std::snprintf(out, static_cast<std::size_t>(n), "%s", name);
  return SQLITE_OK;
}

int x_randomness(sqlite3_vfs* vfs, int n, char* out) {
  for (int i = 0; i < n; ++i) out[i] = static_cast<char>(disk_of(vfs)->next_random());
  return n;
}

int x_sleep(sqlite3_vfs*, int microseconds) { return microseconds; }  // nothing to wait for: no other process
int x_current_time(sqlite3_vfs*, double* now) {
  *now = 2440587.5;  // the Unix epoch: no wall clock inside the simulation
  return SQLITE_OK;
}
int x_current_time_int64(sqlite3_vfs*, sqlite3_int64* now) {
  *now = 210866760000000LL;
  return SQLITE_OK;
}
int x_get_last_error(sqlite3_vfs*, int, char*) { return 0; }

}  // namespace

struct SimDisk::Vfs {
  sqlite3_vfs vfs{};
};

SimDisk::SimDisk(std::string vfs_name) : vfs_name_(std::move(vfs_name)), vfs_(std::make_unique<Vfs>()) {
  sqlite3_vfs& v = vfs_->vfs;
  v.iVersion = 2;
  v.szOsFile = sizeof(OpenFile);
  v.mxPathname = 512;
  v.zName = vfs_name_.c_str();
  v.pAppData = this;
  v.xOpen = x_open;
  v.xDelete = x_delete;
  v.xAccess = x_access;
  v.xFullPathname = x_full_pathname;
  v.xRandomness = x_randomness;
  v.xSleep = x_sleep;
  v.xCurrentTime = x_current_time;
  v.xGetLastError = x_get_last_error;
  v.xCurrentTimeInt64 = x_current_time_int64;
  const int rc = sqlite3_vfs_register(&v, 0);
  assert(rc == SQLITE_OK);
  (void)rc;
}

SimDisk::~SimDisk() { sqlite3_vfs_unregister(&vfs_->vfs); }

SimDisk::File* SimDisk::find(const std::string& name) {
  const auto it = files_.find(name);
  return it != files_.end() ? &it->second : nullptr;
}

std::uint64_t SimDisk::next_random() { return kernel::splitmix64(random_state_); }

void SimDisk::crash_at_write(std::uint64_t n) {
  crash_countdown_ = n;
  crashed_ = false;
}

void SimDisk::before_write(const std::string& name, const Write& w) {
  ++stats_.writes;
  stats_.bytes_written += w.bytes.size();
  if (crash_countdown_ == 0 || crashed_ || --crash_countdown_ != 0) return;
  // The power goes now: this write is the one in progress.
  crashed_ = true;
  at_crash_ = files_;
  at_crash_[name].pending.push_back(w);
  if (on_crash) on_crash();
}

void SimDisk::cut() {
  if (crashed_) return;  // an armed crash already fixed the instant
  crashed_ = true;
  at_crash_ = files_;
}

void SimDisk::power_loss(PowerLoss mode, std::uint64_t seed) {
  ++stats_.power_losses;
  for (const auto& [name, file] : files_) {
    (void)name;
    assert(file.open_handles == 0 && "close the database before cutting the power");
    (void)file;
  }
  if (crashed_) files_ = std::move(at_crash_);
  at_crash_.clear();
  crashed_ = false;
  crash_countdown_ = 0;
  kernel::Rng rng(seed);
  for (auto& [name, file] : files_) {
    file.open_handles = 0;
    std::vector<std::byte> survived = file.durable;
    if (mode == PowerLoss::torn && !file.pending.empty()) {
      // Writes reach the platter in order; the power goes during one of them,
      // which then survives only up to a sector boundary.
      const std::size_t complete = rng.below(file.pending.size() + 1);
      for (std::size_t i = 0; i < complete; ++i) apply_write(survived, file.pending[i]);
      if (complete < file.pending.size() && !file.pending[complete].truncate) {
        Write partial = file.pending[complete];
        const std::size_t sectors = partial.bytes.size() / sector_bytes;
        partial.bytes.resize(sectors == 0 ? 0 : rng.below(sectors + 1) * sector_bytes);
        apply_write(survived, partial);
      }
    }
    file.durable = survived;
    file.current = std::move(survived);
    file.pending.clear();
    assert(file.durable.size() == file.current.size());
  }
}

void SimDisk::corrupt(std::string_view name, std::uint64_t offset, int bit) {
  File* file = find(std::string(name));
  if (file == nullptr || offset >= file->durable.size()) return;
  file->durable[offset] ^= static_cast<std::byte>(1 << bit);
  if (offset < file->current.size()) file->current[offset] ^= static_cast<std::byte>(1 << bit);
}

std::map<std::string, std::size_t> SimDisk::files() const {
  std::map<std::string, std::size_t> out;
  for (const auto& [name, file] : files_) out.emplace(name, file.current.size());
  return out;
}

}  // namespace persim::servers
