#include "libpersist/persist.hpp"

#include <algorithm>
#include <cassert>

#include "libpersist/entry_names.hpp"
#include "servers/wire.hpp"

namespace persim::persist {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Message;
using kernel::Sys;
using servers::Outcome;
using servers::ServiceError;

const char* to_string(PersistError e) noexcept {
  switch (e) {
    case PersistError::none: return "none";
    case PersistError::no_store: return "no_store";
    case PersistError::no_valid_image: return "no_valid_image";
    case PersistError::wrong_program: return "wrong_program";
    case PersistError::version_refused: return "version_refused";
    case PersistError::wrong_type: return "wrong_type";
    case PersistError::wrong_size: return "wrong_size";
    case PersistError::grant_missing: return "grant_missing";
    case PersistError::session_refused: return "session_refused";
    case PersistError::group_aborted: return "group_aborted";
    case PersistError::group_rolled_back: return "group_rolled_back";
    case PersistError::bad_declaration: return "bad_declaration";
  }
  return "unknown";
}

namespace {

// The snapshot of a state up to this size (encoded) is kept for the next
// checkpoint to write over; a larger one is freed after its checkpoint.
constexpr std::size_t scratch_bytes_max = 64 << 10;

}  // namespace

Persistent::Persistent(Sys& sys, Options options)
    : sys_(sys),
      options_(std::move(options)),
      strategy_((options_.strategy != nullptr ? *options_.strategy : regrant_strategy()).make()) {
  assert(strategy_ != nullptr);
  check_declared("program", options_.program, image_name_bytes_max);
}

void Persistent::check_declared(std::string_view what, std::string_view name, std::size_t max) {
  if (name.size() <= max || !declaration_error_.empty()) return;
  declaration_error_ = std::string(what) + " '" + std::string(name.substr(0, 24)) + "...': " +
                       std::to_string(name.size()) + " bytes, over the " + std::to_string(max) + " an image holds";
}

// ---------------------------------------------------------------- declarations

void Persistent::bind(EntryKind kind, std::string name, std::function<void(Entry&)> save,
                      std::function<void(const Entry&)> load, std::size_t region_size) {
  assert(!name.empty() && name.front() != '.' && "names starting with '.' are libpersist's own");
  assert(std::none_of(bindings_.begin(), bindings_.end(), [&](const Binding& b) { return b.name == name; }));
  check_declared("field", name);
  bindings_.push_back({kind, std::move(name), std::move(save), std::move(load), region_size});
}

void Persistent::field(std::string name, std::uint64_t& v) {
  bind(EntryKind::u64, std::move(name), [&v](Entry& e) { e.number = v; }, [&v](const Entry& e) { v = e.number; });
}

void Persistent::field(std::string name, std::int64_t& v) {
  bind(EntryKind::i64, std::move(name), [&v](Entry& e) { e.number = static_cast<std::uint64_t>(v); },
       [&v](const Entry& e) { v = static_cast<std::int64_t>(e.number); });
}

void Persistent::field(std::string name, std::string& v) {
  bind(EntryKind::bytes, std::move(name),
       [&v](Entry& e) {
         const auto b = std::as_bytes(std::span(v.data(), v.size()));
         e.bytes.assign(b.begin(), b.end());
       },
       [&v](const Entry& e) { v.assign(reinterpret_cast<const char*>(e.bytes.data()), e.bytes.size()); });
}

void Persistent::field(std::string name, std::vector<std::byte>& v) {
  bind(EntryKind::bytes, std::move(name), [&v](Entry& e) { e.bytes = v; }, [&v](const Entry& e) { v = e.bytes; });
}

void Persistent::field(std::string name, std::vector<std::uint64_t>& v) {
  bind(EntryKind::u64s, std::move(name), [&v](Entry& e) { e.numbers = v; }, [&v](const Entry& e) { v = e.numbers; });
}

void Persistent::field(std::string name, std::map<std::string, std::string>& v) {
  bind(EntryKind::strings, std::move(name), [&v](Entry& e) { e.strings = v; },
       [&v](const Entry& e) { v = e.strings; });
}

void Persistent::region(std::string name, std::span<std::byte> bytes) {
  bind(EntryKind::region, std::move(name), [bytes](Entry& e) { e.bytes.assign(bytes.begin(), bytes.end()); },
       [bytes](const Entry& e) { std::copy(e.bytes.begin(), e.bytes.end(), bytes.begin()); }, bytes.size());
}

Cap<Endpoint>& Persistent::grant(std::string name) {
  check_declared("grant", name);
  return grants_[std::move(name)];
}

File& Persistent::file(std::string name, std::string via, std::string path, std::uint8_t mode) {
  check_declared("file", name);
  check_declared("file grant", via, image_name_bytes_max);
  check_declared("file path", path, image_name_bytes_max);
  auto f = std::make_unique<File>();
  f->owner_ = this;
  f->name_ = std::move(name);
  f->record_ = FileRecord{std::move(via), std::move(path), mode, 0};
  File& ref = *f;
  files_.push_back(std::move(f));
  if (restored_) {
    // Opened after the restart: at once, and (exactly once) with a durable token.
    if (open_file(ref, false) && exactly_once()) {
      bool issued = false;
      if (ensure_token(ref.session_.cap(), ref.token_, "file '" + ref.name_ + "'", &issued) && issued) (void)checkpoint();
    }
  }
  return ref;
}

Console& Persistent::console(std::string name, std::string via) {
  check_declared("console", name);
  check_declared("console grant", via, image_name_bytes_max);
  auto c = std::make_unique<Console>();
  c->owner_ = this;
  c->name_ = std::move(name);
  c->via_ = std::move(via);
  consoles_.push_back(std::move(c));
  return *consoles_.back();
}

Kv& Persistent::kv(std::string name, std::string via) {
  check_declared("kv", name);
  check_declared("kv grant", via, image_name_bytes_max);
  auto k = std::make_unique<Kv>();
  k->owner_ = this;
  k->name_ = std::move(name);
  k->via_ = std::move(via);
  kvs_.push_back(std::move(k));
  return *kvs_.back();
}

// ---------------------------------------------------------------- checkpoint

Image Persistent::snapshot() {
  Image image;
  snapshot_into(image);
  return image;
}

void Persistent::snapshot_into(Image& image) {
  image.program = options_.program;
  image.program_version = options_.version;
  image.sequence = sequence_ + 1;
  image.base_sequence = 0;
  image.removed.clear();
  // Entries are overwritten in place, every field of each (what its kind
  // does not use cleared): a checkpoint of the same declarations reuses the
  // strings and vectors of the last one instead of allocating them again.
  std::size_t n = 0;
  auto add = [&image, &n](EntryKind kind, std::string_view name) -> Entry& {
    if (n == image.entries.size()) image.entries.emplace_back();
    Entry& e = image.entries[n++];
    e.kind = kind;
    e.name.assign(name);
    e.number = 0;
    e.bytes.clear();
    e.numbers.clear();
    e.strings.clear();
    if (!e.file.via.empty() || !e.file.path.empty() || e.file.mode != 0 || e.file.offset != 0) e.file = {};
    e.token = {};
    return e;
  };
  for (const Binding& b : bindings_) b.save(add(b.kind, b.name));
  entries::Name entry;
  for (const auto& [name, cap] : grants_) add(EntryKind::grant, entry(entries::grant, name));
  auto token = [&add, &entry](std::string_view prefix, const std::string& name, const TokenRecord& t) {
    if (t.token != 0) add(EntryKind::token, entry(prefix, name)).token = t;
  };
  for (const auto& f : files_) {
    add(EntryKind::file, entry(entries::file, f->name_)).file = f->record_;
    token(entries::file_token, f->name_, f->token_);
  }
  for (const auto& c : consoles_) {
    token(entries::console_token, c->name_, c->token_);
    if (c->input_at_) add(EntryKind::u64, entry(entries::console_input, c->name_)).number = *c->input_at_;
  }
  for (const auto& k : kvs_) token(entries::kv_token, k->name_, k->token_);
  const std::array<std::uint64_t, 4> state = rng_.state();
  add(EntryKind::random, entries::random).numbers.assign(state.begin(), state.end());
  if (options_.group) add(EntryKind::u64, entries::group_epoch).number = group_epoch_ + 1;
  image.entries.resize(n);
  strategy_->save(image);
}

PersistStatus Persistent::checkpoint(std::uint64_t* version) {
  if (!declaration_error_.empty()) return fail(PersistError::bad_declaration, declaration_error_);
  if (!restored_) return fail(PersistError::no_store, "checkpoint before restore()");
  // A file's offset is the server's: ask, so the image records exactly where it is.
  for (auto& f : files_) {
    std::uint64_t offset = 0, size = 0;
    Outcome o = servers::FsClient(f->session_).stat(sys_, &offset, &size);
    if (o.server_gone() && f->rebind()) o = servers::FsClient(f->session_).stat(sys_, &offset, &size);
    if (!o) return fail(PersistError::session_refused, "file '" + f->name_ + "': stat: " + o.describe());
    f->record_.offset = offset;
    f->offset_ = offset;
  }
  for (auto& c : consoles_) {
    std::uint64_t at = 0;
    Outcome o = servers::ConsoleClient(c->session_).tell_input(sys_, &at);
    if (o.server_gone() && c->rebind()) o = servers::ConsoleClient(c->session_).tell_input(sys_, &at);
    if (!o) return fail(PersistError::session_refused, "console '" + c->name_ + "': tell input: " + o.describe());
    c->input_at_ = at;  // for snapshot(); cleared below
  }
  Image& state = scratch_;
  snapshot_into(state);
  assert(state.sequence == sequence_ + 1 && state.program == options_.program && !state.delta());
  [[maybe_unused]] const std::uint64_t sequence_before = sequence_, epoch_before = group_epoch_;
  for (auto& c : consoles_) c->input_at_.reset();
  std::uint64_t base = encode_next(state);
  std::uint64_t v = 0;
  // Writes (or, in a group, prepares) buffer_; once again on a restarted
  // store (what was staged or prepared went with the old one; the epoch is
  // still the next one), and once more whole if a delta's base is not kept.
  auto send = [&] {
    return options_.group ? store_.prepare(sys_, buffer_, group_epoch_ + 1, &v, base)
                          : store_.write(sys_, buffer_, &v, base);
  };
  Outcome o = send();
  if (o.server_gone()) {
    servers::Session<servers::CkptOp> fresh;
    if (reobtain(SessionPlan::of(SessionKind::checkpoint, options_.checkpoint_grant), &fresh)) {
      store_.rebind(fresh);
      o = send();
    }
  }
  // not_found: the base is not kept. (A base libpersist names is always
  // whole, so conflict never means the base; group members write no deltas.)
  if (base != 0 && o.service == ServiceError::not_found) {
    base_.reset();
    base = encode_next(state);
    o = send();
  }
  if (options_.group) {
    if (o.service == ServiceError::failed)
      return fail(PersistError::group_aborted, "group epoch " + std::to_string(group_epoch_ + 1) + " aborted");
    if (o.service == ServiceError::conflict)  // the group's committed epoch moved back under this member
      return fail(PersistError::group_rolled_back,
                  "group epoch " + std::to_string(group_epoch_ + 1) + ": the group went back an epoch; it restarts");
    if (!o) return fail(PersistError::no_store, "checkpoint store: prepare: " + o.describe());
    ++group_epoch_;
  } else if (!o) {
    return fail(PersistError::no_store, "checkpoint store: " + o.describe());
  }
  ++sequence_;
  written(state, v, base);
  // One checkpoint taken, in one epoch (a group member's), as a delta only on
  // a whole image the store keeps.
  assert(sequence_ == sequence_before + 1 && v != 0 && base < v);
  assert(group_epoch_ == epoch_before + (options_.group ? 1 : 0));
  assert(base == 0 || (incremental() && base == base_version_ && deltas_on_base_ < options_.full_every));
  if (version != nullptr) *version = v;
  return {};
}

std::uint64_t Persistent::encode_next(const Image& state) {
  if (incremental() && base_ && deltas_on_base_ + 1 < options_.full_every) {
    encode(delta_of(*base_, state), buffer_);
    if (buffer_.size() * 100 <= base_bytes_ * options_.delta_percent_max) return base_version_;
  }
  encode(state, buffer_);
  assert(!buffer_.empty());
  return 0;
}

void Persistent::written(Image& state, std::uint64_t v, std::uint64_t base) {
  if (base != 0) {
    ++deltas_on_base_;
    ++deltas_written_;
    return;
  }
  if (!incremental()) {
    // A large state is not kept twice (its encoding is kept already, in
    // buffer_): only a small one's room is worth reusing.
    if (buffer_.size() > scratch_bytes_max) state = Image();
    return;
  }
  // The state becomes the base; the old base's room is the next snapshot's.
  if (!base_) base_.emplace();
  std::swap(*base_, state);
  base_version_ = v;
  base_bytes_ = buffer_.size();
  deltas_on_base_ = 0;
}

std::uint64_t Persistent::random() { return rng_.next(); }
std::uint64_t Persistent::random_below(std::uint64_t bound) { return bound == 0 ? 0 : rng_.below(bound); }

// ---------------------------------------------------------------- effects

template <class Protocol>
Outcome Persistent::effect(servers::Session<Protocol>& session, TokenRecord& token, Message& request, Message& reply,
                           const std::function<bool()>& rebind) {
  if (exactly_once() && token.token != 0 && !servers::make_once(request, token.token, token.next_seq++))
    return {kernel::Error{}, ServiceError::malformed};
  Outcome o = servers::call(sys_, session, request, reply);
  if (o.server_gone() && rebind()) o = servers::call(sys_, session, request, reply);
  return o;
}

template <class Protocol>
bool Persistent::reobtain(const SessionPlan& plan, servers::Session<Protocol>* session) {
  Cap<Endpoint> via, fresh;
  if (!strategy_->reobtain(sys_, plan.via, &via)) return false;
  if (!strategy_->rebuild(sys_, plan, via, &fresh)) return false;
  *session = servers::Session<Protocol>(fresh);
  return true;
}

bool File::rebind() { return owner_->reobtain(owner_->file_plan(record_, offset_), &session_); }
bool Console::rebind() { return owner_->reobtain(SessionPlan::of(SessionKind::console, via_), &session_); }
bool Kv::rebind() { return owner_->reobtain(SessionPlan::of(SessionKind::kv, via_), &session_); }

namespace {

Message request_for(std::uint64_t op) {
  Message m{};
  m.label = op;
  return m;
}

}  // namespace

Outcome File::write(Sys&, std::string_view bytes) {
  Message request = request_for(static_cast<std::uint64_t>(servers::FsOp::write)), reply{};
  if (!servers::wire::Writer(request).str(bytes).ok()) return {kernel::Error{}, ServiceError::malformed};
  const Outcome o = owner_->effect(session_, token_, request, reply, [this] { return rebind(); });
  if (o) offset_ += bytes.size();
  return o;
}

Outcome File::read(Sys& sys, std::uint32_t max, std::string* out) {
  Outcome o = servers::FsClient(session_).read(sys, max, out);
  if (o.server_gone() && rebind()) o = servers::FsClient(session_).read(sys, max, out);
  if (o) offset_ += out->size();
  return o;
}

Outcome File::seek(Sys& sys, std::uint64_t offset) {
  Outcome o = servers::FsClient(session_).seek(sys, offset);
  if (o.server_gone() && rebind()) o = servers::FsClient(session_).seek(sys, offset);
  if (o) offset_ = offset;
  return o;
}

Outcome File::truncate(Sys&, std::uint64_t size) {
  Message request = request_for(static_cast<std::uint64_t>(servers::FsOp::truncate)), reply{};
  servers::wire::Writer(request).u64(size);
  return owner_->effect(session_, token_, request, reply, [this] { return rebind(); });
}

Outcome Console::write(Sys&, std::string_view text) {
  do {
    const std::string_view chunk = text.substr(0, servers::chunk_bytes_max);
    text.remove_prefix(chunk.size());
    Message request = request_for(static_cast<std::uint64_t>(servers::ConsoleOp::write)), reply{};
    servers::wire::Writer(request).str(chunk);
    if (const Outcome o = owner_->effect(session_, token_, request, reply, [this] { return rebind(); }); !o) return o;
  } while (!text.empty());
  return {};
}

Outcome Console::read_line(Sys& sys, std::string* line, bool* end) {
  Outcome o = servers::ConsoleClient(session_).read_line(sys, line, end);
  if (o.server_gone() && rebind()) o = servers::ConsoleClient(session_).read_line(sys, line, end);
  return o;
}

Outcome Kv::get(Sys& sys, std::string_view key, std::string* value) {
  Outcome o = servers::KvClient(session_).get(sys, key, value);
  if (o.server_gone() && rebind()) o = servers::KvClient(session_).get(sys, key, value);
  return o;
}

Outcome Kv::put(Sys&, std::string_view key, std::string_view value) {
  Message request = request_for(static_cast<std::uint64_t>(servers::KvOp::put)), reply{};
  if (!servers::wire::Writer(request).str(key).str(value).ok()) return {kernel::Error{}, ServiceError::malformed};
  return owner_->effect(session_, token_, request, reply, [this] { return rebind(); });
}

Outcome Kv::del(Sys&, std::string_view key) {
  Message request = request_for(static_cast<std::uint64_t>(servers::KvOp::del)), reply{};
  if (!servers::wire::Writer(request).str(key).ok()) return {kernel::Error{}, ServiceError::malformed};
  return owner_->effect(session_, token_, request, reply, [this] { return rebind(); });
}

Outcome Kv::txn(Sys&, const std::vector<servers::KvTxnOp>& ops, std::uint8_t* failed) {
  Message request = request_for(static_cast<std::uint64_t>(servers::KvOp::txn)), reply{};
  servers::wire::Writer w(request);
  w.u8(static_cast<std::uint8_t>(ops.size()));
  for (const servers::KvTxnOp& op : ops) {
    w.u8(static_cast<std::uint8_t>(op.kind)).str(op.key);
    if (op.kind == servers::KvTxnOp::Kind::check_equal || op.kind == servers::KvTxnOp::Kind::put) w.str(op.value);
  }
  if (!w.ok()) return {kernel::Error{}, ServiceError::malformed};
  const Outcome o = owner_->effect(session_, token_, request, reply, [this] { return rebind(); });
  if (o.service == ServiceError::conflict && failed != nullptr) *failed = servers::wire::Reader(reply).u8();
  return o;
}

}  // namespace persim::persist
