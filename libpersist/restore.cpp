// Persistent::restore, in its three steps: choose the image (the newest valid
// one, the same for every strategy), reauthorize (the strategy's: this
// incarnation's capability for each grant held), rebuild sessions (the
// strategy's: each recorded console, key-value and file session made live).
#include <algorithm>
#include <cassert>

#include "libpersist/entry_names.hpp"
#include "libpersist/persist.hpp"

namespace persim::persist {

using kernel::Cap;
using kernel::Endpoint;
using servers::CkptKept;
using servers::Outcome;
using servers::ServiceError;

namespace {

std::string describe(const kernel::Error e) { return "kernel: " + std::string(kernel::to_string(e)); }

// Step 1's reading: each kept image decoded and, a delta, applied to its
// base. What is passed over, and why, goes to `found.passed_over`.
class Chooser {
 public:
  Chooser(kernel::Sys& sys, servers::CkptClient& store, const std::vector<CkptKept>& versions, Restored& found)
      : sys_(sys), store_(store), versions_(versions), found_(found) {}

  // The whole image of `k`, into `image` (a delta's base into `base`, its
  // encoded size into `base_size`). False if passed over or, with `error`
  // set, if the store failed.
  bool whole(const CkptKept& k, const std::string& label, Image* image, Image* base, std::uint64_t* base_size,
             PersistStatus* error) {
    if (!read(k, label, image, error)) return false;
    // A delta is read with its base: the store keeps it, unless the images
    // were damaged or lost beneath it.
    if (image->delta() != (k.base != 0)) {
      found_.passed_over.push_back(label + ": " + (image->delta() ? "a delta the store holds as a whole image"
                                                                  : "a whole image the store holds as a delta"));
      return false;
    }
    if (!image->delta()) return true;
    const std::string base_label = label + ": its base, version " + std::to_string(k.base);
    const auto b = std::find_if(versions_.begin(), versions_.end(), [&](const CkptKept& v) { return v.version == k.base; });
    if (b == versions_.end()) {
      found_.passed_over.push_back(base_label + ": not kept");
      return false;
    }
    *base_size = b->size;
    if (!read(*b, base_label, base, error)) return false;
    auto merged = apply_delta(*base, *image);
    if (const std::string* e = std::get_if<std::string>(&merged)) {
      found_.passed_over.push_back(label + ": " + *e);
      return false;
    }
    *image = std::move(std::get<Image>(merged));
    assert(!image->delta() && image->sequence > base->sequence);
    return true;
  }

  // Takes the whole group back from epoch `committed` to `to`: this member
  // has no valid image of the committed epoch.
  PersistStatus roll_back(std::uint64_t committed, std::uint64_t to, const std::string& from_what) {
    std::uint64_t went_to = 0;
    const Outcome o = store_.group_rollback(sys_, committed, to, &went_to);
    const std::string what = "group epoch " + std::to_string(committed) + ": this member has no valid image of it" +
                             (found_.passed_over.empty() ? "" : " (" + damage() + ")");
    if (o.service == ServiceError::conflict)  // another member took the group back first
      return fail(PersistError::group_rolled_back, what + "; another member took the group back first; it restarts");
    if (!o) return fail(PersistError::no_store, "checkpoint store: group rollback: " + o.describe());
    return fail(PersistError::group_rolled_back,
                what + "; the group goes back to epoch " + std::to_string(went_to) +
                    (went_to == to ? from_what : " (the newest every member has)") + " and restarts");
  }

  std::string damage() const {
    std::string why;
    for (const std::string& p : found_.passed_over) why += (why.empty() ? "" : "; ") + p;
    return why;
  }

