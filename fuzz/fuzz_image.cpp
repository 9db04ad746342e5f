// Fuzz target: image decoding, as the checkpoint store hands a restore the
// bytes of an image it kept (or a damaged one). Whatever the bytes: no crash,
// no read out of bounds; an accepted image is canonical (it re-encodes to the
// same bytes), applies as a delta only on its base, and renders as JSON.
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>

#include "libpersist/image.hpp"

using namespace persim::persist;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span bytes(reinterpret_cast<const std::byte*>(data), size);
  const auto decoded = decode(bytes);
  const Image* image = std::get_if<Image>(&decoded);
  if (image == nullptr) return 0;
  const std::vector<std::byte> again = encode(*image);
  if (again.size() != size || !std::equal(again.begin(), again.end(), bytes.begin())) __builtin_trap();
  (void)to_json(*image);
  if (image->delta()) {
    Image base;
    base.program = image->program;
    base.program_version = image->program_version;
    base.sequence = image->base_sequence;
    (void)apply_delta(base, *image);
  }
  return 0;
}
