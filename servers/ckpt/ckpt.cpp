#include "servers/ckpt/ckpt.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>

#include "servers/ckpt/durable.hpp"
#include "servers/ckpt/simdisk.hpp"
#include "servers/wire.hpp"

namespace persim::servers {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Message;
using kernel::Sys;

namespace {

constexpr std::string_view record_prefix = "ckpt:";
constexpr std::string_view epoch_prefix = "ckpt-group:";  // a group's committed epoch, 8 bytes LE
// An image's base version and group epoch, 16 bytes LE (only if either is not 0).
constexpr std::string_view meta_prefix = "ckpt-meta:";

// An image about to be added to a slot.
struct Added {
  std::uint64_t version = 0;
  std::uint64_t base = 0;
};

// The versions of `slot` that stay once `added` (newer than any it has,
// oldest first) are in. A restore point is an image with its base, if it is a
// delta. The slot keeps the newest images_kept restore points that share no
// image, newest first, so that one damaged image leaves a point to restore
// from: with whole images only, the newest images_kept images; with deltas, the
// newest image and its base, and the newest image older than that base (and
// its base). Every added image stays, with its base. Into `keep`, sorted
// (reused from call to call).
void kept_versions(const CkptSlot& slot, std::span<const Added> added, std::vector<std::uint64_t>& keep) {
  keep.clear();
  std::size_t points = 0;
  auto consider = [&](std::uint64_t version, std::uint64_t base, bool always) {
    const bool shares = std::find(keep.begin(), keep.end(), version) != keep.end() ||
                        (base != 0 && std::find(keep.begin(), keep.end(), base) != keep.end());
    if (!always && (shares || points >= images_kept)) return;
    if (!shares) ++points;
    keep.push_back(version);
    if (base != 0) keep.push_back(base);
  };
  for (auto a = added.rbegin(); a != added.rend(); ++a) consider(a->version, a->base, true);
  for (auto it = slot.images.rbegin(); it != slot.images.rend() && points < images_kept; ++it)
    consider(it->first, slot.base_of(it->first), false);
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
}

// Whole images only, in the slot and among those added: then the images kept
// are simply the newest images_kept (the common case, on every checkpoint's
// path, which kept_versions' bookkeeping would slow).
bool whole_only(const CkptSlot& slot, std::span<const Added> added) {
  return slot.bases.empty() && std::all_of(added.begin(), added.end(), [](const Added& a) { return a.base == 0; });
}

std::uint64_t le64(std::span<const std::byte> v) {
  std::uint64_t x = 0;
  for (std::size_t i = v.size(); i-- > 0;) x = x << 8 | static_cast<std::uint8_t>(v[i]);
  return x;
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

// Where the store keeps its images: what load() finds at start, what commit()
// makes lasting (all of a batch, or none of it).
class Storage {
 public:
  virtual ~Storage() = default;
  virtual std::optional<std::string> load(std::vector<StoredImage>* out) = 0;
  virtual std::optional<std::string> load_epochs(std::map<std::string, std::uint64_t>* out) = 0;
  virtual std::optional<std::string> commit(const DurableImages::Batch& batch) = 0;
  virtual bool durable() const = 0;
};

// The in-memory backend: records in the store's trusted storage, lasting once written.
class MemoryStorage final : public Storage {
 public:
  explicit MemoryStorage(TrustedStore& store) : store_(store) {}
  std::optional<std::string> load_epochs(std::map<std::string, std::uint64_t>* out) override {
    for (const auto& [k, v] : store_.records())
      if (k.starts_with(epoch_prefix) && v.size() == 8) (*out)[k.substr(epoch_prefix.size())] = le64(v);
    return std::nullopt;
  }
  std::optional<std::string> load(std::vector<StoredImage>* out) override {
    for (const auto& [k, v] : store_.records()) {
      if (!k.starts_with(record_prefix)) continue;
      const std::string_view rest = std::string_view(k).substr(record_prefix.size());
      const std::size_t nul = rest.find('\0');
      StoredImage& img = out->emplace_back(StoredImage{
          std::string(rest.substr(0, nul)), std::stoull(std::string(rest.substr(nul + 1)), nullptr, 16), v, 0, 0});
      record_key(key_, img.slot, img.version, meta_prefix);
      if (const auto* meta = store_.get(key_); meta != nullptr && meta->size() == 16) {
        img.base = le64(std::span(*meta).first(8));
        img.epoch = le64(std::span(*meta).subspan(8));
        metas_.emplace(img.slot, img.version);
      }
    }
    return std::nullopt;
  }
  std::optional<std::string> commit(const DurableImages::Batch& batch) override {
    // Erasures first (no key is both put and erased): the trusted storage
    // reuses an erased record for the next put.
    for (const auto& [slot, version] : batch.erases) {
      record_key(key_, slot, version);
      store_.erase(key_);
      if (!metas_.empty() && metas_.erase({slot, version}) != 0) {
        record_key(key_, slot, version, meta_prefix);
        store_.erase(key_);
      }
    }
    for (const StoredImage& img : batch.puts) {
      record_key(key_, img.slot, img.version);
      store_.put(key_, img.bytes);
      if (img.base == 0 && img.epoch == 0) continue;
      std::byte le[16];
      for (int i = 0; i < 8; ++i) {
        le[i] = static_cast<std::byte>(img.base >> (8 * i));
        le[8 + i] = static_cast<std::byte>(img.epoch >> (8 * i));
      }
      record_key(key_, img.slot, img.version, meta_prefix);
      store_.put(key_, le);
      metas_.emplace(img.slot, img.version);
    }
    for (const auto& [group, epoch] : batch.epochs) {
      std::byte le[8];
      for (int i = 0; i < 8; ++i) le[i] = static_cast<std::byte>(epoch >> (8 * i));
      key_.assign(epoch_prefix).append(group);
      store_.put(key_, le);
    }
    return std::nullopt;
  }
  bool durable() const override { return false; }

 private:
  TrustedStore& store_;
  std::string key_;  // built in a buffer kept from one commit to the next
  std::set<std::pair<std::string, std::uint64_t>> metas_;  // the images with a meta record (load and commits)
};

// The durable backend: SQLite on the node's simulated disk.
class SqliteStorage final : public Storage {
 public:
  explicit SqliteStorage(std::unique_ptr<DurableImages> db) : db_(std::move(db)) {}
  std::optional<std::string> load_epochs(std::map<std::string, std::uint64_t>* out) override {
    auto loaded = db_->load_epochs();
    if (auto* e = std::get_if<std::string>(&loaded)) return *e;
    *out = std::move(std::get<std::map<std::string, std::uint64_t>>(loaded));
    return std::nullopt;
  }
  std::optional<std::string> load(std::vector<StoredImage>* out) override {
    auto loaded = db_->load();
    if (auto* e = std::get_if<std::string>(&loaded)) return *e;
    *out = std::move(std::get<std::vector<StoredImage>>(loaded));
    return std::nullopt;
  }
  std::optional<std::string> commit(const DurableImages::Batch& batch) override { return db_->commit(batch); }
  bool durable() const override { return true; }

 private:
  std::unique_ptr<DurableImages> db_;
};

// A commit taken from its session: its image and, if it waits, whom to answer.
struct Pending {
  Cap<kernel::Reply> reply;
  std::string slot;
  std::uint64_t version;
  std::vector<std::byte> bytes;
  std::uint64_t base = 0;
  std::uint64_t epoch = 0;  // a group member's image: the epoch it commits in
};

// A delta's base must be a whole image the slot keeps.
ServiceError check_base(const CkptSlot& slot, std::uint64_t base) {
  if (base == 0) return ServiceError::ok;
  if (!slot.images.contains(base)) return ServiceError::not_found;
  if (slot.base_of(base) != 0) return ServiceError::conflict;  // a delta on a delta
  return ServiceError::ok;
}

class CkptStore {
 public:
  CkptStore(Sys& sys, Cap<Endpoint> ep, CkptHost& host, Storage& storage, std::vector<StoredImage> images)
      : sys_(sys), ep_(ep), host_(host), storage_(storage) {
    for (StoredImage& img : images) {
      CkptSlot& slot = state_.slots[img.slot];
      slot.next_version = std::max(slot.next_version, img.version + 1);
      slot.images[img.version] = std::move(img.bytes);
      if (img.base != 0) slot.bases[img.version] = img.base;
      if (img.epoch != 0) slot.epochs[img.version] = img.epoch;
    }
    host_.live = &state_;
  }
  ~CkptStore() { host_.live = nullptr; }
  CkptStore(const CkptStore&) = delete;
  CkptStore& operator=(const CkptStore&) = delete;

  Sessions<CkptSession>& sessions() { return state_.sessions; }

  ServiceError handle(CkptSession& session, Request& r, Message& reply) {
    CkptSession* s = &session;
    const std::uint64_t badge = r.badge;
    const std::uint64_t op = r.op;
    const Message& request = r.message;
    wire::Reader& in = r.args;
    if (op == static_cast<std::uint64_t>(CkptOp::chunk)) return chunk(badge, *s, in);
    CkptSlot& slot = state_.slots[s->slot];
    switch (static_cast<CkptOp>(op)) {
      case CkptOp::begin: {
        const std::uint64_t size = in.u64();
        const std::uint64_t base = in.u64();
        if (!in.done()) return ServiceError::malformed;
        if (size > image_bytes_max || size > slot.quota) return ServiceError::quota_exceeded;
        if (const ServiceError e = check_base(slot, base); e != ServiceError::ok) return e;
        // Zeroed, as a fresh vector would be; in the buffer of the last image
        // dropped, if there is one, rather than a new allocation.
        spare_.assign(size, std::byte{0});
        s->staging.emplace(std::move(spare_));
        spare_ = {};
        s->written.assign(size, false);
        s->staging_base = base;
        covered_[badge] = 0;
        return ServiceError::ok;
      }
      case CkptOp::chunk: return chunk(badge, *s, in);
      case CkptOp::stage: return stage(badge, *s, slot, request, in);
      case CkptOp::fetch: return fetch(slot, request, in, reply);
      case CkptOp::commit: return commit(badge, *s, slot, in, reply);
      case CkptOp::info: {
        if (!in.done()) return ServiceError::malformed;
        if (slot.images.empty()) return ServiceError::not_found;
        const auto& [version, image] = *slot.images.rbegin();
        wire::Writer(reply).u64(version).u64(image.size());
        return ServiceError::ok;
      }
      case CkptOp::read: {
        const std::uint64_t version = in.u64();
        const std::uint64_t offset = in.u64();
        const std::uint32_t max = in.u32();
        if (!in.done() || max > chunk_bytes_max) return ServiceError::malformed;
        const auto it = slot.images.find(version);
        if (it == slot.images.end()) return ServiceError::not_found;
        const std::uint64_t from = std::min<std::uint64_t>(offset, it->second.size());
        const std::uint64_t n = std::min<std::uint64_t>(max, it->second.size() - from);
        wire::Writer(reply).bytes(std::span(it->second.data() + from, n));
        return ServiceError::ok;
      }
      case CkptOp::list: {
        if (!in.done()) return ServiceError::malformed;
        wire::Writer w(reply);
        w.u8(static_cast<std::uint8_t>(slot.images.size()));
        for (const auto& [version, image] : slot.images) w.u64(version).u64(image.size()).u64(slot.base_of(version));
        return ServiceError::ok;
      }
      case CkptOp::prepare: {
        // Only refusals get here: a valid prepare waits (defer).
        std::uint64_t epoch = 0;
        return check_prepare(badge, *s, slot, in, &epoch);
      }
      case CkptOp::group_epoch: {
        if (!in.done()) return ServiceError::malformed;
        if (s->group.empty()) return ServiceError::wrong_session;
        wire::Writer(reply).u64(host_.groups[s->group].committed_epoch);
        return ServiceError::ok;
      }
      case CkptOp::group_rollback: {
        const std::uint64_t from = in.u64();
        const std::uint64_t to = in.u64();
        if (!in.done()) return ServiceError::malformed;
        if (s->group.empty()) return ServiceError::wrong_session;
        return rollback(s->group, from, to, reply);
      }
    }
    return ServiceError::unknown_operation;
  }

  // A member gone: its group's epoch in progress cannot complete; and what it
  // had covered of an image in progress goes with its sessions.
  void closing(std::uint64_t client) {
    std::set<std::string> aborted;
    state_.sessions.for_each([&](std::uint64_t badge, const CkptSession& s) {
      if (s.client != client) return;
      if (!s.group.empty()) aborted.insert(s.group);
      covered_.erase(badge);
    });
    for (const std::string& group : aborted) abort_group(group);
  }

  // A session on the grant's slot, by default the client's instance's; a
  // member of a checkpoint group joins its group's slots.
  ServiceError open(const OpenRequest& r, Message& reply) {
    const std::string slot(r.argument_or_instance());
    const std::string group(r.group);
    if (!r.mode.empty() || slot.empty() || slot.size() > name_bytes_max || slot.find('\0') != std::string::npos ||
        group.size() > name_bytes_max || group.empty() != (r.group_size == 0))
      return ServiceError::malformed;
    // The slot's quota and its group change only once the session exists.
    const ServiceError opened = state_.sessions.open(sys_, ep_, r.instance, CkptSession{r.client, slot, group, std::nullopt, 0, {}},
                                                     reply, for_supervisor);
    if (opened != ServiceError::ok) return opened;
    state_.slots[slot].quota = host_.slot_quota_bytes;
    if (!group.empty()) {
      // An epoch waits for every member, including those not opened yet.
      CkptGroup& g = host_.groups[group];
      g.members.insert(slot);
      g.size = std::max(g.size, r.group_size);
    }
    return ServiceError::ok;
  }

 private:
  // Part of the image in progress. (It needs no slot: it writes the session's staging.)
  ServiceError chunk(std::uint64_t badge, CkptSession& s, wire::Reader& in) {
    const std::uint64_t offset = in.u64();
    const std::span<const std::byte> bytes = in.bytes();
    if (!in.done() || bytes.size() > chunk_bytes_max) return ServiceError::malformed;
    if (!s.staging) return ServiceError::failed;
    if (offset > s.staging->size() || bytes.size() > s.staging->size() - offset) return ServiceError::malformed;
    std::copy(bytes.begin(), bytes.end(), s.staging->begin() + static_cast<std::ptrdiff_t>(offset));
    if (s.written.size() != s.staging->size()) return ServiceError::ok;  // staged whole: covered already
    std::fill(s.written.begin() + static_cast<std::ptrdiff_t>(offset),
              s.written.begin() + static_cast<std::ptrdiff_t>(offset + bytes.size()), true);
    if (const auto c = covered_.find(badge); c != covered_.end() && offset <= c->second) {
      // Extend the covered prefix over this chunk and any chunks written
      // ahead of it (each byte is passed over once per image).
      std::uint64_t& prefix = c->second;
      prefix = std::max<std::uint64_t>(prefix, offset + bytes.size());
      while (prefix < s.written.size() && s.written[prefix]) ++prefix;
    }
    return ServiceError::ok;
  }

  // The image in progress, whole, from the buffer the client lent.
  ServiceError stage(std::uint64_t badge, CkptSession& s, const CkptSlot& slot, const Message& request,
                     wire::Reader& in) {
    const std::uint64_t size = in.u64();
    const std::uint64_t base = in.u64();
    if (!in.done() || request.cap_count != 1) return ServiceError::malformed;
    if (size > image_bytes_max || size > slot.quota) return ServiceError::quota_exceeded;
    if (const ServiceError e = check_base(slot, base); e != ServiceError::ok) return e;
    // Into the buffer of the last image dropped, if there is one. Every byte
    // is overwritten; a lent capability that is no buffer, lacks `receive` or
    // is shorter than `size` is refused (the image in progress, if any, stays).
    spare_.resize(size);
    if (!sys_.buffer_read(request.received_cap<kernel::Buffer>(0), 0, spare_)) return ServiceError::malformed;
    s.staging.emplace(std::move(spare_));
    spare_ = {};
    s.staging_base = base;
    s.written.clear();  // all covered: no per-byte record needed
    covered_[badge] = size;
    return ServiceError::ok;
  }

  // Part of a kept image, into the buffer the client lent (as much as fits).
  ServiceError fetch(const CkptSlot& slot, const Message& request, wire::Reader& in, Message& reply) {
    const std::uint64_t version = in.u64();
    const std::uint64_t offset = in.u64();
    if (!in.done() || request.cap_count != 1) return ServiceError::malformed;
    const auto it = slot.images.find(version);
    if (it == slot.images.end()) return ServiceError::not_found;
    const Cap<kernel::Buffer> to = request.received_cap<kernel::Buffer>(0);
    const kernel::Result<std::uint64_t> room = sys_.buffer_size(to);
    if (!room) return ServiceError::malformed;
    const std::vector<std::byte>& image = it->second;
    const std::uint64_t from = std::min<std::uint64_t>(offset, image.size());
    const std::uint64_t n = std::min<std::uint64_t>(*room, image.size() - from);
    if (!sys_.buffer_write(to, 0, std::span(image.data() + from, n))) return ServiceError::malformed;
    wire::Writer(reply).u64(n);
    return ServiceError::ok;
  }

  // Checks a commit of the session's image; on success `*version` is its number.
  ServiceError check_commit(std::uint64_t badge, CkptSession& s, CkptSlot& slot, wire::Reader& in) {
    if (!in.done()) return ServiceError::malformed;
    if (!s.staging) return ServiceError::failed;
    // Every byte of the image must have come in a chunk.
    const auto c = covered_.find(badge);
    const bool complete = c != covered_.end() ? c->second == s.staging->size()
                                              : std::find(s.written.begin(), s.written.end(), false) == s.written.end();
    if (!complete) return ServiceError::failed;
    // Its base still kept (another session of the slot may have committed since).
    if (const ServiceError e = check_base(slot, s.staging_base); e != ServiceError::ok) return e;
    // Within quota once the images it pushes out make room.
    const Added added{slot.next_version, s.staging_base};
    std::uint64_t kept = s.staging->size();
    if (whole_only(slot, std::span(&added, 1))) {
      auto it = slot.images.rbegin();
      for (std::size_t n = 1; n < images_kept && it != slot.images.rend(); ++n, ++it) kept += it->second.size();
    } else {
      kept_versions(slot, std::span(&added, 1), keep_);
      for (const std::uint64_t v : keep_)
        if (const auto it = slot.images.find(v); it != slot.images.end()) kept += it->second.size();
    }
    if (kept > slot.quota) return ServiceError::quota_exceeded;
    return ServiceError::ok;
  }

  // Takes the session's staged image as the slot's next version.
  Pending take(std::uint64_t badge, CkptSession& s, CkptSlot& slot) {
    Pending p{{}, s.slot, slot.next_version++, std::move(*s.staging), s.staging_base, 0};
    s.staging.reset();
    s.staging_base = 0;
    s.written.clear();
    covered_.erase(badge);
    return p;
  }

  // The in-memory backend commits at once.
  ServiceError commit(std::uint64_t badge, CkptSession& s, CkptSlot& slot, wire::Reader& in, Message& reply) {
    if (const ServiceError e = check_commit(badge, s, slot, in); e != ServiceError::ok) return e;
    one_.clear();
    one_.push_back(take(badge, s, slot));
    if (!apply(one_)) return ServiceError::failed;
    wire::Writer(reply).u64(one_[0].version);
    return ServiceError::ok;
  }

 public:
  // The durable backend: a valid commit waits to share a transaction (its reply
  // capability kept); the others are answered at once. A valid prepare waits
  // for the rest of its group.
  bool defer(std::uint64_t badge, Message& request, Cap<kernel::Reply> reply) {
    if (badge != 0 && request.label == static_cast<std::uint64_t>(CkptOp::prepare)) return defer_prepare(badge, request, reply);
    if (!storage_.durable() || badge == 0 || request.label != static_cast<std::uint64_t>(CkptOp::commit)) return false;
    CkptSession* s = state_.sessions.find(badge);
    if (s == nullptr) return false;
    CkptSlot& slot = state_.slots[s->slot];
    wire::Reader in(request);
    if (check_commit(badge, *s, slot, in) != ServiceError::ok) return false;  // answered now, with the error
    if (pending_.empty()) first_pending_ns_ = sys_.now_ns();
    pending_.push_back(take(badge, *s, slot));
    pending_.back().reply = reply;
    if (pending_.size() >= group_commit_max) flush();
    return true;
  }
  // While commits wait: until the window closes (the loop calls timeout() then).
  std::uint64_t deadline() const {
    return pending_.empty() ? UINT64_MAX : first_pending_ns_ + host_.group_commit_window_ns;
  }
  void timeout() { flush(); }

 private:
  // A member's prepare: the group's next epoch, and a complete image.
  ServiceError check_prepare(std::uint64_t badge, CkptSession& s, CkptSlot& slot, wire::Reader& in,
                             std::uint64_t* epoch) {
    *epoch = in.u64();
    if (s.group.empty()) return ServiceError::wrong_session;
    if (*epoch != host_.groups[s.group].committed_epoch + 1) return ServiceError::conflict;
    if (prepared_[s.group].contains(s.slot)) return ServiceError::conflict;  // prepared already
    return check_commit(badge, s, slot, in);
  }

  bool defer_prepare(std::uint64_t badge, Message& request, Cap<kernel::Reply> reply) {
    CkptSession* s = state_.sessions.find(badge);
    if (s == nullptr) return false;
    CkptSlot& slot = state_.slots[s->slot];
    wire::Reader in(request);
    std::uint64_t epoch = 0;
    if (check_prepare(badge, *s, slot, in, &epoch) != ServiceError::ok) return false;  // answered now, with the error
    Pending p = take(badge, *s, slot);
    p.reply = reply;
    std::map<std::string, Pending>& waiting = prepared_[s->group];
    waiting.emplace(s->slot, std::move(p));
    const CkptGroup& group = host_.groups[s->group];
    if (waiting.size() == std::max<std::size_t>(group.size, group.members.size())) commit_group(s->group);
    return true;
  }

  // Every member has prepared: their images commit in one transaction.
  void commit_group(const std::string& name) {
    std::vector<Pending> batch;
    CkptGroup& group = host_.groups[name];
    const std::pair<std::string, std::uint64_t> epoch{name, group.committed_epoch + 1};
    for (auto& [slot, p] : prepared_[name]) {
      p.epoch = epoch.second;
      batch.push_back(std::move(p));
    }
    prepared_.erase(name);
    const bool ok = apply(batch, &epoch);
    if (ok) {
      group.committed_epoch = epoch.second;
      ++host_.group_commits;
    } else {
      ++host_.group_aborts;  // the backend refused: the members are told the epoch failed
    }
    answer_all(batch, ok);
  }

  // The group goes back from its committed epoch `from` to `to`: every
  // member's images of the epochs after `to` are erased with the new epoch, in
  // one transaction, and an epoch in progress is aborted. Epochs after `to`
  // are then prepared afresh (their numbers reused: no image of the old ones
  // is left).
  ServiceError rollback(const std::string& name, std::uint64_t from, std::uint64_t to, Message& reply) {
    CkptGroup& group = host_.groups[name];
    if (from != group.committed_epoch || to >= from) return ServiceError::conflict;
    // No further back than asked, and to an epoch every member keeps an image
    // of: the newest such at most `to` (0, a fresh start, if there is none).
    std::set<std::uint64_t> common;
    bool first = true;
    for (const std::string& member : group.members) {
      std::set<std::uint64_t> has;
      for (const auto& [version, epoch] : state_.slots[member].epochs)
        if (epoch <= to && (first || common.contains(epoch))) has.insert(epoch);
      common = std::move(has);
      first = false;
    }
    to = common.empty() ? 0 : *common.rbegin();
    abort_group(name);
    DurableImages::Batch& batch = batch_;
    batch.puts.clear();
    batch.erases.clear();
    batch.epochs.assign(1, {name, to});
    // Every member's images of later epochs go, and any of an epoch not known
    // (0: a database from before epochs were recorded).
    for (const std::string& member : group.members) {
      const CkptSlot& slot = state_.slots[member];
      for (const auto& [version, image] : slot.images)
        if (const std::uint64_t epoch = slot.epoch_of(version); epoch == 0 || epoch > to)
          batch.erases.emplace_back(member, version);
    }
    if (const std::optional<std::string> e = storage_.commit(batch)) {
      host_.failure = *e;
      return ServiceError::failed;
    }
    ++host_.stats.transactions;
    for (const auto& [member, version] : batch.erases) drop(member, version);
    group.committed_epoch = to;
    ++host_.group_rollbacks;
    wire::Writer(reply).u64(to);
    return ServiceError::ok;
  }

  // Takes a kept image out of the state (its bytes kept for the next staging).
  void drop(const std::string& name, std::uint64_t version) {
    CkptSlot& slot = state_.slots[name];
    const auto it = slot.images.find(version);
    if (it == slot.images.end()) return;
    spare_ = std::move(it->second);
    slot.images.erase(it);
    slot.bases.erase(version);
    slot.epochs.erase(version);
  }

  // A member is gone: the epoch in progress is dropped and its waiting members told.
  void abort_group(const std::string& name) {
    const auto it = prepared_.find(name);
    if (it == prepared_.end()) return;
    std::vector<Pending> dropped;
    for (auto& [slot, p] : it->second) dropped.push_back(std::move(p));
    prepared_.erase(it);
    ++host_.group_aborts;
    answer_all(dropped, false);
  }

  void answer_all(std::vector<Pending>& answered, bool ok) {
    for (Pending& p : answered) {
      Message reply{};
      if (ok) wire::Writer(reply).u64(p.version);
      reply.label = static_cast<std::uint64_t>(ok ? ServiceError::ok : ServiceError::failed);
      (void)sys_.reply(p.reply, reply);  // a committer gone: its image stays committed
    }
  }

  // One transaction for every waiting commit, then each is answered.
  void flush() {
    std::vector<Pending> batch;
    batch.swap(pending_);
    answer_all(batch, apply(batch));
  }

  // Makes `images` lasting in one backend commit, the versions they push out
  // of images_kept erased with them, and a group's new epoch if given; then
  // updates the state. False if the backend refused (nothing changed).
  bool apply(std::vector<Pending>& images, const std::pair<std::string, std::uint64_t>* epoch = nullptr) {
    DurableImages::Batch& batch = batch_;  // kept from one commit to the next, for its room
    batch.puts.clear();
    batch.erases.clear();
    batch.epochs.clear();
    if (epoch != nullptr) batch.epochs.push_back(*epoch);
    // The images each slot's new ones push out: all but the newest
    // images_kept and the bases those need.
    auto push_out = [&](const std::string& name, std::span<const Added> added) {
      const CkptSlot& slot = state_.slots[name];
      if (whole_only(slot, added)) {
        const std::size_t total = slot.images.size() + added.size();
        auto it = slot.images.begin();
        for (std::size_t drop = total > images_kept ? total - images_kept : 0; drop > 0 && it != slot.images.end();
             --drop, ++it)
          batch.erases.emplace_back(name, it->first);
        return;
      }
      kept_versions(slot, added, keep_);
      for (const auto& [version, image] : slot.images)
        if (!std::binary_search(keep_.begin(), keep_.end(), version)) batch.erases.emplace_back(name, version);
    };
    for (Pending& p : images) batch.puts.push_back({std::move(p.slot), p.version, std::move(p.bytes), p.base, p.epoch});
    if (batch.puts.size() == 1) {
      const Added added{batch.puts[0].version, batch.puts[0].base};
      push_out(batch.puts[0].slot, std::span(&added, 1));
    } else {
      std::map<std::string_view, std::vector<Added>> added;  // per slot, in this batch, oldest first
      for (const StoredImage& img : batch.puts) added[img.slot].push_back({img.version, img.base});
      for (auto& [name, list] : added) {
        std::sort(list.begin(), list.end(), [](const Added& a, const Added& b) { return a.version < b.version; });
        push_out(std::string(name), list);
      }
    }
    if (const std::optional<std::string> e = storage_.commit(batch)) {
      host_.failure = *e;
      for (std::size_t i = 0; i < images.size(); ++i) {
        images[i].slot = std::move(batch.puts[i].slot);
        images[i].bytes = std::move(batch.puts[i].bytes);
      }
      return false;
    }
    ++host_.stats.transactions;
    for (StoredImage& img : batch.puts) {
      ++host_.stats.commits;
      host_.stats.bytes += img.bytes.size();
      if (img.base != 0) ++host_.stats.deltas;
      CkptSlot& slot = state_.slots[img.slot];
      slot.images.emplace(img.version, std::move(img.bytes));
      if (img.base != 0) slot.bases.emplace(img.version, img.base);
      if (img.epoch != 0) slot.epochs.emplace(img.version, img.epoch);
    }
    for (const auto& [name, version] : batch.erases) drop(name, version);
    return true;
  }

  Sys& sys_;
  Cap<Endpoint> ep_;
  CkptHost& host_;
  Storage& storage_;
  CkptState state_;
  std::vector<Pending> pending_;      // commits waiting for the next transaction
  std::vector<Pending> one_;          // an in-memory commit (kept for its room)
  DurableImages::Batch batch_;        // the batch apply() builds (kept for its room)
  std::map<std::string, std::map<std::string, Pending>> prepared_;  // by group, by slot: waiting for the rest
  std::uint64_t first_pending_ns_ = 0;
  std::vector<std::byte> spare_;  // the bytes of the last image dropped, reused by the next begin
  std::vector<std::uint64_t> keep_;  // kept_versions' answer (kept for its room)
  // Per session with an image in progress (by badge): every staging byte
  // below this offset is covered by a chunk (`written` is all true there), so
  // commit needs no scan of `written`. Chunks written in order keep it at
  // their end; one written ahead is passed over when the gap before it fills.
  std::map<std::uint64_t, std::uint64_t> covered_;
};

Message request_for(CkptOp op) {
  Message m{};
  m.label = static_cast<std::uint64_t>(op);
  return m;
}

}  // namespace

std::vector<std::byte> CkptState::encode() const {
  std::vector<std::byte> out;
  auto put = [&out](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
  };
  auto put_bytes = [&](std::span<const std::byte> b) {
    put(b.size());
    out.insert(out.end(), b.begin(), b.end());
  };
  for (const auto& [name, slot] : slots) {
    put_bytes(std::as_bytes(std::span(name.data(), name.size())));
    put(slot.quota);
    put(slot.next_version);
    for (const auto& [version, image] : slot.images) {
      put(version);
      put(slot.base_of(version));
      put(slot.epoch_of(version));
      put_bytes(image);
    }
  }
  put(sessions.size());
  sessions.for_each([&](std::uint64_t badge, const CkptSession& s) {
    put(badge);
    put(s.client);
    put_bytes(std::as_bytes(std::span(s.slot.data(), s.slot.size())));
    put(s.staging.has_value());
    if (s.staging) put_bytes(*s.staging);
  });
  return out;
}

void ckpt_main(Sys& sys, CkptHost& host) {
  std::unique_ptr<Storage> storage;
  if (host.disk != nullptr) {
    auto opened = DurableImages::open(host.database, host.disk->vfs_name().c_str());
    if (auto* e = std::get_if<std::string>(&opened)) {
      host.failure = *e;
      throw std::runtime_error("checkpoint store: " + *e);  // a crash: the supervisor's policy decides
    }
    storage = std::make_unique<SqliteStorage>(std::move(std::get<std::unique_ptr<DurableImages>>(opened)));
  } else {
    storage = std::make_unique<MemoryStorage>(host.store);
  }
  std::vector<StoredImage> images;
  std::map<std::string, std::uint64_t> epochs;
  std::optional<std::string> e = storage->load(&images);
  if (!e) e = storage->load_epochs(&epochs);
  if (e) {
    host.failure = *e;
    throw std::runtime_error("checkpoint store: " + *e);
  }
  // The groups' epochs are what the storage holds: after a power loss, an
  // epoch whose transaction was lost is not committed, whatever was answered
  // before the power went.
  for (auto& [name, group] : host.groups) {
    const auto it = epochs.find(name);
    group.committed_epoch = it != epochs.end() ? it->second : 0;
  }
  for (const auto& [name, epoch] : epochs) host.groups[name].committed_epoch = epoch;
  const kernel::Result<Cap<Endpoint>> ep = sys.endpoint_create();
  if (!ep) return;
  CkptStore store(sys, *ep, host, *storage, std::move(images));
  announce_and_serve(sys, CkptHost::service, *ep, store, host.audit);
}

Outcome CkptClient::bulk(Sys& sys, std::uint64_t size) {
  if (!buffer_.is_null() && buffer_size_ >= size) return {};
  if (!buffer_.is_null()) (void)sys.delete_cap(kernel::AnyCap(buffer_.handle()));
  buffer_ = {};
  buffer_size_ = 0;
  // Room to grow: images of one process change size a little between checkpoints.
  const std::uint64_t want = std::min<std::uint64_t>(kernel::buffer_bytes_max, std::max<std::uint64_t>(size + size / 4, 1024));
  const kernel::Result<Cap<kernel::Buffer>> b = sys.buffer_create(want);
  if (!b) return {b.error(), ServiceError::ok};
  buffer_ = *b;
  buffer_size_ = want;
  return {};
}

// The image in progress: lent in the buffer in one call, or sent in chunks
// (begin, chunks). The caller then commits or prepares it.
Outcome CkptClient::stage(Sys& sys, std::span<const std::byte> image, std::uint64_t base) {
  Message request, reply;  // only `length` bytes are used: no zeroing
  if (transfer_ == Transfer::buffer && image.size() <= kernel::buffer_bytes_max) {
    if (const Outcome o = bulk(sys, image.size()); !o) return o;
    if (const kernel::Status s = sys.buffer_write(buffer_, 0, image); !s) return {s.error(), ServiceError::ok};
    request = wire::request(CkptOp::stage);
    wire::Writer(request).u64(image.size()).u64(base);
    request.caps[0] = {buffer_.handle(), kernel::Rights::receive()};  // the store reads; it cannot write
    request.cap_count = 1;
    return call(sys, session_, request, reply);
  }
  request = wire::request(CkptOp::begin);
  wire::Writer(request).u64(image.size()).u64(base);
  Outcome o = call(sys, session_, request, reply);
  // One request message for every chunk: only the label and the payload change
  // (it carries no capabilities; only `length` bytes are sent).
  request.label = static_cast<std::uint64_t>(CkptOp::chunk);
  for (std::size_t at = 0; o && at < image.size(); at += chunk_bytes_max) {
    wire::Writer(request).u64(at).bytes(image.subspan(at, std::min(chunk_bytes_max, image.size() - at)));
    o = call(sys, session_, request, reply);
  }
  return o;
}

Outcome CkptClient::write(Sys& sys, std::span<const std::byte> image, std::uint64_t* version, std::uint64_t base) {
  Outcome o = stage(sys, image, base);
  if (!o) return o;
  Message request = wire::request(CkptOp::commit), reply;
  o = call(sys, session_, request, reply);
  if (o && version != nullptr) *version = wire::Reader(reply).u64();
  return o;
}

Outcome CkptClient::prepare(Sys& sys, std::span<const std::byte> image, std::uint64_t epoch,
                            std::uint64_t* version, std::uint64_t base) {
  Outcome o = stage(sys, image, base);
  if (!o) return o;
  Message request = wire::request(CkptOp::prepare), reply{};
  wire::Writer(request).u64(epoch);
  o = call(sys, session_, request, reply);
  if (o && version != nullptr) *version = wire::Reader(reply).u64();
  return o;
}

Outcome CkptClient::group_rollback(Sys& sys, std::uint64_t from, std::uint64_t to, std::uint64_t* went_to) const {
  Message request = wire::request(CkptOp::group_rollback), reply{};
  wire::Writer(request).u64(from).u64(to);
  const Outcome o = call(sys, session_, request, reply);
  if (o && went_to != nullptr) *went_to = wire::Reader(reply).u64();
  return o;
}

Outcome CkptClient::group_epoch(Sys& sys, std::uint64_t* epoch) const {
  Message request = wire::request(CkptOp::group_epoch), reply{};
  const Outcome o = call(sys, session_, request, reply);
  if (o) *epoch = wire::Reader(reply).u64();
  return o;
}

Outcome CkptClient::read_newest(Sys& sys, std::vector<std::byte>* image, std::uint64_t* version) {
  Message request = request_for(CkptOp::info), reply{};
  const Outcome o = call(sys, session_, request, reply);
  if (!o) return o;
  wire::Reader info(reply);
  const std::uint64_t v = info.u64();
  const std::uint64_t size = info.u64();
  if (version != nullptr) *version = v;
  return read(sys, v, size, image);
}

Outcome CkptClient::read(Sys& sys, std::uint64_t version, std::uint64_t size, std::vector<std::byte>* image) {
  image->clear();
  if (transfer_ == Transfer::buffer && size <= kernel::buffer_bytes_max) {
    if (const Outcome o = bulk(sys, size); !o) return o;
    Message request = request_for(CkptOp::fetch), reply{};
    wire::Writer(request).u64(version).u64(0);
    request.caps[0] = {buffer_.handle(), kernel::Rights::send()};  // the store writes; it cannot read
    request.cap_count = 1;
    if (const Outcome o = call(sys, session_, request, reply); !o) return o;
    if (wire::Reader(reply).u64() != size) return {kernel::Error{}, ServiceError::failed};  // not the image listed
    image->resize(size);
    if (const kernel::Status s = sys.buffer_read(buffer_, 0, *image); !s) return {s.error(), ServiceError::ok};
    return {};
  }
  image->reserve(size);
  Message request = request_for(CkptOp::read), reply{};
  while (image->size() < size) {
    wire::Writer(request).u64(version).u64(image->size()).u32(static_cast<std::uint32_t>(chunk_bytes_max));
    const Outcome o = call(sys, session_, request, reply);
    if (!o) return o;
    wire::Reader in(reply);
    const std::span<const std::byte> part = in.bytes();
    if (part.empty()) return {kernel::Error{}, ServiceError::failed};  // the image went while we read it
    image->insert(image->end(), part.begin(), part.end());
  }
  return {};
}

Outcome CkptClient::list(Sys& sys, std::vector<CkptKept>* versions) const {
  Message request = request_for(CkptOp::list), reply{};
  const Outcome o = call(sys, session_, request, reply);
  if (!o) return o;
  wire::Reader in(reply);
  versions->clear();
  for (std::uint8_t n = in.u8(); n > 0 && in.ok(); --n) {
    CkptKept& k = versions->emplace_back();
    k.version = in.u64();
    k.size = in.u64();
    k.base = in.u64();
  }
  return o;
}

}  // namespace persim::servers