 private:
  // One kept image, decoded; false (and why, in passed_over) if damaged.
  bool read(const CkptKept& k, const std::string& label, Image* out, PersistStatus* error) {
    if (const Outcome o = store_.read(sys_, k.version, k.size, &bytes_); !o) {
      if (o.service == ServiceError::not_found) {
        // Erased since it was listed (another group member took the group back).
        found_.passed_over.push_back(label + ": no longer kept");
        return false;
      }
      *error = fail(PersistError::no_store,
                    "checkpoint store: reading version " + std::to_string(k.version) + ": " + o.describe());
      return false;
    }
    auto decoded = decode(bytes_);
    if (const DecodeError* e = std::get_if<DecodeError>(&decoded)) {
      found_.passed_over.push_back(label + ": " + e->describe());
      return false;
    }
    *out = std::move(std::get<Image>(decoded));
    return true;
  }

  kernel::Sys& sys_;
  servers::CkptClient& store_;
  const std::vector<CkptKept>& versions_;
  Restored& found_;
  std::vector<std::byte> bytes_;
};

}  // namespace

PersistStatus Persistent::restore(Restored* restored) {
  if (!declaration_error_.empty()) return fail(PersistError::bad_declaration, declaration_error_);
  Restored found;
  if (PersistStatus s = choose_image(found); !s) return s;
  found.sequence = sequence_;
  if (PersistStatus s = reauthorize(); !s) return s;
  if (PersistStatus s = rebuild_sessions(found.from_image); !s) return s;
  if (exactly_once()) {
    // The tokens are durable before the first effect: a fresh one, at once.
    bool issued = false;
    if (PersistStatus s = issue_tokens(&issued); !s) return s;
    restored_ = true;
    if (issued)
      if (PersistStatus s = checkpoint(); !s) return s;
  }
  restored_ = true;
  if (restored != nullptr) *restored = std::move(found);
  return {};
}

// ---------------------------------------------------------------- step 1: choose the image

// A group member restores its image of the group's committed epoch and no
// other: an older one would be an inconsistent cut with the members that
// restore that epoch. If that image is damaged, the member takes the whole
// group back to the epoch of its newest valid image (the store erases every
// member's later images with it) and fails with group_rolled_back: the
// program crashes, the supervisor restarts the group, and every member
// restores that epoch (or, missing it, goes back further).
PersistStatus Persistent::choose_image(Restored& found) {
  const kernel::Result<Cap<Endpoint>> ckpt = strategy_->reauthorize(sys_, options_.checkpoint_grant);
  if (!ckpt) return fail(PersistError::no_store, "grant '" + options_.checkpoint_grant + "': " + describe(ckpt.error()));
  store_.rebind(servers::Session<servers::CkptOp>(*ckpt));
  std::vector<CkptKept> versions;
  if (const Outcome o = store_.list(sys_, &versions); !o)
    return fail(PersistError::no_store, "checkpoint store: " + o.describe());
  std::uint64_t committed = 0;
  if (options_.group)
    if (const Outcome o = store_.group_epoch(sys_, &committed); !o)
      return fail(PersistError::no_store, "checkpoint store: group epoch: " + o.describe());
  Chooser chooser(sys_, store_, versions, found);
  for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
    const std::string label = "version " + std::to_string(it->version);
    PersistStatus error;
    Image image, base;
    std::uint64_t base_size = 0;  // a delta's base, encoded
    if (!chooser.whole(*it, label, &image, &base, &base_size, &error)) {
      if (!error) return error;
      continue;
    }
    if (options_.group) {
      const Entry* g = image.find(entries::group_epoch);
      const std::uint64_t epoch = g != nullptr && g->kind == EntryKind::u64 ? g->number : 0;
      if (epoch > committed) {
        found.passed_over.push_back(label + ": group epoch " + std::to_string(epoch) +
                                    " was not committed (the group's is " + std::to_string(committed) + ")");
        continue;
      }
      if (epoch < committed) return chooser.roll_back(committed, epoch, " (" + label + ")");
    }
    if (PersistStatus s = load(image); !s) return s;
    found.from_image = true;
    found.version = it->version;
    found.base = it->base;
    if (incremental()) {
      // The next delta is on the whole image this state came from.
      base_version_ = it->base != 0 ? it->base : it->version;
      base_bytes_ = it->base != 0 ? base_size : it->size;
      deltas_on_base_ = it->base != 0 ? image.sequence - base.sequence : 0;
      base_ = it->base != 0 ? std::move(base) : std::move(image);
    }
    return {};
  }
  if (committed > 0) return chooser.roll_back(committed, 0, ", a fresh start");
  if (!versions.empty()) return fail(PersistError::no_valid_image, chooser.damage());
  rng_ = kernel::Rng(sys_.random());  // a fresh stream, kept from now on
  // No image: the program starts over, so its input does too (an
  // incarnation killed before its first checkpoint may have read some).
  for (auto& c : consoles_) c->input_at_ = 0;
  return {};
}

