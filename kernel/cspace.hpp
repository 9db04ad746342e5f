// A process's capability space: slots indexed by handle. Every lookup re-checks
// slot, generation, type and rights, in that order.
#pragma once

#include <cassert>
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
// reports severed until another capability in that slot is severed).
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
    if (f.slot >= slots_.size()) return Error::bad_handle;
    const Slot& s = slots_[f.slot];
    // Never true for the null handle: install() skips the one generation of
    // each slot that would encode to it, so no capability is held under it.
    if (s.holds() && s.generation == f.generation) [[likely]] {
      assert(!h.is_null());
      return s.cap();
    }
    return lookup_miss(h, f, v);
  }

  // Puts `cap` in a free slot and returns its handle. Error: cspace_full.
  // Inline: IPC installs a reply capability on every call.
  Result<Handle> install(CapNode* cap) {
    if (free_head_ == no_slot && !grow()) [[unlikely]] return Error::cspace_full;
    const std::uint32_t index = free_head_;
    Slot& s = slots_[index];
    assert(!s.holds());
    free_head_ = s.next_free();
    // Raw 0 is the null handle: skip the one generation that would encode to it.
    if (encode_handle({index, s.generation}, salt_).is_null()) [[unlikely]] ++s.generation;
    assert(s.generation <= generation_max);
    s.hold(cap);
    cap->slot = index;
    ++live_;
    return encode_handle({index, s.generation}, salt_);
  }

  // Empties the slot of `cap`. Inline: IPC consumes a reply capability on every reply.
  void remove(const CapNode* cap, SlotEnd end) {
    Slot& s = slots_[cap->slot];
    assert(s.cap() == cap);
    if (end == SlotEnd::severed) s.severed_generation = s.generation;
    --live_;
    // Retire a slot whose generation is used up, rather than let it wrap. The
    // +1 leaves room for the null-skip in install().
    if (s.generation + 2 > generation_max) [[unlikely]] {
      s.vacate(no_slot);  // empty, and on no free list
      ++retired_;
      return;
    }
    ++s.generation;
    s.vacate(free_head_);
    free_head_ = cap->slot;
  }

  Handle handle_of(const CapNode* cap) const { return encode_handle({cap->slot, slots_[cap->slot].generation}, salt_); }
  std::uint32_t free_slots() const { return cspace_slots_max - live_ - retired_; }
  std::uint32_t live() const { return live_; }
  std::uint32_t salt() const { return salt_; }

  std::uint32_t slot_count() const { return static_cast<std::uint32_t>(slots_.size()); }
  CapNode* at(std::uint32_t slot) const { return slots_[slot].cap(); }

  // Every capability held, in slot order (deterministic).
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.holds()) f(s.cap());
  }

 private:
  static constexpr std::uint32_t no_slot = UINT32_MAX;

  // A slot holds a capability, or is empty and then names the next free slot
  // (or no_slot): one word, a CapNode pointer (aligned, so its low bit is 0)
  // or (next << 1) | 1. The free slots form a LIFO list through these words.
  struct Slot {
    std::uintptr_t word = (std::uintptr_t{no_slot} << 1) | 1;
    std::uint32_t generation = 1;
    std::uint32_t severed_generation = 0;  // generation whose capability was severed

    bool holds() const { return (word & 1) == 0; }
    CapNode* cap() const { return holds() ? reinterpret_cast<CapNode*>(word) : nullptr; }
    std::uint32_t next_free() const { return static_cast<std::uint32_t>(word >> 1); }
    void hold(CapNode* c) {
      word = reinterpret_cast<std::uintptr_t>(c);
      assert(c != nullptr && holds());
    }
    void vacate(std::uint32_t next) { word = (std::uintptr_t{next} << 1) | 1; }
  };
  static_assert(sizeof(std::uintptr_t) == 8 && alignof(CapNode) >= 2);
  // Appends a fresh slot and makes it the free list, unless cspace_slots_max are
  // in use. Called only when the free list is empty. Returns whether it did.
  bool grow();
  // lookup_any when the slot does not hold a capability under the handle's
  // generation: the test-only switch, severed or bad_handle.
  Result<CapNode*> lookup_miss(Handle h, HandleFields f, HandleValidation v) const;

  std::vector<Slot> slots_;
  // Head of the LIFO list of free slots (deterministic reuse). A fresh slot
  // joins it only when no freed one is left, so freed slots are reused first.
  std::uint32_t free_head_ = no_slot;
  std::uint32_t live_ = 0;
  std::uint32_t retired_ = 0;  // slots whose generations are used up
  std::uint32_t salt_;
};

}  // namespace persim::kernel
