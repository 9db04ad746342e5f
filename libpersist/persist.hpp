// libpersist: what a program links to checkpoint only its own state and, once
// restarted, continue where it left off.
//
// A program declares its persistent state (typed fields and fixed-size byte
// regions bound by reference) and the sessions it uses (files, its console, key-
// value tables), then calls restore(): the newest valid image is loaded into
// the fields, each recorded session is rebuilt through ordinary requests to the
// servers (re-opened, sought to its offset), each grant name is mapped to the
// capability the supervisor granted this incarnation. checkpoint() writes an
// image to the checkpoint store through the "ckpt" grant.
//
// Effects since the last checkpoint happen at least once: a restarted program
// re-does them. In exactly-once mode every effect carries an idempotency token
// and sequence number (kept in the image), so the servers apply a re-done
// effect only once; this assumes the program re-does its effects in the same
// order, deterministically from its restored state (Persistent::random is a
// random stream that is part of the state, for that).
//
// See docs/libpersist.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/rng.hpp"
#include "kernel/sys.hpp"
#include "libpersist/image.hpp"
#include "libpersist/status.hpp"
#include "libpersist/strategy.hpp"
#include "servers/ckpt/ckpt.hpp"
#include "servers/console/console.hpp"
#include "servers/fs/fs.hpp"
#include "servers/kv/kv.hpp"

namespace persim::persist {

enum class Effects : std::uint8_t { at_least_once, exactly_once };

struct Options {
  std::string program;               // names the image: another program's image is refused
  std::uint32_t version = 1;         // this program's version, written into images
  std::uint32_t oldest_readable = 1;  // images of older versions are refused
  Effects effects = Effects::at_least_once;
  std::string checkpoint_grant = "ckpt";
  // A member of a checkpoint group (its manifest names the group): every
  // checkpoint is a group checkpoint, committed only with the whole group's
  // (see servers/ckpt/ckpt.hpp). It blocks until every member has taken its
  // own: a member must not checkpoint while another member waits on it.
  bool group = false;
  // Incremental images. With full_every above 1 every full_every-th image is
  // whole and those between are deltas: only the entries that changed since
  // the last whole image, which the store keeps as their base. A delta larger
  // than delta_percent_max percent of that whole image is written whole
  // instead (and starts the count again). 0 or 1: every image is whole. A
  // group member writes whole images whatever this says (see group).
  std::uint32_t full_every = 0;
  std::uint32_t delta_percent_max = 50;
  // The persistence strategy (strategy.hpp): how a restart reauthorizes and
  // rebuilds sessions. None: regrant.
  const StrategyKind* strategy = nullptr;
};

// A declared name (field, region, grant, file, console, key-value session) at
// most this long, leaving room for the prefixes libpersist's own entries add;
// a program name, file path or grant named in `via` at most image_name_bytes_max.
inline constexpr std::size_t declared_name_bytes_max = image_name_bytes_max - 16;

// What restore() found.
struct Restored {
  bool from_image = false;     // false: no image yet, a fresh start
  std::uint64_t version = 0;   // the image's version in the store
  std::uint64_t base = 0;      // a delta: the version of the whole image it was applied to (0: whole)
  std::uint64_t sequence = 0;  // checkpoints taken before this start
  std::vector<std::string> passed_over;  // damaged newer images, and why
};

class Persistent;

// A file session libpersist records by the request that opened it and rebuilds.
// If its server dies, the next operation re-obtains the grant from the
// supervisor, re-opens and seeks, and goes on (the same sequence number, exactly once).
class File {
 public:
  // Writes at the offset (or the end, in append mode); at most chunk_bytes_max.
  servers::Outcome write(kernel::Sys& sys, std::string_view bytes);
  servers::Outcome read(kernel::Sys& sys, std::uint32_t max, std::string* out);
  servers::Outcome seek(kernel::Sys& sys, std::uint64_t offset);
  servers::Outcome truncate(kernel::Sys& sys, std::uint64_t size);
  servers::FsClient client() const { return servers::FsClient(session_); }

