#include "servers/fs/fs.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "servers/wire.hpp"

namespace persim::servers {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Message;
using kernel::Sys;

namespace {

constexpr std::string_view record_prefix = "file:";

// Absolute, no "." or ".." component, no empty component but a trailing one
// (a directory prefix), no NUL, within name_bytes_max.
bool valid_path(std::string_view p) {
  if (p.empty() || p.size() > name_bytes_max || p.front() != '/' || p.find('\0') != std::string_view::npos)
    return false;
  std::size_t at = 1;
  while (at < p.size()) {
    const std::size_t end = std::min(p.find('/', at), p.size());
    const std::string_view part = p.substr(at, end - at);
    if (part.empty() || part == "." || part == "..") return false;
    at = end + 1;
  }
  return true;
}

bool is_directory(std::string_view p) { return !p.empty() && p.back() == '/'; }


class FileServer {
 public:
  FileServer(Sys& sys, Cap<Endpoint> ep, FileServerHost& host) : sys_(sys), ep_(ep), host_(host) {
    for (const auto& [key, bytes] : host_.store.records())
      if (key.starts_with(record_prefix)) state_.files[key.substr(record_prefix.size())].data = bytes;
    host_.live = &state_;
  }
  ~FileServer() { host_.live = nullptr; }
  FileServer(const FileServer&) = delete;
  FileServer& operator=(const FileServer&) = delete;

  Sessions<FsSession>& sessions() { return state_.sessions; }

  // A session on the grant's path (a file, or a directory ending in '/'),
  // with the grant's mode letters ("r" if none).
  ServiceError open(const OpenRequest& r, Message& reply) {
    std::uint8_t mode = 0;
    if (!fs_mode::parse(r.mode.empty() ? "r" : r.mode, &mode)) return ServiceError::malformed;
    return open(std::string(r.argument), mode, r.client, r.instance, reply, for_supervisor);
  }

  ServiceError handle(FsSession& s, Request& r, Message& reply) {
    if (is_directory(s.path)) return directory(s, *state_.sessions.owner(r.badge), r.args, r.op, reply);
    return file(s, r.args, r.op, reply);
  }

 private:
  // `owner`: the directory session's, which a file opened through it inherits.
  ServiceError directory(FsSession& dir, const std::string& owner, wire::Reader& in, std::uint64_t op, Message& reply) {
    if (op != static_cast<std::uint64_t>(FsOp::open) && op != static_cast<std::uint64_t>(FsOp::remove))
      return op <= static_cast<std::uint64_t>(FsOp::remove) ? ServiceError::wrong_session
                                                           : ServiceError::unknown_operation;
    const std::string relative(in.str());
    const std::uint8_t mode = op == static_cast<std::uint64_t>(FsOp::open) ? in.u8() : 0;
    if (!in.done() || relative.empty() || relative.front() == '/') return ServiceError::malformed;
    const std::string path = dir.path + relative;
    if (op == static_cast<std::uint64_t>(FsOp::remove)) {
      if (!valid_path(path) || is_directory(path)) return ServiceError::malformed;
      if ((dir.mode & fs_mode::write) == 0) return ServiceError::permission_denied;
      if (state_.files.erase(path) == 0) return ServiceError::not_found;
      host_.store.erase(std::string(record_prefix) + path);
      assert(host_.store.get(std::string(record_prefix) + path) == nullptr);
      return ServiceError::ok;
    }
    // A session below a directory has at most the directory's rights.
    if ((mode & ~dir.mode) != 0) return ServiceError::permission_denied;
    return open(path, mode, dir.client, owner, reply, kernel::Rights::send());
  }

  ServiceError open(const std::string& path, std::uint8_t mode, std::uint64_t client, std::string_view owner,
                    Message& reply, kernel::Rights rights) {
    if (!valid_path(path) || (mode & ~fs_mode::all) != 0) return ServiceError::malformed;
    if (is_directory(path) != ((mode & fs_mode::directory) != 0)) return ServiceError::malformed;
    FsSession session{client, path, mode, 0};
    if (!is_directory(path)) {
      auto it = state_.files.find(path);
      if (it == state_.files.end()) {
        if ((mode & fs_mode::create) == 0) return ServiceError::not_found;
        if (state_.files.size() >= files_max) return ServiceError::quota_exceeded;
        it = state_.files.emplace(path, FsFile{}).first;
        persist(path);
      } else if ((mode & fs_mode::truncate) != 0) {
        if ((mode & (fs_mode::write | fs_mode::append)) == 0) return ServiceError::permission_denied;
        it->second.data.clear();
        persist(path);
      }
      if ((mode & fs_mode::append) != 0) session.offset = it->second.data.size();
    }
    return state_.sessions.open(sys_, ep_, owner, std::move(session), reply, rights);
  }

