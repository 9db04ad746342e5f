#include "servers/ckpt/retention.hpp"

#include <algorithm>

namespace persim::servers::ckpt {

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

bool whole_only(const CkptSlot& slot, std::span<const Added> added) {
  return slot.bases.empty() && std::all_of(added.begin(), added.end(), [](const Added& a) { return a.base == 0; });
}

ServiceError check_base(const CkptSlot& slot, std::uint64_t base) {
  if (base == 0) return ServiceError::ok;
  if (!slot.images.contains(base)) return ServiceError::not_found;
  if (slot.base_of(base) != 0) return ServiceError::conflict;  // a delta on a delta
  return ServiceError::ok;
}

bool keeps_independent_image(const CkptSlot& slot, Added point) {
  auto in_point = [&](std::uint64_t v) { return v != 0 && (v == point.version || v == point.base); };
  return std::any_of(slot.images.begin(), slot.images.end(), [&](const auto& kept) {
    return !in_point(kept.first) && !in_point(slot.base_of(kept.first));
  });
}

bool slot_consistent(const CkptSlot& slot) {
  if (!slot.images.empty() && slot.images.rbegin()->first >= slot.next_version) return false;
  for (const auto& [version, base] : slot.bases)
    if (!slot.images.contains(version) || base == 0) return false;
  return std::all_of(slot.epochs.begin(), slot.epochs.end(),
                     [&](const auto& e) { return slot.images.contains(e.first) && e.second != 0; });
}

}  // namespace persim::servers::ckpt
