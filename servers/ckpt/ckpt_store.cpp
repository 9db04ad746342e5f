// The checkpoint store's serving: sessions, and the operations that stage and
// read images. Commits are in ckpt_commit.cpp, group checkpoints in ckpt_group.cpp.
#include "servers/ckpt/ckpt_store.hpp"

#include <algorithm>
#include <cassert>

namespace persim::servers::ckpt {

using kernel::Message;

CkptStore::CkptStore(kernel::Sys& sys, kernel::Cap<kernel::Endpoint> ep, CkptHost& host, Storage& storage,
                     std::vector<StoredImage> images)
    : sys_(sys), ep_(ep), host_(host), storage_(storage) {
  for (StoredImage& img : images) {
    CkptSlot& slot = state_.slots[img.slot];
    slot.next_version = std::max(slot.next_version, img.version + 1);
    slot.images[img.version] = std::move(img.bytes);
    if (img.base != 0) slot.bases[img.version] = img.base;
    if (img.epoch != 0) slot.epochs[img.version] = img.epoch;
  }
  assert(std::all_of(state_.slots.begin(), state_.slots.end(), [](const auto& s) { return slot_consistent(s.second); }));
  host_.live = &state_;
}

ServiceError CkptStore::handle(CkptSession& s, Request& r, Message& reply) {
  const std::uint64_t badge = r.badge;
  wire::Reader& in = r.args;
  if (r.op == static_cast<std::uint64_t>(CkptOp::chunk)) return chunk(badge, s, in);
  CkptSlot& slot = state_.slots[s.slot];
  switch (static_cast<CkptOp>(r.op)) {
    case CkptOp::begin: return begin(badge, s, slot, in);
    case CkptOp::chunk: return chunk(badge, s, in);
    case CkptOp::stage: return stage(badge, s, slot, r.message, in);
    case CkptOp::fetch: return fetch(slot, r.message, in, reply);
    case CkptOp::commit: return commit(badge, s, slot, in, reply);
    case CkptOp::info: return info(slot, in, reply);
    case CkptOp::read: return read(slot, in, reply);
    case CkptOp::list: return list(slot, in, reply);
    case CkptOp::prepare: {
      // Only refusals get here: a valid prepare waits (defer).
      std::uint64_t epoch = 0;
      return check_prepare(badge, s, slot, in, &epoch);
    }
    case CkptOp::group_epoch: return group_epoch(s, in, reply);
    case CkptOp::group_rollback: return group_rollback(s, in, reply);
  }
  return ServiceError::unknown_operation;
}

// A member gone: its group's epoch in progress cannot complete; and what it
// had covered of an image in progress goes with its sessions.
void CkptStore::closing(std::uint64_t client) {
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
ServiceError CkptStore::open(const OpenRequest& r, Message& reply) {
  const std::string slot(r.argument_or_instance());
  const std::string group(r.group);
  if (!r.mode.empty() || slot.empty() || slot.size() > name_bytes_max || slot.find('\0') != std::string::npos ||
      group.size() > name_bytes_max || group.empty() != (r.group_size == 0))
    return ServiceError::malformed;
  // The slot's quota and its group change only once the session exists.
  const ServiceError opened =
      state_.sessions.open(sys_, ep_, r.instance, CkptSession{r.client, slot, group, std::nullopt, 0, {}}, reply,
                           for_supervisor);
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

// An image of `size` bytes in progress (replacing one), to come in chunks.
ServiceError CkptStore::begin(std::uint64_t badge, CkptSession& s, const CkptSlot& slot, wire::Reader& in) {
  const std::uint64_t size = in.u64();
  const std::uint64_t base = in.u64();
  if (!in.done()) return ServiceError::malformed;
  if (size > image_bytes_max || size > slot.quota) return ServiceError::quota_exceeded;
  if (const ServiceError e = check_base(slot, base); e != ServiceError::ok) return e;
  // Zeroed, as a fresh vector would be; in the buffer of the last image
  // dropped, if there is one, rather than a new allocation.
  spare_.assign(size, std::byte{0});
  s.staging.emplace(std::move(spare_));
  spare_ = {};
  s.written.assign(size, false);
  s.staging_base = base;
  covered_[badge] = 0;
  return ServiceError::ok;
}

// Part of the image in progress. (It needs no slot: it writes the session's staging.)
ServiceError CkptStore::chunk(std::uint64_t badge, CkptSession& s, wire::Reader& in) {
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
    assert(prefix <= s.staging->size());
  }
  return ServiceError::ok;
}

// The image in progress, whole, from the buffer the client lent.
ServiceError CkptStore::stage(std::uint64_t badge, CkptSession& s, const CkptSlot& slot, const Message& request,
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
  assert(s.staging->size() == size);
  return ServiceError::ok;
}

// Part of a kept image, into the buffer the client lent (as much as fits).
ServiceError CkptStore::fetch(const CkptSlot& slot, const Message& request, wire::Reader& in, Message& reply) {
  const std::uint64_t version = in.u64();
  const std::uint64_t offset = in.u64();
  if (!in.done() || request.cap_count != 1) return ServiceError::malformed;
  const auto it = slot.images.find(version);
  if (it == slot.images.end()) return ServiceError::not_found;
  const kernel::Cap<kernel::Buffer> to = request.received_cap<kernel::Buffer>(0);
  const kernel::Result<std::uint64_t> room = sys_.buffer_size(to);
  if (!room) return ServiceError::malformed;
  const std::vector<std::byte>& image = it->second;
  const std::uint64_t from = std::min<std::uint64_t>(offset, image.size());
  const std::uint64_t n = std::min<std::uint64_t>(*room, image.size() - from);
  if (!sys_.buffer_write(to, 0, std::span(image.data() + from, n))) return ServiceError::malformed;
  wire::Writer(reply).u64(n);
  return ServiceError::ok;
}

ServiceError CkptStore::info(const CkptSlot& slot, wire::Reader& in, Message& reply) const {
  if (!in.done()) return ServiceError::malformed;
  if (slot.images.empty()) return ServiceError::not_found;
  const auto& [version, image] = *slot.images.rbegin();
  wire::Writer(reply).u64(version).u64(image.size());
  return ServiceError::ok;
}

ServiceError CkptStore::read(const CkptSlot& slot, wire::Reader& in, Message& reply) const {
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

ServiceError CkptStore::list(const CkptSlot& slot, wire::Reader& in, Message& reply) const {
  if (!in.done()) return ServiceError::malformed;
  wire::Writer w(reply);
  w.u8(static_cast<std::uint8_t>(slot.images.size()));
  for (const auto& [version, image] : slot.images) w.u64(version).u64(image.size()).u64(slot.base_of(version));
  return ServiceError::ok;
}

ServiceError CkptStore::group_epoch(const CkptSession& s, wire::Reader& in, Message& reply) {
  if (!in.done()) return ServiceError::malformed;
  if (s.group.empty()) return ServiceError::wrong_session;
  wire::Writer(reply).u64(host_.groups[s.group].committed_epoch);
  return ServiceError::ok;
}

ServiceError CkptStore::group_rollback(const CkptSession& s, wire::Reader& in, Message& reply) {
  const std::uint64_t from = in.u64();
  const std::uint64_t to = in.u64();
  if (!in.done()) return ServiceError::malformed;
  if (s.group.empty()) return ServiceError::wrong_session;
  return rollback(s.group, from, to, reply);
}

}  // namespace persim::servers::ckpt