 private:
  friend class Persistent;
  bool rebind();
  Persistent* owner_ = nullptr;
  std::string name_;
  FileRecord record_;
  servers::Session<servers::FsOp> session_;
  TokenRecord token_;
  std::uint64_t offset_ = 0;  // where the server's session is, as far as this side knows
};

// A console session (a grant): its writes are effects; its input position is
// part of the image, so a restarted program re-reads what it read since.
class Console {
 public:
  servers::Outcome write(kernel::Sys& sys, std::string_view text);
  servers::Outcome read_line(kernel::Sys& sys, std::string* line, bool* end);

 private:
  friend class Persistent;
  Persistent* owner_ = nullptr;
  std::string name_;
  std::string via_;
  servers::Session<servers::ConsoleOp> session_;
  TokenRecord token_;
  std::optional<std::uint64_t> input_at_;  // from the image, until restore seeks there
  bool rebind();
};

// A key-value session (a grant): puts, deletes and transactions are effects.
class Kv {
 public:
  servers::Outcome get(kernel::Sys& sys, std::string_view key, std::string* value);
  servers::Outcome put(kernel::Sys& sys, std::string_view key, std::string_view value);
  servers::Outcome del(kernel::Sys& sys, std::string_view key);
  servers::Outcome txn(kernel::Sys& sys, const std::vector<servers::KvTxnOp>& ops, std::uint8_t* failed = nullptr);

 private:
  bool rebind();
  friend class Persistent;
  Persistent* owner_ = nullptr;
  std::string name_;
  std::string via_;
  servers::Session<servers::KvOp> session_;
  TokenRecord token_;
};

class Persistent {
 public:
  Persistent(kernel::Sys& sys, Options options);
  Persistent(const Persistent&) = delete;
  Persistent& operator=(const Persistent&) = delete;

  // ---- Declarations, before restore(). Names are unique within the program.
  void field(std::string name, std::uint64_t& value);
  void field(std::string name, std::int64_t& value);
  void field(std::string name, std::string& value);
  void field(std::string name, std::vector<std::byte>& value);
  void field(std::string name, std::vector<std::uint64_t>& value);
  void field(std::string name, std::map<std::string, std::string>& value);
  // A fixed-size region (its size must match the image's).
  void region(std::string name, std::span<std::byte> bytes);
  // A grant held by name: restore() maps it to this incarnation's capability
  // and fails naming it if it is missing.
  kernel::Cap<kernel::Endpoint>& grant(std::string name);
  // A file opened through grant `via`: the grant itself when `path` is empty,
  // else a directory grant and a path relative to it, opened with `mode`.
  File& file(std::string name, std::string via, std::string path = {}, std::uint8_t mode = 0);
  Console& console(std::string name, std::string via = "console");
  Kv& kv(std::string name, std::string via);

  // ---- Restart and checkpoint.
  // Loads the newest valid image (passing over damaged ones), or starts fresh
  // if there is none; rebuilds sessions; maps grants. In exactly-once mode a
  // fresh start checkpoints at once, so the idempotency tokens are durable
  // before the first effect.
  PersistStatus restore(Restored* restored = nullptr);
  // Writes an image of the declared state. `*version` is its version in the store.
  PersistStatus checkpoint(std::uint64_t* version = nullptr);

  // A random stream that is part of the state: restored with it, so re-done
  // work draws the same numbers.
  std::uint64_t random();
  std::uint64_t random_below(std::uint64_t bound);

  // The image the next checkpoint would write (for tests and inspection).
  Image snapshot();
  std::uint64_t checkpoints() const { return sequence_; }
  // Of the checkpoints this incarnation took, how many were deltas.
  std::uint64_t deltas_written() const { return deltas_written_; }
  // A group member: the group epoch of its state (restored, or last committed).
  std::uint64_t group_epoch() const { return group_epoch_; }

 private:
  friend class File;
  friend class Console;
  friend class Kv;

  struct Binding {
    EntryKind kind;
    std::string name;
    std::function<void(Entry&)> save;
    std::function<void(const Entry&)> load;
    std::size_t region_size = 0;
  };