  ServiceError file(FsSession& s, wire::Reader& in, std::uint64_t op, Message& reply) {
    // A file removed under an open session reads as not_found; a write or a
    // truncate through the session creates it again.
    if (op == static_cast<std::uint64_t>(FsOp::open) || op == static_cast<std::uint64_t>(FsOp::remove))
      return ServiceError::wrong_session;
    if (op < static_cast<std::uint64_t>(FsOp::read) || op > static_cast<std::uint64_t>(FsOp::truncate))
      return ServiceError::unknown_operation;
    const auto found = state_.files.find(s.path);
    const bool missing_ok = op == static_cast<std::uint64_t>(FsOp::write) ||
                            op == static_cast<std::uint64_t>(FsOp::truncate) ||
                            op == static_cast<std::uint64_t>(FsOp::seek);
    if (found == state_.files.end() && !missing_ok) return ServiceError::not_found;
    if (found == state_.files.end() && op != static_cast<std::uint64_t>(FsOp::seek) && state_.files.size() >= files_max)
      return ServiceError::quota_exceeded;  // a write would create the removed file again
    switch (static_cast<FsOp>(op)) {
      case FsOp::read: {
        const std::uint32_t max = in.u32();
        if (!in.done() || max > chunk_bytes_max) return ServiceError::malformed;
        if ((s.mode & fs_mode::read) == 0) return ServiceError::permission_denied;
        const FsFile& f = found->second;
        const std::uint64_t from = std::min<std::uint64_t>(s.offset, f.data.size());
        const std::uint64_t n = std::min<std::uint64_t>(max, f.data.size() - from);
        wire::Writer(reply).bytes(std::span(f.data.data() + from, n));
        s.offset = from + n;
        assert(s.offset <= f.data.size());
        return ServiceError::ok;
      }
      case FsOp::write: {
        const std::span<const std::byte> bytes = in.bytes();
        if (!in.done() || bytes.size() > chunk_bytes_max) return ServiceError::malformed;
        if ((s.mode & (fs_mode::write | fs_mode::append)) == 0) return ServiceError::permission_denied;
        const std::uint64_t size = found != state_.files.end() ? found->second.data.size() : 0;
        const std::uint64_t at = (s.mode & fs_mode::append) != 0 ? size : s.offset;
        if (at + bytes.size() > file_bytes_max) return ServiceError::quota_exceeded;
        FsFile& f = state_.files[s.path];
        if (f.data.size() < at + bytes.size()) f.data.resize(at + bytes.size());
        std::copy(bytes.begin(), bytes.end(), f.data.begin() + static_cast<std::ptrdiff_t>(at));
        s.offset = at + bytes.size();
        // The file grew to cover the write, no further, and no more than a file may hold.
        assert(f.data.size() == std::max<std::uint64_t>(size, at + bytes.size()) && f.data.size() <= file_bytes_max);
        persist(s.path);
        wire::Writer(reply).u64(s.offset);
        return ServiceError::ok;
      }
      case FsOp::seek: {
        const std::uint64_t offset = in.u64();
        if (!in.done()) return ServiceError::malformed;
        if (offset > file_bytes_max) return ServiceError::quota_exceeded;
        s.offset = offset;
        return ServiceError::ok;
      }
      case FsOp::stat:
        if (!in.done()) return ServiceError::malformed;
        wire::Writer(reply).u64(s.offset).u64(found->second.data.size());
        return ServiceError::ok;
      case FsOp::truncate: {
        const std::uint64_t size = in.u64();
        if (!in.done()) return ServiceError::malformed;
        // Append-only sessions may not shorten what was appended.
        if ((s.mode & fs_mode::write) == 0) return ServiceError::permission_denied;
        if (size > file_bytes_max) return ServiceError::quota_exceeded;
        state_.files[s.path].data.resize(size);
        assert(state_.files[s.path].data.size() == size);
        persist(s.path);
        return ServiceError::ok;
      }
      case FsOp::open:
      case FsOp::remove:
        return ServiceError::wrong_session;
    }
    return ServiceError::unknown_operation;
  }

  // Write-through: the file is on the server's own disk before the reply goes.
  void persist(const std::string& path) {
    const std::string key = std::string(record_prefix) + path;
    const std::vector<std::byte>& data = state_.files[path].data;
    host_.store.put(key, data);
    assert(host_.store.get(key) != nullptr && host_.store.get(key)->size() == data.size());
  }

