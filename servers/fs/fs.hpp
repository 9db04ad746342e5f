// The file server: a namespace of files it owns and keeps in its own trusted
// storage. Opening a file yields a session capability with an offset and a
// mode; a directory session may open files below its prefix, with at most its
// own mode. Sessions are volatile: they die with the server (clients re-open).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/sys.hpp"
#include "servers/client.hpp"
#include "servers/session.hpp"
#include "servers/storage.hpp"

namespace persim::servers {

// Mode bits of a session.
namespace fs_mode {
inline constexpr std::uint8_t read = 1;
inline constexpr std::uint8_t write = 2;
inline constexpr std::uint8_t append = 4;    // every write goes to the end
inline constexpr std::uint8_t create = 8;    // open creates a missing file
inline constexpr std::uint8_t truncate = 16;  // open empties the file
inline constexpr std::uint8_t directory = 32;  // a directory session: opens below its prefix
inline constexpr std::uint8_t all = 63;
// "rwactd" letters to bits; false on an unknown letter.
bool parse(std::string_view letters, std::uint8_t* mode);
}  // namespace fs_mode

// Sessions are opened through the root (RootOp::open, session.hpp) on the
// grant's path with its mode letters; a directory session opens files below it.
enum class FsOp : std::uint64_t {
  open = 1,      // directory: str relative path, u8 mode -> session cap
  read = 2,      // file: u32 max bytes (<= chunk_bytes_max) -> bytes
  write = 3,     // file: bytes -> u64 offset after
  seek = 4,      // file: u64 offset
  stat = 5,      // file: -> u64 offset, u64 size
  truncate = 6,  // file: u64 size
  remove = 7,    // directory: str relative path
};

struct FsFile {
  std::vector<std::byte> data;
};

struct FsSession {
  std::uint64_t client = 0;
  std::string path;  // a file, or a directory prefix ending in '/'
  std::uint8_t mode = 0;
  std::uint64_t offset = 0;
};

// Everything the file server holds, in one encodable value: files and sessions.
struct FsState {
  std::map<std::string, FsFile> files;
  Sessions<FsSession> sessions;
  // Canonical bytes of the whole state, for byte-for-byte comparisons.
  std::vector<std::byte> encode() const;
};

// What outlives a file server process: its disk (the files), its audit counts.
struct FileServerHost final : ServerHost {
  static constexpr std::string_view service = "fs";
  // A file's bytes as the server last wrote them to its disk; nullopt if there is no such file.
  std::optional<std::string> contents(std::string_view path) const;
  const FsState* live = nullptr;  // while a file server process runs: its state, for inspection
};

// A manifest's grant of the file server: an absolute path, mode letters of
// "rwactd" (a directory path ends in '/' and takes d). Used by the manifest
// reader (servers/standard.hpp).
std::optional<GrantProblem> fs_check_grant(std::string_view path, std::string_view mode);

// The file server's entry. Grants: "supervisor" (to announce "fs").
void file_server_main(kernel::Sys& sys, FileServerHost& host);

// ---- Client side: a file session.
class FsClient {
 public:
  FsClient() = default;
  explicit FsClient(Session<FsOp> session) : session_(session) {}
  Session<FsOp> session() const { return session_; }

  // Reads up to `max` bytes (at most chunk_bytes_max) at the offset into `out`.
  Outcome read(kernel::Sys& sys, std::uint32_t max, std::string* out) const;
  // Writes `bytes` (at most chunk_bytes_max) at the offset, or at the end in append mode.
  Outcome write(kernel::Sys& sys, std::string_view bytes, std::uint64_t* offset_after = nullptr) const;
  Outcome seek(kernel::Sys& sys, std::uint64_t offset) const;
  Outcome stat(kernel::Sys& sys, std::uint64_t* offset, std::uint64_t* size) const;
  Outcome truncate(kernel::Sys& sys, std::uint64_t size) const;
  // Directory sessions: a file session below the prefix.
  Outcome open(kernel::Sys& sys, std::string_view relative, std::uint8_t mode, FsClient* file) const;
  Outcome remove(kernel::Sys& sys, std::string_view relative) const;

 private:
  Session<FsOp> session_;
};

}  // namespace persim::servers
