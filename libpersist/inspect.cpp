// persim-inspect: prints a checkpoint image file as JSON, or says precisely
// why it is not a valid image. A stand-in for `persim inspect` until the
// command exists. Exit status: 0 valid, 1 invalid image, 2 bad usage or file.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>

#include "libpersist/image.hpp"

int main(int argc, char** argv) {
  if (argc != 2 || std::string_view(argv[1]) == "--help") {
    std::fprintf(stderr, "usage: persim-inspect IMAGE\n  prints the image as JSON, or why it is invalid\n");
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "persim-inspect: %s: cannot open\n", argv[1]);
    return 2;
  }
  const std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto decoded = persim::persist::decode(std::as_bytes(std::span(raw.data(), raw.size())));
  if (const auto* e = std::get_if<persim::persist::DecodeError>(&decoded)) {
    std::fprintf(stderr, "persim-inspect: %s: %s\n", argv[1], e->describe().c_str());
    return 1;
  }
  std::printf("%s\n", persim::persist::to_json(std::get<persim::persist::Image>(decoded)).c_str());
  return 0;
}
