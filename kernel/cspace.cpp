#include "kernel/cspace.hpp"

namespace persim::kernel {

bool CapSpace::grow() {
  if (slots_.size() >= cspace_slots_max) return false;
  free_.push_back(static_cast<std::uint32_t>(slots_.size()));
  slots_.emplace_back();
  return true;
}

}  // namespace persim::kernel
