// The checkpoint store: each process's own images, in slots. A slot session
// designates one slot: the holder can write and read that slot's images and
// nothing else (authority by capability, never by name). Only the supervisor
// opens slots, naming them after the program instance so a restarted
// incarnation finds its predecessor's images. Per-slot quota.
//
// An image is staged, in chunks (begin, chunks) or whole from a kernel buffer
// the client lends (stage), and becomes visible whole at commit, with the next
// version number. The newest images_kept restore points stay.
//
// Incremental images: an image may be staged as a delta on a kept whole image
// of its slot (its base). The store keeps every base a kept image needs; it
// does not read images and does not know what a delta holds (libpersist does).
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
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/sys.hpp"
#include "servers/client.hpp"
#include "servers/session.hpp"
#include "servers/storage.hpp"

namespace persim::servers {

// Sessions are opened through the root (RootOp::open, session.hpp), each on
// the grant's slot (by default the client's instance's), with the client's
// checkpoint group and its size if it has one.
enum class CkptOp : std::uint64_t {
  begin = 2,   // u64 size, u64 base: start an image of that size (replaces one in
               // progress), a delta on kept whole image `base` (0: a whole image)
  chunk = 3,   // u64 offset, bytes: part of the image in progress
  commit = 4,  // -> u64 version: the image in progress, complete, becomes the newest
  info = 5,    // -> u64 version, u64 size of the newest (not_found if none)
  read = 6,    // u64 version, u64 offset, u32 max -> bytes (not_found if not kept)
  list = 7,    // -> u8 n, n x (u64 version, u64 size, u64 base), oldest first
  prepare = 8,  // group members: u64 epoch -> u64 version, once every member has
                // prepared that epoch (the image in progress, as with commit)
  group_epoch = 9,  // group members: -> u64 the group's last committed epoch
  // Bulk: the bytes travel in a kernel buffer the client lends with the call
  // (one call instead of a chunk per msg_bytes_max).
  stage = 10,  // u64 size, u64 base; caps[0] buffer (receive): its first `size`
               // bytes are the image in progress, complete (replaces one in
               // progress), a delta on `base` as with begin
  fetch = 11,  // u64 version, u64 offset; caps[0] buffer (send) -> u64 n: that
               // many bytes of the image from `offset` now start the buffer
  group_rollback = 12,  // group members: u64 from, u64 to -> u64 epoch: the group's
                        // committed epoch goes back from `from` (conflict unless
                        // it is the committed one, or if to >= from) to the
                        // newest epoch at most `to` of which every member keeps
                        // an image (0 if none); every member's images of later
                        // epochs are erased with it
};

// Group checkpoints: the slots opened with the same group name commit
// together. Each member prepares its image for the group's next epoch; the
// store answers none until all have, then commits all their images in one
// transaction (atomic: a restore finds every member's image of that epoch or
// none of them) and answers every member. A member's session closing while
// others wait (it died) aborts the epoch: the waiting members are answered
// `failed` and nothing of the epoch is kept. No member trusts another: only
// the store decides.

// Per slot: the newest restore points kept. A point is an image with the base
// it is a delta on, if any; the points kept share no image, so one damaged
// image leaves one to restore from. With whole images only: the newest image
// and the one before. With deltas: also the bases (at most 2 x images_kept images).
inline constexpr std::size_t images_kept = 2;
inline constexpr std::uint64_t image_bytes_max = 64u << 20;  // one image
inline constexpr std::size_t group_commit_max = 1024;    // commits sharing one transaction at most
static_assert(group_commit_max <= pending_max, "each waiting commit holds a reply capability");

struct CkptSlot {
  std::uint64_t quota = 0;
  std::map<std::uint64_t, std::vector<std::byte>> images;  // by version
  std::map<std::uint64_t, std::uint64_t> bases;            // a delta's version -> its base's (deltas only)
  std::map<std::uint64_t, std::uint64_t> epochs;           // a group member's version -> the epoch it committed in
  std::uint64_t next_version = 1;
  std::uint64_t base_of(std::uint64_t version) const {
    const auto it = bases.find(version);
    return it != bases.end() ? it->second : 0;
  }
  std::uint64_t epoch_of(std::uint64_t version) const {
    const auto it = epochs.find(version);
    return it != epochs.end() ? it->second : 0;
  }
};

// One image a slot keeps, as `list` tells it.
struct CkptKept {
  std::uint64_t version = 0;
  std::uint64_t size = 0;
  std::uint64_t base = 0;  // the version it is a delta on (0: whole)
  bool operator==(const CkptKept&) const = default;
};

struct CkptSession {
  std::uint64_t client = 0;
  std::string slot;
  std::string group;  // "" unless the slot checkpoints with a group
  std::optional<std::vector<std::byte>> staging;  // an image in progress
  std::uint64_t staging_base = 0;                 // the version it is a delta on (0: whole)
  std::vector<bool> written;                      // which staging bytes a chunk covered (empty if staged whole)
};

// A group's members and where its epochs stand.
struct CkptGroup {
  std::set<std::string> members;    // slots opened so far
  std::uint64_t size = 0;           // how many members the group has (as opened): an epoch waits for all
  std::uint64_t committed_epoch = 0;
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
  std::uint64_t deltas = 0;        // of the images committed, deltas on a base
};

class SimDisk;

// What outlives a checkpoint store process: the in-memory backend's records
// (`store`), or the durable backend's disk; its audit counts and figures.
struct CkptHost final : ServerHost {
  static constexpr std::string_view service = "ckpt";
  const CkptState* live = nullptr;
  CkptStats stats;
  // The durable backend: when set, the store keeps its database `database` on
  // this disk (owned by the host's owner; it outlives the store's processes).
  SimDisk* disk = nullptr;
  std::string database = "ckpt.db";
  // Each slot's quota: the bytes of the images it keeps.
  std::uint64_t slot_quota_bytes = 4u << 20;
  // How long (virtual ns) a commit may wait for others to share its transaction.
  std::uint64_t group_commit_window_ns = 0;
  // Why the last store process could not start (its database would not open or load).
  std::string failure;
  // Groups: their members (as slots are opened) and committed epochs. An
  // epoch commits in the transaction of its images; each store process loads
  // the epochs from its storage at start (after a power loss, an epoch whose
  // transaction was lost is not committed).
  std::map<std::string, CkptGroup> groups;
  std::uint64_t group_commits = 0;
  std::uint64_t group_aborts = 0;
  std::uint64_t group_rollbacks = 0;  // a member found its image of the committed epoch damaged
};

// Grants: "supervisor" (to announce "ckpt").
void ckpt_main(kernel::Sys& sys, CkptHost& host);

// A client of one slot session. Images travel in a kernel buffer the client
// keeps (created on first use, grown as images grow; it lives as long as the
// process does), one call each way, unless `Transfer::chunks` asks for the
// message-sized chunks (begin, chunk..., read...) every store also takes.
class CkptClient {
 public:
  enum class Transfer : std::uint8_t { buffer, chunks };
  CkptClient() = default;
  explicit CkptClient(Session<CkptOp> session, Transfer transfer = Transfer::buffer)
      : session_(session), transfer_(transfer) {}
  Session<CkptOp> session() const { return session_; }
  // Another session (the store restarted and re-granted); the buffer stays.
  void rebind(Session<CkptOp> session) { session_ = session; }
  // Writes an image (a delta on kept whole image `base`, or whole with base
  // 0); `*version` is its number. not_found if `base` is not kept, conflict if
  // it is itself a delta.
  Outcome write(kernel::Sys& sys, std::span<const std::byte> image, std::uint64_t* version, std::uint64_t base = 0);
  // The newest image; not_found if the slot has none.
  Outcome read_newest(kernel::Sys& sys, std::vector<std::byte>* image, std::uint64_t* version);
  // The versions kept, oldest first, with their sizes and bases.
  Outcome list(kernel::Sys& sys, std::vector<CkptKept>* versions) const;
  // One kept image, whole.
  Outcome read(kernel::Sys& sys, std::uint64_t version, std::uint64_t size, std::vector<std::byte>* image);
  // A group member's image for epoch `epoch`: waits until every member has
  // prepared it, then it is committed with theirs (`*version`), or the epoch
  // is aborted (failed).
  Outcome prepare(kernel::Sys& sys, std::span<const std::byte> image, std::uint64_t epoch, std::uint64_t* version,
                  std::uint64_t base = 0);
  Outcome group_epoch(kernel::Sys& sys, std::uint64_t* epoch) const;
  // Takes the group back from its committed epoch `from` to at most `to` (see
  // CkptOp::group_rollback; `*went_to` is the epoch it went back to): what a
  // member does when its image of `from` is damaged and its newest valid one
  // is of epoch `to`.
  Outcome group_rollback(kernel::Sys& sys, std::uint64_t from, std::uint64_t to, std::uint64_t* went_to) const;

 private:
  Outcome stage(kernel::Sys& sys, std::span<const std::byte> image, std::uint64_t base);
  // The buffer, at least `size` bytes.
  Outcome bulk(kernel::Sys& sys, std::uint64_t size);

  Session<CkptOp> session_;
  Transfer transfer_ = Transfer::buffer;
  kernel::Cap<kernel::Buffer> buffer_;
  std::uint64_t buffer_size_ = 0;
};

}  // namespace persim::servers
