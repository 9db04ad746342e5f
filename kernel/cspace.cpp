#include "kernel/cspace.hpp"

namespace persim::kernel {

bool CapSpace::grow() {
  if (slots_.size() >= cspace_slots_max) return false;
  // A process started from a manifest holds a handful of capabilities at once
  // (its grants, the supervisor's, a reply, a buffer): room for 8 from the
  // first, rather than growing 1, 2, 4, 8.
  if (slots_.capacity() == 0) {
    slots_.reserve(first_slots);
    free_.reserve(first_slots);
  }
  free_.push_back(static_cast<std::uint32_t>(slots_.size()));
  slots_.emplace_back();
  return true;
}

}  // namespace persim::kernel
