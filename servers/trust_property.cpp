// Invariant 4, the trust rule: no server accepts client-supplied server-side
// state. Over random server states (files, sessions with offsets, keys, images,
// console streams), a request to restore state from client bytes, sent through
// any session of any server (or to the supervisor), is refused with
// untrusted_state, audited, and leaves the server's state byte for byte as it
// was: its volatile state (sessions, offsets) and its trusted storage.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "support/system_harness.hpp"

namespace persim::servers {
namespace {

using namespace persim::testing;

struct Op {
  enum class Kind : std::uint8_t { fs_write, fs_truncate, kv_put, kv_del, ckpt_write, console_write };
  Kind kind;
  int target;  // which file or key, of a few
  std::string bytes;
};

rc::Gen<Op> ops() {
  return rc::gen::build<Op>(
      rc::gen::set(&Op::kind, rc::gen::element(Op::Kind::fs_write, Op::Kind::fs_truncate, Op::Kind::kv_put,
                                                Op::Kind::kv_del, Op::Kind::ckpt_write, Op::Kind::console_write)),
      rc::gen::set(&Op::target, rc::gen::inRange(0, 4)),
      rc::gen::set(&Op::bytes, rc::gen::container<std::string>(rc::gen::inRange<char>(32, 127))));
}

enum class Target : std::uint8_t { console, fs_dir, fs_file, kv, ckpt, supervisor };

void showValue(Target t, std::ostream& os) {
  static constexpr const char* names[] = {"console", "fs_dir", "fs_file", "kv", "ckpt", "supervisor"};
  os << names[static_cast<int>(t)];
}

void showValue(const Op& op, std::ostream& os) {
  static constexpr const char* names[] = {"fs_write", "fs_truncate", "kv_put", "kv_del", "ckpt_write", "console_write"};
  os << names[static_cast<int>(op.kind)] << "(" << op.target << ", \"" << op.bytes << "\")";
}

struct Fixture {
  Fixture() : system(system_config()) {
    system.add_standard_servers();
    EXPECT_TRUE(system.add_program("client", client.entry()).ok());
    system.add(manifest("client", "client",
                        {{"console", "console", ""}, {"data", "fs:/data/", "rwcd"}, {"kv", "kv:t", ""},
                         {"ckpt", "ckpt", ""}}));
    EXPECT_TRUE(system.boot().ok());
    EXPECT_TRUE(run_until(system, [&] { return client.incarnations() == 1; }));
  }
  System system;
  DrivenProgram client;
  std::vector<FsClient> files;  // sessions the client opened, kept open
};

// Applies `op` from the client; the outcome may be an error (e.g. deleting a
// missing key): only the resulting state matters.
void apply(Fixture& f, Sys& sys, const Op& op) {
  const std::string name = "f" + std::to_string(op.target);
  const std::string key = "k" + std::to_string(op.target);
  switch (op.kind) {
    case Op::Kind::fs_write:
    case Op::Kind::fs_truncate: {
      FsClient file;
      const FsClient dir(granted_session<FsOp>(sys, "data").value());
      if (!dir.open(sys, name, fs_mode::read | fs_mode::write | fs_mode::create, &file)) return;
      f.files.push_back(file);
      if (op.kind == Op::Kind::fs_write) (void)file.write(sys, std::string_view(op.bytes).substr(0, chunk_bytes_max));
      if (op.kind == Op::Kind::fs_truncate) (void)file.truncate(sys, op.bytes.size());
      return;
    }
    case Op::Kind::kv_put:
      (void)KvClient(granted_session<KvOp>(sys, "kv").value()).put(sys, key, op.bytes.substr(0, kv_value_bytes_max));
      return;
    case Op::Kind::kv_del: (void)KvClient(granted_session<KvOp>(sys, "kv").value()).del(sys, key); return;
    case Op::Kind::ckpt_write:
      (void)CkptClient(granted_session<CkptOp>(sys, "ckpt").value())
          .write(sys, std::as_bytes(std::span(op.bytes.data(), op.bytes.size())), nullptr);
      return;
    case Op::Kind::console_write: (void)ConsoleClient(granted_session<ConsoleOp>(sys, "console").value()).write(sys, op.bytes); return;
  }
}

// Everything a server is: its volatile state's encoding and its storage.
struct Snapshot {
  std::vector<std::byte> live;
  std::map<std::string, TrustedStore::Bytes, std::less<>> stored;
  std::map<std::string, std::string> console_output;
  std::size_t supervisor_events = 0;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(Fixture& f) {
  System& s = f.system;
  Snapshot out;
  for (const auto& part : {s.console().live->encode(), s.fs().live->encode(), s.kv().live->encode(),
                           s.ckpt().live->encode()})
    out.live.insert(out.live.end(), part.begin(), part.end());
  for (const TrustedStore* store : {&s.fs().store, &s.kv().store, &s.ckpt().store})
    for (const auto& [k, v] : store->records()) out.stored.emplace(k, v);
  out.console_output = s.console().output;
  out.supervisor_events = s.supervisor().events.size();
  return out;
}

std::uint64_t refused_restores(System& s) {
  return s.console().audit.refused_restores + s.fs().audit.refused_restores + s.kv().audit.refused_restores +
         s.ckpt().audit.refused_restores + s.supervisor().audit.refused_restores;
}

RC_GTEST_PROP(TrustRule, ForgedRestoreIsRefusedAndChangesNothing, ()) {
  const auto history = *rc::gen::container<std::vector<Op>>(ops());
  const Target target = *rc::gen::element(Target::console, Target::fs_dir, Target::fs_file, Target::kv, Target::ckpt,
                                          Target::supervisor);
  const auto forged = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
  const bool attach_a_capability = *rc::gen::arbitrary<bool>();
  Fixture f;
  RC_ASSERT(f.client.run(f.system, [&](Sys& sys) {
    for (const Op& op : history) apply(f, sys, op);
  }));
  RC_PRE(target != Target::fs_file || !f.files.empty());

  const Snapshot before = snapshot(f);
  const std::uint64_t refused_before = refused_restores(f.system);
  Outcome outcome;
  RC_ASSERT(f.client.run(f.system, [&](Sys& sys) {
    Cap<Endpoint> via;
    switch (target) {
      case Target::console: via = sys.granted<Endpoint>("console").value(); break;
      case Target::fs_dir: via = sys.granted<Endpoint>("data").value(); break;
      case Target::fs_file: via = f.files.back().session().cap(); break;
      case Target::kv: via = sys.granted<Endpoint>("kv").value(); break;
      case Target::ckpt: via = sys.granted<Endpoint>("ckpt").value(); break;
      case Target::supervisor: via = sys.granted<Endpoint>("supervisor").value(); break;
    }
    kernel::Message request{}, reply{};
    request.label = op_restore_state;
    (void)wire::Writer(request).str(std::string_view(forged).substr(0, chunk_bytes_max));
    // A capability of the client's own, as "the state's" handle: the server must not take it either.
    if (attach_a_capability) request.attach(sys.notification_create().value());
    outcome = call(sys, via, request, reply);
  }));
  RC_ASSERT(outcome.kernel == kernel::Error{});  // delivered: the refusal is the server's
  RC_ASSERT(outcome.service == ServiceError::untrusted_state);
  RC_ASSERT(snapshot(f) == before);
  RC_ASSERT(refused_restores(f.system) == refused_before + 1);
  RC_ASSERT(f.system.node().check_invariants().empty());
}

}  // namespace
}  // namespace persim::servers