// Checks everything before changing anything: a refused image leaves the
// fields as they were.
PersistStatus Persistent::check_fits(const Image& image) const {
  if (image.program != options_.program)
    return fail(PersistError::wrong_program,
                "image of program '" + image.program + "', this is '" + options_.program + "'");
  if (image.program_version > options_.version || image.program_version < options_.oldest_readable)
    return fail(PersistError::version_refused,
                "image of " + options_.program + " version " + std::to_string(image.program_version) +
                    "; this version " + std::to_string(options_.version) + " reads versions " +
                    std::to_string(options_.oldest_readable) + " to " + std::to_string(options_.version));
  for (const Binding& b : bindings_) {
    const Entry* e = image.find(b.name);
    if (e == nullptr) continue;  // added in a newer version: keeps its initial value
    if (e->kind != b.kind)
      return fail(PersistError::wrong_type, "field '" + b.name + "': the image has " + to_string(e->kind) +
                                                ", the program declares " + to_string(b.kind));
    if (b.kind == EntryKind::region && e->bytes.size() != b.region_size)
      return fail(PersistError::wrong_size, "region '" + b.name + "': the image has " +
                                                std::to_string(e->bytes.size()) + " bytes, the program declares " +
                                                std::to_string(b.region_size));
  }
  return {};
}

PersistStatus Persistent::load(const Image& image) {
  if (PersistStatus s = check_fits(image); !s) return s;
  for (const Binding& b : bindings_)
    if (const Entry* e = image.find(b.name)) b.load(*e);
  entries::Name entry;
  auto token = [&](std::string_view prefix, const std::string& name, TokenRecord& t) {
    if (const Entry* e = image.find(entry(prefix, name)); e != nullptr && e->kind == EntryKind::token) t = e->token;
  };
  for (auto& f : files_) {
    if (const Entry* e = image.find(entry(entries::file, f->name_)); e != nullptr && e->kind == EntryKind::file)
      f->record_ = e->file;
    token(entries::file_token, f->name_, f->token_);
  }
  for (auto& c : consoles_) {
    token(entries::console_token, c->name_, c->token_);
    if (const Entry* e = image.find(entry(entries::console_input, c->name_)); e != nullptr && e->kind == EntryKind::u64)
      c->input_at_ = e->number;
  }
  for (auto& k : kvs_) token(entries::kv_token, k->name_, k->token_);
  if (const Entry* e = image.find(entries::random); e != nullptr && e->kind == EntryKind::random)
    rng_ = kernel::Rng::from_state({e->numbers[0], e->numbers[1], e->numbers[2], e->numbers[3]});
  if (const Entry* e = image.find(entries::group_epoch); e != nullptr && e->kind == EntryKind::u64)
    group_epoch_ = e->number;
  strategy_->load(image);
  sequence_ = image.sequence;
  assert(!image.delta() && image.program == options_.program);
  return {};
}

// ---------------------------------------------------------------- step 2: reauthorize

PersistStatus Persistent::reauthorize() {
  for (auto& [name, cap] : grants_) {
    const kernel::Result<Cap<Endpoint>> g = strategy_->reauthorize(sys_, name);
    if (!g) return fail(PersistError::grant_missing, "grant '" + name + "': " + describe(g.error()));
    cap = *g;
  }
  return {};
}

// ---------------------------------------------------------------- step 3: rebuild sessions

