// The checkpoint store's commits: the checks a commit passes, the group commit
// that lets many share one backend transaction, the transaction itself and the
// images each commit pushes out of retention. Paired assertions: what a commit
// needs before (expect_committable) and leaves after (check_committed).
#include <algorithm>
#include <cassert>

#include "servers/ckpt/ckpt_store.hpp"

namespace persim::servers::ckpt {

using kernel::Message;

// Checks a commit of the session's image.
ServiceError CkptStore::check_commit(std::uint64_t badge, CkptSession& s, CkptSlot& slot, wire::Reader& in) {
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
  if (bytes_kept_with(slot, {slot.next_version, s.staging_base}, s.staging->size()) > slot.quota)
    return ServiceError::quota_exceeded;
  return ServiceError::ok;
}

// The bytes `slot` keeps once `added`, of `size` bytes, is in.
std::uint64_t CkptStore::bytes_kept_with(const CkptSlot& slot, Added added, std::uint64_t size) {
  std::uint64_t kept = size;
  if (whole_only(slot, std::span(&added, 1))) {
    auto it = slot.images.rbegin();
    for (std::size_t n = 1; n < images_kept && it != slot.images.rend(); ++n, ++it) kept += it->second.size();
    return kept;
  }
  kept_versions(slot, std::span(&added, 1), keep_);
  for (const std::uint64_t v : keep_)
    if (const auto it = slot.images.find(v); it != slot.images.end()) kept += it->second.size();
  return kept;
}

// Takes the session's staged image, checked, as the slot's next version.
Pending CkptStore::take(std::uint64_t badge, CkptSession& s, CkptSlot& slot) {
  assert(s.staging && s.staging->size() <= image_bytes_max && s.staging->size() <= slot.quota);
  assert(slot_consistent(slot));
  Pending p{{}, s.slot, slot.next_version++, std::move(*s.staging), s.staging_base, 0};
  s.staging.reset();
  s.staging_base = 0;
  s.written.clear();
  covered_.erase(badge);
  // The slot's version counter advanced by exactly one, past every version it keeps.
  assert(slot.next_version == p.version + 1 && !slot.images.contains(p.version));
  return p;
}

// The in-memory backend commits at once.
ServiceError CkptStore::commit(std::uint64_t badge, CkptSession& s, CkptSlot& slot, wire::Reader& in,
                               Message& reply) {
  if (const ServiceError e = check_commit(badge, s, slot, in); e != ServiceError::ok) return e;
  one_.clear();
  one_.push_back(take(badge, s, slot));
  if (!apply(one_)) return ServiceError::failed;
  wire::Writer(reply).u64(one_[0].version);
  return ServiceError::ok;
}

bool CkptStore::defer(std::uint64_t badge, Message& request, kernel::Cap<kernel::Reply> reply) {
  if (badge != 0 && request.label == static_cast<std::uint64_t>(CkptOp::prepare))
    return defer_prepare(badge, request, reply);
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
  assert(pending_.size() < group_commit_max);
  return true;
}

// One transaction for every waiting commit, then each is answered.
void CkptStore::flush() {
  std::vector<Pending> batch;
  batch.swap(pending_);
  answer_all(batch, apply(batch));
}

void CkptStore::answer_all(std::vector<Pending>& answered, bool ok) {
  for (Pending& p : answered) {
    Message reply{};
    if (ok) wire::Writer(reply).u64(p.version);
    reply.label = static_cast<std::uint64_t>(ok ? ServiceError::ok : ServiceError::failed);
    (void)sys_.reply(p.reply, reply);  // a committer gone: its image stays committed
  }
}

// Makes `images` lasting in one backend commit, the versions they push out
// of images_kept erased with them, and a group's new epoch if given; then
// updates the state. False if the backend refused (nothing changed).
bool CkptStore::apply(std::vector<Pending>& images, const GroupEpoch* epoch) {
  expect_committable(images, epoch);
  DurableImages::Batch& batch = fill_batch(images, epoch);
  if (const std::optional<std::string> e = storage_.commit(batch)) {
    host_.failure = *e;
    for (std::size_t i = 0; i < images.size(); ++i) {
      images[i].slot = std::move(batch.puts[i].slot);
      images[i].bytes = std::move(batch.puts[i].bytes);
    }
    return false;
  }
  ++host_.stats.transactions;
  install(batch);
  check_committed(batch);
  return true;
}

// The backend's batch for `images` (their bytes moved into it): the puts, the
// versions they push out, the group's epoch.
DurableImages::Batch& CkptStore::fill_batch(std::vector<Pending>& images, const GroupEpoch* epoch) {
  DurableImages::Batch& batch = batch_;  // kept from one commit to the next, for its room
  batch.puts.clear();
  batch.erases.clear();
  batch.epochs.clear();
  if (epoch != nullptr) batch.epochs.push_back(*epoch);
  for (Pending& p : images) batch.puts.push_back({std::move(p.slot), p.version, std::move(p.bytes), p.base, p.epoch});
  if (batch.puts.size() == 1) {
    const Added added{batch.puts[0].version, batch.puts[0].base};
    push_out(batch, batch.puts[0].slot, std::span(&added, 1));
    return batch;
  }
  std::map<std::string_view, std::vector<Added>> added;  // per slot, in this batch, oldest first
  for (const StoredImage& img : batch.puts) added[img.slot].push_back({img.version, img.base});
  for (auto& [name, list] : added) {
    std::sort(list.begin(), list.end(), [](const Added& a, const Added& b) { return a.version < b.version; });
    push_out(batch, std::string(name), list);
  }
  return batch;
}

// The images a slot's new ones push out: all but the newest images_kept and
// the bases those need.
void CkptStore::push_out(DurableImages::Batch& batch, const std::string& name, std::span<const Added> added) {
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
}

// The committed batch into the state (its bytes moved there), and its figures.
void CkptStore::install(DurableImages::Batch& batch) {
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
}

// Takes a kept image out of the state (its bytes kept for the next staging).
void CkptStore::drop(const std::string& name, std::uint64_t version) {
  CkptSlot& slot = state_.slots[name];
  const auto it = slot.images.find(version);
  if (it == slot.images.end()) return;
  spare_ = std::move(it->second);
  slot.images.erase(it);
  slot.bases.erase(version);
  slot.epochs.erase(version);
  assert(!slot.images.contains(version) && slot.base_of(version) == 0 && slot.epoch_of(version) == 0);
}

// Before a commit: each image was taken from a session (numbered by its slot,
// within the limits, after its base), none is kept already, a group's epoch is
// the next one; and what the commit must leave (promised_, for check_committed).
// Nothing at all with assertions off (NDEBUG): no bookkeeping on the hot path.
void CkptStore::expect_committable([[maybe_unused]] const std::vector<Pending>& images,
                                   [[maybe_unused]] const GroupEpoch* epoch) {
#ifndef NDEBUG
  assert(!images.empty());
  assert(epoch == nullptr || epoch->second == host_.groups.at(epoch->first).committed_epoch + 1);
  promised_.clear();
  for (const Pending& p : images) {
    const auto found = state_.slots.find(p.slot);
    assert(found != state_.slots.end());
    const CkptSlot& slot = found->second;
    assert(p.version != 0 && p.version < slot.next_version && !slot.images.contains(p.version));
    assert(p.bytes.size() <= image_bytes_max && p.base < p.version);
    assert(p.epoch == (epoch != nullptr ? epoch->second : 0));
    const Added added{p.version, p.base};
    promised_.push_back({p.bytes.data(), p.bytes.size(), slot.images.size(),
                         slot.images.empty() ? 0 : slot.images.rbegin()->first, whole_only(slot, std::span(&added, 1)),
                         p.base == 0 || slot.images.contains(p.base), keeps_independent_image(slot, added)});
  }
#endif
}

// After a commit: each image is kept, its bytes the very buffer staged, with
// its base and epoch; what it relies on stays (its base, and an image sharing
// nothing with it if there was one); a lone whole image leaves the newest
// images_kept, the one committed before among them.
void CkptStore::check_committed([[maybe_unused]] const DurableImages::Batch& batch) const {
  assert(promised_.size() == batch.puts.size());
  for (std::size_t i = 0; i < batch.puts.size(); ++i) {
    [[maybe_unused]] const StoredImage& img = batch.puts[i];
    [[maybe_unused]] const Promise& promise = promised_[i];
    [[maybe_unused]] const CkptSlot& slot = state_.slots.at(img.slot);
    [[maybe_unused]] const auto kept = slot.images.find(img.version);
    assert(kept != slot.images.end() && kept->second.data() == promise.data && kept->second.size() == promise.size);
    assert(slot.base_of(img.version) == img.base && slot.epoch_of(img.version) == img.epoch);
    assert(!promise.base_kept || img.base == 0 || slot.images.contains(img.base));
    assert(!promise.independent || keeps_independent_image(slot, {img.version, img.base}));
    assert(batch.puts.size() != 1 || !promise.whole ||
           (slot.images.size() == std::min(promise.kept_before + 1, images_kept) &&
            (promise.newest_before == 0 || slot.images.contains(promise.newest_before))));
    assert(slot_consistent(slot));
  }
}

}  // namespace persim::servers::ckpt
