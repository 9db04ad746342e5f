#include "kernel/cspace.hpp"

#include <cassert>

namespace persim::kernel {

Result<Handle> CapSpace::install(CapNode* cap) {
  std::uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else if (slots_.size() < cspace_slots_max) {
    index = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  } else {
    return Error::cspace_full;
  }
  Slot& s = slots_[index];
  assert(s.cap == nullptr);
  // Raw 0 is the null handle: skip the one generation that would encode to it.
  if (encode_handle({index, s.generation}, salt_).is_null()) ++s.generation;
  assert(s.generation <= generation_max);
  s.cap = cap;
  cap->slot = index;
  ++live_;
  return encode_handle({index, s.generation}, salt_);
}

void CapSpace::remove(const CapNode* cap, SlotEnd end) {
  Slot& s = slots_[cap->slot];
  assert(s.cap == cap);
  s.cap = nullptr;
  if (end == SlotEnd::severed) s.severed_generation = s.generation;
  --live_;
  // Retire a slot whose generation is used up, rather than let it wrap. The
  // +1 leaves room for the null-skip in install().
  if (s.generation + 2 > generation_max) {
    ++retired_;
    return;
  }
  ++s.generation;
  free_.push_back(cap->slot);
}

}  // namespace persim::kernel
