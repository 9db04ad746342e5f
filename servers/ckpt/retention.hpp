// The checkpoint store's retention policy: which images a slot keeps once new
// ones are in (the newest images_kept restore points that share no image), and
// the checks on a delta's base. Internal to the store (servers/ckpt/).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "servers/ckpt/ckpt.hpp"

namespace persim::servers::ckpt {

static_assert(images_kept >= 2, "one damaged image must leave a restore point");

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
void kept_versions(const CkptSlot& slot, std::span<const Added> added, std::vector<std::uint64_t>& keep);

// Whole images only, in the slot and among those added: then the images kept
// are simply the newest images_kept (the common case, on every checkpoint's
// path, which kept_versions' bookkeeping would slow).
bool whole_only(const CkptSlot& slot, std::span<const Added> added);

// A delta's base must be a whole image the slot keeps.
ServiceError check_base(const CkptSlot& slot, std::uint64_t base);

// ---- for the store's assertions (cheap: a slot keeps a handful of images)

// Whether `slot` keeps an image that shares nothing with the restore point
// `point` (neither it nor its base, nor based on either): what lets one
// damaged image leave a point to restore from.
bool keeps_independent_image(const CkptSlot& slot, Added point);

// The slot's records agree: every base and epoch record is of a kept image,
// and every kept version was numbered (below next_version). (Not what the
// records say: a damaged database may say anything, and is read as it is.)
bool slot_consistent(const CkptSlot& slot);

}  // namespace persim::servers::ckpt
