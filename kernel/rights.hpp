// Rights live on the capability (handle), never on the object. Derivation ANDs
// them, so they only ever narrow.
#pragma once

#include <cstdint>
#include <string>

namespace persim::kernel {

class Rights {
 public:
  using Bits = std::uint8_t;

  constexpr Rights() = default;
  static constexpr Rights from_bits(Bits bits) { return Rights(bits & all_bits); }

  static constexpr Rights none() { return Rights(0); }
  static constexpr Rights send() { return Rights(1u << 0); }     // call an endpoint, signal
  static constexpr Rights receive() { return Rights(1u << 1); }  // receive on an endpoint, wait
  static constexpr Rights grant() { return Rights(1u << 2); }    // may travel in a message
  static constexpr Rights derive() { return Rights(1u << 3); }   // may derive/mint children
  static constexpr Rights revoke() { return Rights(1u << 4); }   // may revoke its descendants
  static constexpr Rights control() { return Rights(1u << 5); }  // kill the designated process
  static constexpr Rights all() { return Rights(all_bits); }
  static constexpr int count = 6;

  constexpr Bits bits() const { return bits_; }
  constexpr bool contains(Rights r) const { return (bits_ & r.bits_) == r.bits_; }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr Rights operator|(Rights r) const { return Rights(bits_ | r.bits_); }
  constexpr Rights operator&(Rights r) const { return Rights(bits_ & r.bits_); }
  constexpr bool operator==(const Rights&) const = default;

  // "send|receive|grant", or "none".
  std::string to_string() const;

 private:
  static constexpr Bits all_bits = (1u << count) - 1;
  constexpr explicit Rights(unsigned bits) : bits_(static_cast<Bits>(bits)) {}
  Bits bits_ = 0;
};

}  // namespace persim::kernel
