// The checkpoint store: each process's own images, in slots. A slot session
// designates one slot: the holder can write and read that slot's images and
// nothing else (authority by capability, never by name). Only the supervisor
// opens slots, naming them after the program instance so a restarted
// incarnation finds its predecessor's images. Per-slot quota.
//
// An image is written in chunks (begin, chunks, commit) and becomes visible
// whole at commit, with the next version number. The newest images_kept stay.
//
// Two backends. In memory (the default, for fast simulations): a commit is in
// the store's trusted storage when it is answered. Durable: an embedded SQLite
// database (WAL, synchronous=FULL) on the node's simulated disk; commits wait
// to share a transaction with others (group commit: the store answers them all
// once the one transaction is synced), so an answered commit survives a power loss.
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

enum class CkptOp : std::uint64_t {
  open = 1,    // root: str slot, u64 quota bytes, u64 client -> session cap
  begin = 2,   // u64 size: start an image of that size (replaces one in progress)
  chunk = 3,   // u64 offset, bytes: part of the image in progress
  commit = 4,  // -> u64 version: the image in progress, complete, becomes the newest
  info = 5,    // -> u64 version, u64 size of the newest (not_found if none)
  read = 6,    // u64 version, u64 offset, u32 max -> bytes (not_found if not kept)
  list = 7,    // -> u8 n, n x (u64 version, u64 size), oldest first
};

inline constexpr std::size_t images_kept = 2;            // per slot: the newest and the one before
inline constexpr std::uint64_t image_bytes_max = 64u << 20;  // one image
inline constexpr std::size_t group_commit_max = 1024;    // commits sharing one transaction at most
static_assert(group_commit_max <= pending_max, "each waiting commit holds a reply capability");

struct CkptSlot {
  std::uint64_t quota = 0;
  std::map<std::uint64_t, std::vector<std::byte>> images;  // by version
  std::uint64_t next_version = 1;
};

struct CkptSession {
  std::uint64_t client = 0;
  std::string slot;
  std::optional<std::vector<std::byte>> staging;  // an image in progress
  std::vector<bool> written;                      // which staging bytes a chunk covered
};

struct CkptState {
  std::map<std::string, CkptSlot> slots;
  Sessions<CkptSession> sessions;
  std::vector<std::byte> encode() const;
};

struct CkptStats {
  std::uint64_t commits = 0;       // images committed
  std::uint64_t transactions = 0;  // backend commits (durable: one sync each)
  std::uint64_t bytes = 0;         // image bytes committed
};

class SimDisk;

struct CkptHost {
  TrustedStore store;  // the in-memory backend's records
  ServerAudit audit;
  const CkptState* live = nullptr;
  CkptStats stats;
  // The durable backend: when set, the store keeps its database `database` on
  // this disk (owned by the host's owner; it outlives the store's processes).
  SimDisk* disk = nullptr;
  std::string database = "ckpt.db";
  // How long (virtual ns) a commit may wait for others to share its transaction.
  std::uint64_t group_commit_window_ns = 0;
  // Why the last store process could not start (its database would not open or load).
  std::string failure;
};

// Grants: "supervisor" (to announce "ckpt").
void ckpt_main(kernel::Sys& sys, CkptHost& host);

class CkptClient {
 public:
  CkptClient() = default;
  explicit CkptClient(kernel::Cap<kernel::Endpoint> session) : session_(session) {}
  kernel::Cap<kernel::Endpoint> cap() const { return session_; }
  // Writes a whole image; `*version` is its number.
  Outcome write(kernel::Sys& sys, std::span<const std::byte> image, std::uint64_t* version) const;
  // The newest image; not_found if the slot has none.
  Outcome read_newest(kernel::Sys& sys, std::vector<std::byte>* image, std::uint64_t* version) const;
  // The versions kept, oldest first, with their sizes.
  Outcome list(kernel::Sys& sys, std::vector<std::pair<std::uint64_t, std::uint64_t>>* versions) const;
  // One kept image, whole.
  Outcome read(kernel::Sys& sys, std::uint64_t version, std::uint64_t size, std::vector<std::byte>* image) const;

 private:
  kernel::Cap<kernel::Endpoint> session_;
};

Outcome ckpt_open(kernel::Sys& sys, kernel::Cap<kernel::Endpoint> root, std::string_view slot, std::uint64_t quota,
                  std::uint64_t client, kernel::Cap<kernel::Endpoint>* session);

}  // namespace persim::servers
