// Writes the image fuzzer's seed corpus: whole images with an entry of every
// kind, an empty one, and a delta, each a file in the directory given.
#include <cstdio>
#include <fstream>
#include <string>

#include "libpersist/image.hpp"

using namespace persim::persist;

namespace {

Image whole(std::uint64_t sequence) {
  Image image;
  image.program = "counter";
  image.program_version = 1;
  image.sequence = sequence;
  auto add = [&image](EntryKind kind, std::string name) -> Entry& {
    Entry& e = image.entries.emplace_back();
    e.kind = kind;
    e.name = std::move(name);
    return e;
  };
  add(EntryKind::u64, "count").number = sequence * 3;
  add(EntryKind::i64, "balance").number = static_cast<std::uint64_t>(-5);
  add(EntryKind::bytes, "note").bytes = {std::byte{'h'}, std::byte{'i'}};
  add(EntryKind::u64s, "seen").numbers = {1, 2, 3};
  add(EntryKind::strings, "accounts").strings = {{"alice", "100"}, {"bob", "50"}};
  add(EntryKind::region, "cold").bytes.assign(64, std::byte{7});
  add(EntryKind::grant, ".grant:log");
  add(EntryKind::file, ".file:log").file = FileRecord{"data", "log", 3, 22};
  add(EntryKind::token, ".token:kv:accounts").token = TokenRecord{0x1234, 5};
  add(EntryKind::random, ".random").numbers = {1, 2, 3, 4};
  return image;
}

bool write(const std::string& path, const Image& image) {
  const std::vector<std::byte> bytes = encode(image);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: persim-fuzz-image-seeds DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  Image empty;
  empty.program = "p";
  empty.program_version = 1;
  empty.sequence = 1;
  Image later = whole(8);
  later.entries[0].number = 99;
  later.entries.erase(later.entries.begin() + 2);
  const bool ok = write(dir + "/whole", whole(7)) && write(dir + "/empty", empty) &&
                  write(dir + "/delta", delta_of(whole(7), later));
  if (!ok) std::fprintf(stderr, "persim-fuzz-image-seeds: cannot write into %s\n", dir.c_str());
  return ok ? 0 : 1;
}
