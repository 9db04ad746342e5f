// Handles: what a process holds instead of a capability. A raw value exists only
// at the kernel-call boundary and is decoded once, in CapSpace::lookup.
#pragma once

#include <cstdint>

#include "kernel/limits.hpp"

namespace persim::kernel {

class Handle {
 public:
  constexpr Handle() = default;
  // The only way to turn an integer into a handle. Whatever value a process makes
  // up, the kernel re-validates it on every use.
  static constexpr Handle from_raw(std::uint32_t raw) { return Handle(raw); }
  constexpr std::uint32_t raw() const { return raw_; }
  constexpr bool is_null() const { return raw_ == 0; }
  constexpr bool operator==(const Handle&) const = default;

 private:
  constexpr explicit Handle(std::uint32_t raw) : raw_(raw) {}
  std::uint32_t raw_ = 0;
};

// The fields of a handle after removing the salt. Kernel-internal.
struct HandleFields {
  std::uint32_t slot;
  std::uint32_t generation;
};

inline constexpr std::uint32_t handle_slot_mask = (1u << handle_slot_bits) - 1;

constexpr HandleFields decode_handle(Handle h, std::uint32_t salt) {
  const std::uint32_t v = h.raw() ^ salt;
  return {v & handle_slot_mask, v >> handle_slot_bits};
}

constexpr Handle encode_handle(HandleFields f, std::uint32_t salt) {
  return Handle::from_raw(((f.generation << handle_slot_bits) | f.slot) ^ salt);
}

static_assert(decode_handle(encode_handle({5, 7}, 0xdeadbeef), 0xdeadbeef).slot == 5);
static_assert(decode_handle(encode_handle({5, 7}, 0xdeadbeef), 0xdeadbeef).generation == 7);
static_assert(decode_handle(encode_handle({handle_slot_mask, generation_max}, 0), 0).generation ==
              generation_max);

// Kernel object types. Declared here so capabilities can be typed by what they
// designate; their definitions are kernel-internal.
struct Endpoint;
struct Notification;
struct Reply;
struct Process;
struct Factory;
struct Buffer;

enum class ObjectType : std::uint8_t { endpoint = 1, notification, reply, process, factory, buffer };

// Why a process is gone.
enum class ExitReason : std::uint8_t { none, returned, crashed, killed };
const char* to_string(ExitReason r) noexcept;
const char* to_string(ObjectType t) noexcept;

template <class T>
struct object_type_of;
template <>
struct object_type_of<Endpoint> {
  static constexpr ObjectType value = ObjectType::endpoint;
};
template <>
struct object_type_of<Notification> {
  static constexpr ObjectType value = ObjectType::notification;
};
template <>
struct object_type_of<Reply> {
  static constexpr ObjectType value = ObjectType::reply;
};
template <>
struct object_type_of<Process> {
  static constexpr ObjectType value = ObjectType::process;
};
template <>
struct object_type_of<Factory> {
  static constexpr ObjectType value = ObjectType::factory;
};
template <>
struct object_type_of<Buffer> {
  static constexpr ObjectType value = ObjectType::buffer;
};

// A handle typed by what it claims to designate. The claim is checked by the
// kernel on every use (wrong_type otherwise); the type only catches mistakes at
// compile time.
template <class T>
class Cap {
 public:
  static constexpr ObjectType type = object_type_of<T>::value;

  constexpr Cap() = default;
  constexpr explicit Cap(Handle h) : handle_(h) {}
  constexpr Handle handle() const { return handle_; }
  constexpr bool is_null() const { return handle_.is_null(); }
  constexpr bool operator==(const Cap&) const = default;

 private:
  Handle handle_;
};

// Any capability, for calls that accept every type (delete, revoke, transfer).
class AnyCap {
 public:
  constexpr AnyCap() = default;
  constexpr explicit AnyCap(Handle h) : handle_(h) {}
  template <class T>
  constexpr AnyCap(Cap<T> c) : handle_(c.handle()) {}  // NOLINT: implicit by design
  constexpr Handle handle() const { return handle_; }

 private:
  Handle handle_;
};

}  // namespace persim::kernel