// Each session's grant is reauthorized just before it is rebuilt.
PersistStatus Persistent::rebuild_sessions(bool from_image) {
  for (auto& c : consoles_) {
    Cap<Endpoint> session;
    const SessionPlan plan = SessionPlan::of(SessionKind::console, c->via_, c->input_at_);
    if (PersistStatus s = rebuild(plan, c->name_, &session); !s) return s;
    c->session_ = servers::Session<servers::ConsoleOp>(session);
    c->input_at_.reset();
  }
  for (auto& k : kvs_) {
    Cap<Endpoint> session;
    if (PersistStatus s = rebuild(SessionPlan::of(SessionKind::kv, k->via_), k->name_, &session); !s) return s;
    k->session_ = servers::Session<servers::KvOp>(session);
  }
  for (auto& f : files_)
    if (PersistStatus s = open_file(*f, from_image); !s) return s;
  return {};
}

namespace {

// A session as a refusal names it (built only then): "console 'out'",
// "kv 'accounts'", "file 'log' (data:log)".
std::string session_label(const SessionPlan& plan, const std::string& name) {
  switch (plan.kind) {
    case SessionKind::console: return "console '" + name + "'";
    case SessionKind::kv: return "kv '" + name + "'";
    case SessionKind::file:
      return "file '" + name + "' (" + std::string(plan.via) + (plan.path.empty() ? "" : ":" + std::string(plan.path)) +
             ")";
    case SessionKind::checkpoint: break;
  }
  return "checkpoint store";
}

// Its grant, when the grant is what is missing: "console 'out' (grant
// 'console')", "file 'log' (data:log): grant 'data'".
std::string grant_label(const SessionPlan& plan, const std::string& name) {
  const std::string grant = "grant '" + std::string(plan.via) + "'";
  return session_label(plan, name) + (plan.kind == SessionKind::file ? ": " + grant : " (" + grant + ")");
}

}  // namespace

PersistStatus Persistent::rebuild(const SessionPlan& plan, const std::string& name, Cap<Endpoint>* session) {
  const kernel::Result<Cap<Endpoint>> via = strategy_->reauthorize(sys_, plan.via);
  if (!via) return fail(PersistError::grant_missing, grant_label(plan, name) + ": " + describe(via.error()));
  if (PersistStatus s = strategy_->rebuild(sys_, plan, *via, session); !s)
    return fail(s.error, session_label(plan, name) + ": " + s.what);
  return {};
}

SessionPlan Persistent::file_plan(const FileRecord& r, std::optional<std::uint64_t> resume_at) {
  return {.kind = SessionKind::file, .via = r.via, .path = r.path, .mode = r.mode, .resume_at = resume_at};
}

PersistStatus Persistent::open_file(File& f, bool restoring) {
  const FileRecord& r = f.record_;
  Cap<Endpoint> session;
  const SessionPlan plan = file_plan(r, restoring ? std::optional(r.offset) : std::nullopt);
  if (PersistStatus s = rebuild(plan, f.name_, &session); !s) return s;
  f.session_ = servers::Session<servers::FsOp>(session);
  f.offset_ = restoring ? r.offset : 0;
  return {};
}

// ---------------------------------------------------------------- exactly once

PersistStatus Persistent::issue_tokens(bool* issued) {
  for (auto& c : consoles_)
    if (PersistStatus s = ensure_token(c->session_.cap(), c->token_, "console '" + c->name_ + "'", issued); !s)
      return s;
  for (auto& k : kvs_)
    if (PersistStatus s = ensure_token(k->session_.cap(), k->token_, "kv '" + k->name_ + "'", issued); !s) return s;
  for (auto& f : files_)
    if (PersistStatus s = ensure_token(f->session_.cap(), f->token_, "file '" + f->name_ + "'", issued); !s)
      return s;
  return {};
}

PersistStatus Persistent::ensure_token(Cap<Endpoint> session, TokenRecord& token, const std::string& what,
                                       bool* issued) {
  if (token.token != 0) return {};
  std::uint64_t t = 0;
  if (const Outcome o = servers::issue_token(sys_, session, &t); !o)
    return fail(PersistError::session_refused, what + ": issue token: " + o.describe());
  token = TokenRecord{t, 1};
  *issued = true;
  return {};
}

}  // namespace persim::persist
