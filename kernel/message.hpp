// IPC messages: a label, up to msg_bytes_max bytes and up to msg_caps_max
// capabilities. Only `length` bytes are copied between processes.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

#include "kernel/handle.hpp"
#include "kernel/limits.hpp"
#include "kernel/rights.hpp"

namespace persim::kernel {

// One capability in a message. Sending: the sender's handle and a mask that
// narrows what the receiver gets. Received: the receiver's new handle and the
// rights it holds.
struct CapTransfer {
  Handle handle;
  Rights rights = Rights::all();
};

struct Message {
  std::uint64_t label = 0;
  std::uint32_t length = 0;     // bytes of `data` in use
  std::uint32_t cap_count = 0;  // entries of `caps` in use
  std::array<std::byte, msg_bytes_max> data;
  std::array<CapTransfer, msg_caps_max> caps;

  std::span<const std::byte> bytes() const { return {data.data(), length}; }
  std::string_view text() const { return {reinterpret_cast<const char*>(data.data()), length}; }

  // Replaces the payload. Returns false (and leaves it unchanged) if it does not fit.
  bool set_bytes(std::span<const std::byte> payload) {
    if (payload.size() > msg_bytes_max) return false;
    std::memcpy(data.data(), payload.data(), payload.size());
    length = static_cast<std::uint32_t>(payload.size());
    return true;
  }
  bool set_text(std::string_view s) { return set_bytes(std::as_bytes(std::span(s.data(), s.size()))); }

  // Fixed-size little helpers for trivially copyable words at a byte offset.
  template <class T>
  void put(std::size_t offset, const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    assert(offset + sizeof(T) <= msg_bytes_max);
    std::memcpy(data.data() + offset, &value, sizeof(T));
    if (offset + sizeof(T) > length) length = static_cast<std::uint32_t>(offset + sizeof(T));
  }
  template <class T>
  T get(std::size_t offset) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value{};
    if (offset + sizeof(T) <= length) std::memcpy(&value, data.data() + offset, sizeof(T));
    return value;
  }

  void attach(AnyCap cap, Rights mask = Rights::all()) {
    assert(cap_count < msg_caps_max);
    caps[cap_count++] = {cap.handle(), mask};
  }
  template <class T>
  Cap<T> received_cap(std::uint32_t i) const {
    return i < cap_count ? Cap<T>(caps[i].handle) : Cap<T>();
  }
};

// What a receive returns besides the message: the badge of the capability the
// sender used, and the one-shot capability to reply with.
// If the receiver's bound notification woke it instead of a call, `notified`
// is true, `badge` is the notification word and there is nothing to reply to.
struct Received {
  std::uint64_t badge = 0;
  Cap<Reply> reply;
  bool notified = false;
};

}  // namespace persim::kernel
