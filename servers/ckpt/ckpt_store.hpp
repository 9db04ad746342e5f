// The checkpoint store's server: its sessions, the images in progress, the
// commits waiting for a transaction (group commit) and the group epochs in
// progress. Internal to the store (servers/ckpt/); the protocol is ckpt.hpp.
//
// Its members by concern:
//   ckpt_store.cpp   serving: open, close, the session operations
//   ckpt_commit.cpp  commits: checks, group commit, the backend transaction,
//                    retention (what each commit pushes out)
//   ckpt_group.cpp   group checkpoints: prepare, the epoch's commit, abort, rollback
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "kernel/sys.hpp"
#include "servers/ckpt/backends.hpp"
#include "servers/ckpt/ckpt.hpp"
#include "servers/ckpt/retention.hpp"
#include "servers/session.hpp"
#include "servers/wire.hpp"

namespace persim::servers::ckpt {

// A commit taken from its session: its image and, if it waits, whom to answer.
struct Pending {
  kernel::Cap<kernel::Reply> reply;
  std::string slot;
  std::uint64_t version;
  std::vector<std::byte> bytes;
  std::uint64_t base = 0;
  std::uint64_t epoch = 0;  // a group member's image: the epoch it commits in
};

// A group and the epoch it commits.
using GroupEpoch = std::pair<std::string, std::uint64_t>;

class CkptStore {
 public:
  // Serves on `ep` the images `images` loaded from `storage`, which it commits to.
  CkptStore(kernel::Sys& sys, kernel::Cap<kernel::Endpoint> ep, CkptHost& host, Storage& storage,
            std::vector<StoredImage> images);
  ~CkptStore() { host_.live = nullptr; }
  CkptStore(const CkptStore&) = delete;
  CkptStore& operator=(const CkptStore&) = delete;

  // ---- the service's shape (serve, session.hpp)
  Sessions<CkptSession>& sessions() { return state_.sessions; }
  ServiceError handle(CkptSession& session, Request& r, kernel::Message& reply);
  void closing(std::uint64_t client);
  ServiceError open(const OpenRequest& r, kernel::Message& reply);
  // The durable backend: a valid commit waits to share a transaction (its reply
  // capability kept); the others are answered at once. A valid prepare waits
  // for the rest of its group.
  bool defer(std::uint64_t badge, kernel::Message& request, kernel::Cap<kernel::Reply> reply);
  // While commits wait: until the window closes (the loop calls timeout() then).
  std::uint64_t deadline() const {
    return pending_.empty() ? UINT64_MAX : first_pending_ns_ + host_.group_commit_window_ns;
  }
  void timeout() { flush(); }

 private:
  // What a commit must leave, taken before it: the terms of apply()'s postconditions.
  struct Promise {
    const std::byte* data = nullptr;  // the staged bytes: the stored image is this very buffer
    std::size_t size = 0;
    std::size_t kept_before = 0;       // the slot's images
    std::uint64_t newest_before = 0;   // the slot's newest image (0: none)
    bool whole = false;                // the slot and the image whole: the newest images_kept stay
    bool base_kept = false;            // its base (if any) was kept: it stays
    bool independent = false;          // an image sharing nothing with it was kept: one stays
  };

  // ---- serving (ckpt_store.cpp)
  ServiceError begin(std::uint64_t badge, CkptSession& s, const CkptSlot& slot, wire::Reader& in);
  ServiceError chunk(std::uint64_t badge, CkptSession& s, wire::Reader& in);
  ServiceError stage(std::uint64_t badge, CkptSession& s, const CkptSlot& slot, const kernel::Message& request,
                     wire::Reader& in);
  ServiceError fetch(const CkptSlot& slot, const kernel::Message& request, wire::Reader& in, kernel::Message& reply);
  ServiceError info(const CkptSlot& slot, wire::Reader& in, kernel::Message& reply) const;
  ServiceError read(const CkptSlot& slot, wire::Reader& in, kernel::Message& reply) const;
  ServiceError list(const CkptSlot& slot, wire::Reader& in, kernel::Message& reply) const;
  ServiceError group_epoch(const CkptSession& s, wire::Reader& in, kernel::Message& reply);
  ServiceError group_rollback(const CkptSession& s, wire::Reader& in, kernel::Message& reply);

  // ---- commits (ckpt_commit.cpp)
  ServiceError check_commit(std::uint64_t badge, CkptSession& s, CkptSlot& slot, wire::Reader& in);
  std::uint64_t bytes_kept_with(const CkptSlot& slot, Added added, std::uint64_t size);
  Pending take(std::uint64_t badge, CkptSession& s, CkptSlot& slot);
  ServiceError commit(std::uint64_t badge, CkptSession& s, CkptSlot& slot, wire::Reader& in, kernel::Message& reply);
  void flush();
  void answer_all(std::vector<Pending>& answered, bool ok);
  bool apply(std::vector<Pending>& images, const GroupEpoch* epoch = nullptr);
  DurableImages::Batch& fill_batch(std::vector<Pending>& images, const GroupEpoch* epoch);
  void push_out(DurableImages::Batch& batch, const std::string& name, std::span<const Added> added);
  void install(DurableImages::Batch& batch);
  void drop(const std::string& name, std::uint64_t version);
  void expect_committable(const std::vector<Pending>& images, const GroupEpoch* epoch);
  void check_committed(const DurableImages::Batch& batch) const;

  // ---- group checkpoints (ckpt_group.cpp)
  ServiceError check_prepare(std::uint64_t badge, CkptSession& s, CkptSlot& slot, wire::Reader& in,
                             std::uint64_t* epoch);
  bool defer_prepare(std::uint64_t badge, kernel::Message& request, kernel::Cap<kernel::Reply> reply);
  void commit_group(const std::string& name);
  std::uint64_t common_epoch(const CkptGroup& group, std::uint64_t to);
  ServiceError rollback(const std::string& name, std::uint64_t from, std::uint64_t to, kernel::Message& reply);
  bool rolled_back(const CkptGroup& group, std::uint64_t to) const;
  void abort_group(const std::string& name);

  kernel::Sys& sys_;
  kernel::Cap<kernel::Endpoint> ep_;
  CkptHost& host_;
  Storage& storage_;
  CkptState state_;
  std::vector<Pending> pending_;      // commits waiting for the next transaction
  std::vector<Pending> one_;          // an in-memory commit (kept for its room)
  DurableImages::Batch batch_;        // the batch apply() builds (kept for its room)
  std::vector<Promise> promised_;     // apply()'s postconditions, per image (kept for its room)
  std::map<std::string, std::map<std::string, Pending>> prepared_;  // by group, by slot: waiting for the rest
  std::uint64_t first_pending_ns_ = 0;
  std::vector<std::byte> spare_;  // the bytes of the last image dropped, reused by the next begin
  std::vector<std::uint64_t> keep_;  // kept_versions' answer (kept for its room)
  // Per session with an image in progress (by badge): every staging byte
  // below this offset is covered by a chunk (`written` is all true there), so
  // commit needs no scan of `written`. Chunks written in order keep it at
  // their end; one written ahead is passed over when the gap before it fills.
  std::map<std::uint64_t, std::uint64_t> covered_;
};

}  // namespace persim::servers::ckpt
