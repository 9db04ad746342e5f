#include "servers/ckpt/durable.hpp"

#include <cassert>
#include <memory>
#include <variant>

namespace persim::servers {

std::string DurableImages::error(const char* what) const { return std::string(what) + ": " + sqlite3_errmsg(db_); }

std::optional<std::string> DurableImages::exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) == SQLITE_OK) return std::nullopt;
  std::string out = std::string(sql) + ": " + (message != nullptr ? message : "error");
  sqlite3_free(message);
  return out;
}

std::variant<std::unique_ptr<DurableImages>, std::string> DurableImages::open(const std::string& path,
                                                                               const char* vfs) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
  std::unique_ptr<DurableImages> store(new DurableImages(db));
  if (rc != SQLITE_OK) return store->error(("open " + path).c_str());
  // EXCLUSIVE first: WAL then keeps its index in the process, not shared memory.
  for (const char* sql : {"PRAGMA locking_mode=EXCLUSIVE", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                          // A rowid table: images are large blobs, which WITHOUT ROWID tables store badly.
                          "CREATE TABLE IF NOT EXISTS images (slot TEXT NOT NULL, version INTEGER NOT NULL, "
                          "bytes BLOB NOT NULL, base INTEGER NOT NULL DEFAULT 0, epoch INTEGER NOT NULL DEFAULT 0, "
                          "PRIMARY KEY (slot, version))",
                          // A group's epoch commits with its members' images: a restart after a
                          // power loss finds both, or neither.
                          "CREATE TABLE IF NOT EXISTS groups (name TEXT PRIMARY KEY, epoch INTEGER NOT NULL)"}) {
    if (auto e = store->exec(sql)) return *e;
  }
  // A database from before delta images has no `base` column (every image in
  // it is whole), and one from before group rollbacks no `epoch` column: the
  // columns' defaults say so.
  for (const char* column : {"base", "epoch"}) {
    sqlite3_stmt* probe = nullptr;
    const bool has = sqlite3_prepare_v2(db, ("SELECT " + std::string(column) + " FROM images LIMIT 0").c_str(), -1,
                                        &probe, nullptr) == SQLITE_OK;
    sqlite3_finalize(probe);
    if (!has)
      if (auto e = store->exec(("ALTER TABLE images ADD COLUMN " + std::string(column) + " INTEGER NOT NULL DEFAULT 0").c_str()))
        return *e;
  }
  if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO images (slot, version, bytes, base, epoch) VALUES (?1, ?2, ?3, ?4, ?5)", -1,
                         &store->put_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "DELETE FROM images WHERE slot = ?1 AND version = ?2", -1, &store->erase_, nullptr) !=
          SQLITE_OK ||
      sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO groups (name, epoch) VALUES (?1, ?2)", -1, &store->epoch_,
                         nullptr) != SQLITE_OK)
    return store->error("prepare");
  return store;
}

DurableImages::~DurableImages() {
  sqlite3_finalize(put_);
  sqlite3_finalize(erase_);
  sqlite3_finalize(epoch_);
  sqlite3_close(db_);
}

std::variant<std::vector<StoredImage>, std::string> DurableImages::load() {
  sqlite3_stmt* q = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT slot, version, bytes, base, epoch FROM images ORDER BY slot, version", -1, &q, nullptr) !=
      SQLITE_OK)
    return error("load");
  std::vector<StoredImage> out;
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    const auto* blob = static_cast<const std::byte*>(sqlite3_column_blob(q, 2));
    const auto size = static_cast<std::size_t>(sqlite3_column_bytes(q, 2));
    assert(blob != nullptr || size == 0);
    out.push_back({reinterpret_cast<const char*>(sqlite3_column_text(q, 0)),
                   static_cast<std::uint64_t>(sqlite3_column_int64(q, 1)), std::vector<std::byte>(blob, blob + size),
                   static_cast<std::uint64_t>(sqlite3_column_int64(q, 3)),
                   static_cast<std::uint64_t>(sqlite3_column_int64(q, 4))});
    assert(out.back().bytes.size() == size && "read back whole");
  }
  sqlite3_finalize(q);
  if (rc != SQLITE_DONE) return error("load");
  return out;
}

std::variant<std::map<std::string, std::uint64_t>, std::string> DurableImages::load_epochs() {
  sqlite3_stmt* q = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT name, epoch FROM groups", -1, &q, nullptr) != SQLITE_OK) return error("load epochs");
  std::map<std::string, std::uint64_t> out;
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW)
    out[reinterpret_cast<const char*>(sqlite3_column_text(q, 0))] = static_cast<std::uint64_t>(sqlite3_column_int64(q, 1));
  sqlite3_finalize(q);
  if (rc != SQLITE_DONE) return error("load epochs");
  return out;
}

std::optional<std::string> DurableImages::commit(const Batch& batch) {
  if (auto e = exec("BEGIN IMMEDIATE")) return e;
  auto step = [](sqlite3_stmt* s) {
    const int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE;
  };
  for (const StoredImage& img : batch.puts) {
    sqlite3_bind_text(put_, 1, img.slot.data(), static_cast<int>(img.slot.size()), SQLITE_STATIC);
    sqlite3_bind_int64(put_, 2, static_cast<sqlite3_int64>(img.version));
    sqlite3_bind_blob64(put_, 3, img.bytes.data(), img.bytes.size(), SQLITE_STATIC);
    sqlite3_bind_int64(put_, 4, static_cast<sqlite3_int64>(img.base));
    sqlite3_bind_int64(put_, 5, static_cast<sqlite3_int64>(img.epoch));
    if (!step(put_)) {
      const std::string e = error("put");
      (void)exec("ROLLBACK");
      return e;
    }
    assert(sqlite3_changes(db_) == 1 && "one row written per image");
  }
  for (const auto& [slot, version] : batch.erases) {
    sqlite3_bind_text(erase_, 1, slot.data(), static_cast<int>(slot.size()), SQLITE_STATIC);
    sqlite3_bind_int64(erase_, 2, static_cast<sqlite3_int64>(version));
    if (!step(erase_)) {
      const std::string e = error("erase");
      (void)exec("ROLLBACK");
      return e;
    }
  }
  for (const auto& [group, epoch] : batch.epochs) {
    sqlite3_bind_text(epoch_, 1, group.data(), static_cast<int>(group.size()), SQLITE_STATIC);
    sqlite3_bind_int64(epoch_, 2, static_cast<sqlite3_int64>(epoch));
    if (!step(epoch_)) {
      const std::string e = error("epoch");
      (void)exec("ROLLBACK");
      return e;
    }
    assert(sqlite3_changes(db_) == 1 && "one row written per group");
  }
  if (auto e = exec("COMMIT")) {
    (void)exec("ROLLBACK");
    return e;
  }
  assert(sqlite3_get_autocommit(db_) != 0 && "the transaction ended");
  ++transactions_;
  return std::nullopt;
}

}  // namespace persim::servers
