// Expected failures are values: a closed error set and a [[nodiscard]] result.
#pragma once

#include <cassert>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>

namespace persim::kernel {

// Every error a kernel call can return. Lookup errors come first and are
// reported in this order: bad_handle, severed, wrong_type, insufficient_rights.
enum class Error : std::uint8_t {
  bad_handle = 1,       // not a live handle of this process (made up, stale, null)
  severed,              // was a capability, but it was revoked, or an ancestor's holder died
  wrong_type,           // names a capability of another object type
  insufficient_rights,  // the capability lacks a right the operation needs
  invalid_argument,     // e.g. a badge on an already badged capability
  message_too_large,    // length > msg_bytes_max
  too_many_caps,        // cap_count > msg_caps_max
  cspace_full,          // the receiving capability space has no free slot
  peer_died,            // the other side of a call/reply went away
  object_destroyed,     // the object waited on was destroyed
  killed,               // the calling process is being killed (only seen while unwinding)
  would_block,          // a non-blocking call found nothing
  process_limit,        // processes_max reached
  object_dead,          // the process a capability designates has exited
  not_found,            // no program, or no grant, of that name
  timed_out,            // receive_until's deadline came first
};
inline constexpr int error_count = static_cast<int>(Error::timed_out) + 1;

std::string_view to_string(Error e) noexcept;

// True for the errors a lookup can produce; these are counted in the audit log.
constexpr bool is_lookup_error(Error e) noexcept {
  return e == Error::bad_handle || e == Error::severed || e == Error::wrong_type ||
         e == Error::insufficient_rights;
}

template <class T>
class [[nodiscard]] Result {
  static_assert(std::is_default_constructible_v<T>);

 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : error_(error) {}         // NOLINT: implicit by design

  bool ok() const noexcept { return error_ == Error{}; }
  explicit operator bool() const noexcept { return ok(); }
  Error error() const noexcept {
    assert(!ok());
    return error_;
  }
  T& value() & noexcept {
    assert(ok());
    return value_;
  }
  const T& value() const& noexcept {
    assert(ok());
    return value_;
  }
  T&& value() && noexcept {
    assert(ok());
    return std::move(value_);
  }
  T* operator->() noexcept { return &value(); }
  const T* operator->() const noexcept { return &value(); }
  T& operator*() & noexcept { return value(); }
  const T& operator*() const& noexcept { return value(); }

 private:
  T value_{};
  Error error_{};
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(error) {}  // NOLINT: implicit by design
  static Result success() { return {}; }

  bool ok() const noexcept { return error_ == Error{}; }
  explicit operator bool() const noexcept { return ok(); }
  Error error() const noexcept {
    assert(!ok());
    return error_;
  }

 private:
  Error error_{};
};

using Status = Result<void>;

}  // namespace persim::kernel
