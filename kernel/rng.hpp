// Deterministic randomness: one seed per node, split into independent streams.
// xoshiro256** seeded through SplitMix64; no std distributions (their output is
// not specified across standard libraries).
#pragma once

#include <array>
#include <cassert>
#include <cstdint>

namespace persim::kernel {

constexpr std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Rng {
 public:
  constexpr explicit Rng(std::uint64_t seed = 0) {
    std::uint64_t sm = seed;
    for (auto& word : s_) word = splitmix64(sm);
  }

  constexpr std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, bound). Lemire's multiply-shift with rejection: unbiased.
  std::uint64_t below(std::uint64_t bound) {
    assert(bound > 0);
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * bound;
    auto low = static_cast<std::uint64_t>(m);
    if (low < bound) {
      const std::uint64_t threshold = -bound % bound;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next()) * bound;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

  // The whole state, to save a stream and resume it exactly (libpersist).
  constexpr std::array<std::uint64_t, 4> state() const { return {s_[0], s_[1], s_[2], s_[3]}; }
  static constexpr Rng from_state(const std::array<std::uint64_t, 4>& s) {
    Rng r;
    for (int i = 0; i < 4; ++i) r.s_[i] = s[static_cast<std::size_t>(i)];
    return r;
  }

  // An independent stream named by `stream`: the same parent state and stream id
  // always give the same child, and the parent does not advance.
  constexpr Rng split(std::uint64_t stream) const {
    std::uint64_t sm = s_[0] ^ rotl(s_[2], 17) ^ (stream * 0xd1b54a32d192ed03ull);
    return Rng(splitmix64(sm));
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4] = {};
};

}  // namespace persim::kernel