  void bind(EntryKind kind, std::string name, std::function<void(Entry&)> save,
            std::function<void(const Entry&)> load, std::size_t region_size = 0);
  // Notes the first declaration an image could not hold; restore() and
  // checkpoint() then refuse (bad_declaration) rather than write images that
  // no restore could read.
  void check_declared(std::string_view what, std::string_view name, std::size_t max = declared_name_bytes_max);
  // restore()'s three steps (restore.cpp).
  PersistStatus choose_image(Restored& found);
  PersistStatus reauthorize();
  PersistStatus rebuild_sessions(bool from_image);
  // Whether `image` fits the declarations (program, version, each field's type and size).
  PersistStatus check_fits(const Image& image) const;
  PersistStatus load(const Image& image);
  // One session, through the strategy: its grant reauthorized, then rebuilt.
  // A refusal names the session (`name`, as declared) and its grant or the step.
  PersistStatus rebuild(const SessionPlan& plan, const std::string& name, kernel::Cap<kernel::Endpoint>* session);
  static SessionPlan file_plan(const FileRecord& r, std::optional<std::uint64_t> resume_at);
  PersistStatus open_file(File& f, bool restoring);
  PersistStatus issue_tokens(bool* issued);
  PersistStatus ensure_token(kernel::Cap<kernel::Endpoint> session, TokenRecord& token, const std::string& what,
                             bool* issued);
  // Sends an effect (exactly once if so configured) through `session`.
  // A session whose server died is re-obtained by `rebind` and the request
  // sent again, as it was.
  template <class Protocol>
  servers::Outcome effect(servers::Session<Protocol>& session, TokenRecord& token, kernel::Message& request,
                          kernel::Message& reply, const std::function<bool()>& rebind);
  // The session `plan` describes, afresh: its server died mid-run; the
  // strategy obtains its successor's capability and rebuilds the session.
  template <class Protocol>
  bool reobtain(const SessionPlan& plan, servers::Session<Protocol>* session);
  bool exactly_once() const { return options_.effects == Effects::exactly_once; }

  kernel::Sys& sys_;
  Options options_;
  std::unique_ptr<Strategy> strategy_;
  std::vector<Binding> bindings_;
  std::map<std::string, kernel::Cap<kernel::Endpoint>> grants_;
  std::vector<std::unique_ptr<File>> files_;
  std::vector<std::unique_ptr<Console>> consoles_;
  std::vector<std::unique_ptr<Kv>> kvs_;
  kernel::Rng rng_;
  std::uint64_t sequence_ = 0;
  std::uint64_t group_epoch_ = 0;  // the group epoch of the image restored or last committed
  servers::CkptClient store_;
  bool restored_ = false;
  std::string declaration_error_;  // "" unless a declaration was too long
  std::vector<std::byte> buffer_;  // the encoded image, reused
  // Incremental images: the last whole image written or restored (the base of
  // the next delta), its version in the store and encoded size, and how many
  // deltas have been written on it.
  std::optional<Image> base_;
  std::uint64_t base_version_ = 0;
  std::uint64_t base_bytes_ = 0;
  std::uint64_t deltas_on_base_ = 0;
  std::uint64_t deltas_written_ = 0;
  // A group member writes whole images only: every member then keeps its
  // images of the same two newest epochs, which a group rollback needs.
  bool incremental() const { return options_.full_every > 1 && !options_.group; }
  // Encodes `state` into buffer_, as a delta on base_ if the policy allows;
  // returns the base's version if it is a delta, else 0.
  std::uint64_t encode_next(const Image& state);
  // After `state` was written as version `v` (a delta if `base` is not 0);
  // a whole image becomes the base (swapped with it).
  void written(Image& state, std::uint64_t v, std::uint64_t base);
  // The image of the declared state, into `image` (its entries reused).
  void snapshot_into(Image& image);
  Image scratch_;  // the last checkpoint's snapshot, reused
};

}  // namespace persim::persist
