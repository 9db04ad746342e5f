#include "kernel/cspace.hpp"

#include <algorithm>

namespace persim::kernel {

Result<CapNode*> CapSpace::lookup_miss(Handle h, HandleFields f, HandleValidation v) const {
  if (h.is_null()) return Error::bad_handle;
  const Slot& s = slots_[f.slot];
  if (v == HandleValidation::test_only_without_generation && s.holds()) return s.cap();
  if (f.generation != 0 && f.generation == s.severed_generation) return Error::severed;
  return Error::bad_handle;
}

bool CapSpace::grow() {
  if (slots_.size() >= cspace_slots_max) return false;
  // One slot to start with (a million processes each blocked on one endpoint
  // stay small); a space that needs a second needs several (grants, sessions,
  // reply capabilities): room for 8 at once instead of growing 2, 4, 8.
  constexpr std::size_t second_step = 8;
  if (slots_.size() == 1 && slots_.capacity() < second_step) slots_.reserve(std::min<std::size_t>(second_step, cspace_slots_max));
  assert(free_head_ == no_slot);
  free_head_ = static_cast<std::uint32_t>(slots_.size());
  slots_.emplace_back();  // empty, next free: none
  return true;
}

}  // namespace persim::kernel
