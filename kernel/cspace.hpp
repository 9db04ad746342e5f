// A process's capability space: slots indexed by handle. Every lookup re-checks
// slot, generation, type and rights, in that order.
#pragma once

#include <cstdint>
#include <vector>

#include "kernel/handle.hpp"
#include "kernel/objects.hpp"
#include "kernel/result.hpp"

namespace persim::kernel {

// Test-only: `without_generation` makes lookups ignore the generation, the
// broken variant the unforgeability property must catch. Never use otherwise.
enum class HandleValidation : std::uint8_t { full, test_only_without_generation };

// How a capability left its slot: deleted by its holder (the handle becomes a
// plain bad_handle), or severed from outside by revoke or a death (the handle
// reports severed until the slot is reused).
enum class SlotEnd : std::uint8_t { deleted, severed };

class CapSpace {
 public:
  explicit CapSpace(std::uint32_t salt) : salt_(salt) {}
  CapSpace(const CapSpace&) = delete;
  CapSpace& operator=(const CapSpace&) = delete;

  // Looks up `h` and checks it designates an object of `type` with `needed`
  // rights. Errors, in this order: bad_handle, severed, wrong_type,
  // insufficient_rights.
  Result<CapNode*> lookup(Handle h, ObjectType type, Rights needed, HandleValidation v) const {
    const Result<CapNode*> found = lookup_any(h, v);
    if (!found) return found;
    CapNode* cap = found.value();
    if (cap->object->type != type) return Error::wrong_type;
    if (!cap->rights.contains(needed)) return Error::insufficient_rights;
    return cap;
  }

  // Any type, no rights needed. Errors: bad_handle, severed.
  Result<CapNode*> lookup_any(Handle h, HandleValidation v) const {
    const HandleFields f = decode_handle(h, salt_);
    if (h.is_null() || f.slot >= slots_.size()) return Error::bad_handle;
    const Slot& s = slots_[f.slot];
    const bool generation_ok = s.generation == f.generation || v == HandleValidation::test_only_without_generation;
    if (s.cap != nullptr && generation_ok) return s.cap;
    if (f.generation != 0 && f.generation == s.severed_generation) return Error::severed;
    return Error::bad_handle;
  }

  // Puts `cap` in a free slot and returns its handle. Error: cspace_full.
  Result<Handle> install(CapNode* cap);
  // Empties the slot of `cap`.
  void remove(const CapNode* cap, SlotEnd end);

  Handle handle_of(const CapNode* cap) const { return encode_handle({cap->slot, slots_[cap->slot].generation}, salt_); }
  std::uint32_t free_slots() const { return cspace_slots_max - live_ - retired_; }
  std::uint32_t live() const { return live_; }
  std::uint32_t salt() const { return salt_; }

  std::uint32_t slot_count() const { return static_cast<std::uint32_t>(slots_.size()); }
  CapNode* at(std::uint32_t slot) const { return slots_[slot].cap; }

  // Every capability held, in slot order (deterministic).
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.cap != nullptr) f(s.cap);
  }

 private:
  struct Slot {
    CapNode* cap = nullptr;
    std::uint32_t generation = 1;
    std::uint32_t severed_generation = 0;  // generation whose capability was severed
  };
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_;  // LIFO of free slot indices (deterministic reuse)
  std::uint32_t live_ = 0;
  std::uint32_t retired_ = 0;  // slots whose generations are used up
  std::uint32_t salt_;
};

}  // namespace persim::kernel