  Sys& sys_;
  Cap<Endpoint> ep_;
  FileServerHost& host_;
  FsState state_;
};

}  // namespace

bool fs_mode::parse(std::string_view letters, std::uint8_t* mode) {
  std::uint8_t m = 0;
  for (const char c : letters) {
    switch (c) {
      case 'r': m |= read; break;
      case 'w': m |= write; break;
      case 'a': m |= append; break;
      case 'c': m |= create; break;
      case 't': m |= truncate; break;
      case 'd': m |= directory; break;
      default: return false;
    }
  }
  *mode = m;
  return true;
}

std::optional<std::string> FileServerHost::contents(std::string_view path) const {
  const TrustedStore::Bytes* b = store.get(std::string(record_prefix).append(path));
  if (b == nullptr) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(b->data()), b->size());
}

std::optional<GrantProblem> fs_check_grant(std::string_view path, std::string_view mode) {
  using Where = GrantProblem::Where;
  std::uint8_t bits = 0;
  if (!fs_mode::parse(mode.empty() ? "r" : mode, &bits))
    return GrantProblem{Where::mode, "expected letters of r w a c t d, got \"" + std::string(mode) + "\""};
  if (path.empty() || path.front() != '/')
    return GrantProblem{Where::source, "expected an absolute path after \"fs:\", got \"" + std::string(path) + "\""};
  const bool directory = (bits & fs_mode::directory) != 0;
  if (directory != (path.back() == '/'))
    return GrantProblem{Where::mode, directory ? "mode d needs a directory path ending in '/'"
                                               : "a path ending in '/' needs mode d"};
  return std::nullopt;
}

std::vector<std::byte> FsState::encode() const {
  wire::Encoder e;
  e.u64(files.size());
  for (const auto& [path, f] : files) e.str(path).bytes(f.data);
  e.u64(sessions.size());
  sessions.for_each([&](std::uint64_t badge, const FsSession& s) {
    e.u64(badge).u64(s.client).str(s.path).u64(s.mode).u64(s.offset);
  });
  return e.take();
}

void file_server_main(Sys& sys, FileServerHost& host) { run_server<FileServer>(sys, host); }

// ---------------------------------------------------------------- client


Outcome FsClient::read(Sys& sys, std::uint32_t max, std::string* out) const {
  Message request = wire::request(FsOp::read), reply{};
  wire::Writer(request).u32(max);
  const Outcome o = call(sys, session_, request, reply);
  if (!o) return o;
  wire::Reader in(reply);
  const std::string_view bytes = in.str();
  if (!in.done()) return {kernel::Error{}, ServiceError::malformed};
  out->assign(bytes);
  return o;
}

Outcome FsClient::write(Sys& sys, std::string_view bytes, std::uint64_t* offset_after) const {
  Message request = wire::request(FsOp::write), reply{};
  if (!wire::Writer(request).str(bytes).ok()) return {kernel::Error{}, ServiceError::malformed};
  const Outcome o = call(sys, session_, request, reply);
  if (o && offset_after != nullptr) *offset_after = wire::Reader(reply).u64();
  return o;
}

Outcome FsClient::seek(Sys& sys, std::uint64_t offset) const {
  Message request = wire::request(FsOp::seek), reply{};
  wire::Writer(request).u64(offset);
  return call(sys, session_, request, reply);
}

Outcome FsClient::stat(Sys& sys, std::uint64_t* offset, std::uint64_t* size) const {
  Message request = wire::request(FsOp::stat), reply{};
  const Outcome o = call(sys, session_, request, reply);
  if (!o) return o;
  wire::Reader in(reply);
  *offset = in.u64();
  *size = in.u64();
  return o;
}

Outcome FsClient::truncate(Sys& sys, std::uint64_t size) const {
  Message request = wire::request(FsOp::truncate), reply{};
  wire::Writer(request).u64(size);
  return call(sys, session_, request, reply);
}

Outcome FsClient::open(Sys& sys, std::string_view relative, std::uint8_t mode, FsClient* file) const {
  Message request = wire::request(FsOp::open), reply{};
  if (!wire::Writer(request).str(relative).u8(mode).ok()) return {kernel::Error{}, ServiceError::malformed};
  const Outcome o = call(sys, session_, request, reply);
  if (o) *file = FsClient(Session<FsOp>(reply.received_cap<Endpoint>(0)));
  return o;
}

Outcome FsClient::remove(Sys& sys, std::string_view relative) const {
  Message request = wire::request(FsOp::remove), reply{};
  if (!wire::Writer(request).str(relative).ok()) return {kernel::Error{}, ServiceError::malformed};
  return call(sys, session_, request, reply);
}

}  // namespace persim::servers
