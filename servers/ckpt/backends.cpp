#include "servers/ckpt/backends.hpp"

#include <cassert>
#include <stdexcept>
#include <string_view>
#include <variant>

#include "servers/ckpt/simdisk.hpp"

namespace persim::servers::ckpt {

namespace {

constexpr std::string_view record_prefix = "ckpt:";
constexpr std::string_view epoch_prefix = "ckpt-group:";  // a group's committed epoch, 8 bytes LE
// An image's base version and group epoch, 16 bytes LE (only if either is not 0).
constexpr std::string_view meta_prefix = "ckpt-meta:";

std::uint64_t le64(std::span<const std::byte> v) {
  std::uint64_t x = 0;
  for (std::size_t i = v.size(); i-- > 0;) x = x << 8 | static_cast<std::uint8_t>(v[i]);
  return x;
}

void put_le64(std::byte* out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>(v >> (8 * i));
}

// "ckpt:" (or "ckpt-meta:") slot NUL 16 hex digits of the version: records sort by version.
void record_key(std::string& key, std::string_view slot, std::uint64_t version,
                std::string_view prefix = record_prefix) {
  static constexpr char hex[] = "0123456789abcdef";
  char digits[16];
  for (int i = 0; i < 16; ++i) digits[15 - i] = hex[(version >> (4 * i)) & 0xf];
  key.assign(prefix).append(slot).push_back('\0');
  key.append(digits, sizeof digits);
}

}  // namespace

// ---------------------------------------------------------------- in memory

std::optional<std::string> MemoryStorage::load_epochs(std::map<std::string, std::uint64_t>* out) {
  for (const auto& [k, v] : store_.records())
    if (k.starts_with(epoch_prefix) && v.size() == 8) (*out)[k.substr(epoch_prefix.size())] = le64(v);
  return std::nullopt;
}

std::optional<std::string> MemoryStorage::load(std::vector<StoredImage>* out) {
  for (const auto& [k, v] : store_.records()) {
    if (!k.starts_with(record_prefix)) continue;
    const std::string_view rest = std::string_view(k).substr(record_prefix.size());
    const std::size_t nul = rest.find('\0');
    StoredImage& img = out->emplace_back(StoredImage{
        std::string(rest.substr(0, nul)), std::stoull(std::string(rest.substr(nul + 1)), nullptr, 16), v, 0, 0});
    record_key(key_, img.slot, img.version);
    assert(key_ == k && img.bytes.size() == v.size() && "read back: the record's key names the image loaded");
    record_key(key_, img.slot, img.version, meta_prefix);
    if (const auto* meta = store_.get(key_); meta != nullptr && meta->size() == 16) {
      img.base = le64(std::span(*meta).first(8));
      img.epoch = le64(std::span(*meta).subspan(8));
      metas_.emplace(img.slot, img.version);
    }
  }
  return std::nullopt;
}

std::optional<std::string> MemoryStorage::commit(const DurableImages::Batch& batch) {
  // Erasures first (no key is both put and erased): the trusted storage
  // reuses an erased record for the next put.
  for (const auto& [slot, version] : batch.erases) erase(slot, version);
  for (const StoredImage& img : batch.puts) put(img);
  for (const auto& [group, epoch] : batch.epochs) put_epoch(group, epoch);
  return std::nullopt;
}

void MemoryStorage::erase(const std::string& slot, std::uint64_t version) {
  record_key(key_, slot, version);
  store_.erase(key_);
  assert(store_.get(key_) == nullptr);
  if (!metas_.empty() && metas_.erase({slot, version}) != 0) {
    record_key(key_, slot, version, meta_prefix);
    store_.erase(key_);
  }
}

void MemoryStorage::put(const StoredImage& img) {
  record_key(key_, img.slot, img.version);
  store_.put(key_, img.bytes);
  // Written whole: what is stored is as long as what was asked, and the same at both ends.
  [[maybe_unused]] const TrustedStore::Bytes* stored = store_.get(key_);
  assert(stored != nullptr && stored->size() == img.bytes.size());
  assert(img.bytes.empty() || (stored->front() == img.bytes.front() && stored->back() == img.bytes.back()));
  if (img.base == 0 && img.epoch == 0) return;
  std::byte le[16];
  put_le64(le, img.base);
  put_le64(le + 8, img.epoch);
  record_key(key_, img.slot, img.version, meta_prefix);
  store_.put(key_, le);
  metas_.emplace(img.slot, img.version);
}

void MemoryStorage::put_epoch(const std::string& group, std::uint64_t epoch) {
  std::byte le[8];
  put_le64(le, epoch);
  key_.assign(epoch_prefix).append(group);
  store_.put(key_, le);
  assert(store_.get(key_) != nullptr && le64(*store_.get(key_)) == epoch);
}

// ---------------------------------------------------------------- durable

std::optional<std::string> SqliteStorage::load_epochs(std::map<std::string, std::uint64_t>* out) {
  auto loaded = db_->load_epochs();
  if (auto* e = std::get_if<std::string>(&loaded)) return *e;
  *out = std::move(std::get<std::map<std::string, std::uint64_t>>(loaded));
  return std::nullopt;
}

std::optional<std::string> SqliteStorage::load(std::vector<StoredImage>* out) {
  auto loaded = db_->load();
  if (auto* e = std::get_if<std::string>(&loaded)) return *e;
  *out = std::move(std::get<std::vector<StoredImage>>(loaded));
  return std::nullopt;
}

std::unique_ptr<Storage> open_storage(CkptHost& host) {
  if (host.disk == nullptr) return std::make_unique<MemoryStorage>(host.store);
  auto opened = DurableImages::open(host.database, host.disk->vfs_name().c_str());
  if (auto* e = std::get_if<std::string>(&opened)) {
    host.failure = *e;
    throw std::runtime_error("checkpoint store: " + *e);  // a crash: the supervisor's policy decides
  }
  return std::make_unique<SqliteStorage>(std::move(std::get<std::unique_ptr<DurableImages>>(opened)));
}

}  // namespace persim::servers::ckpt
