#include "sim/programs.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "libpersist/persist.hpp"
#include "servers/session.hpp"

namespace persim::sim {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Sys;
using persist::Effects;
using persist::Persistent;

namespace {

// Reads the parameters of one program, checking names and values.
class Args {
 public:
  Args(const ProgramKind& kind, const Params& given, std::string* error) : kind_(kind), given_(given), error_(error) {
    for (const auto& given_param : given_) {
      const std::string& name = given_param.first;
      const bool known = std::any_of(kind_.params.begin(), kind_.params.end(),
                                     [&](const ParamSpec& p) { return p.name == name; });
      if (!known) fail(name, "unknown parameter of program '" + kind_.name + "'");
    }
  }
  std::uint64_t number(const std::string& name) {
    const std::string text = value(name);
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) fail(name, "expected a whole number, got \"" + text + "\"");
    return v;
  }
  // Incremental images: every full_every-th image whole, deltas between.
  std::uint32_t full_every() {
    const std::uint64_t v = number("full_every");
    if (v > UINT32_MAX) fail("full_every", "at most " + std::to_string(UINT32_MAX));
    return static_cast<std::uint32_t>(v);
  }
  Effects effects(const std::string& name) {
    const std::string text = value(name);
    if (text == "at_least_once") return Effects::at_least_once;
    if (text == "exactly_once") return Effects::exactly_once;
    fail(name, "expected at_least_once or exactly_once, got \"" + text + "\"");
    return Effects::at_least_once;
  }
  bool ok() const { return error_->empty(); }

 private:
  std::string value(const std::string& name) const {
    const auto it = given_.find(name);
    if (it != given_.end()) return it->second;
    for (const ParamSpec& p : kind_.params)
      if (p.name == name) return p.default_value;
    return {};
  }
  void fail(const std::string& name, const std::string& what) {
    if (error_->empty()) *error_ = "params." + name + ": " + what;
  }
  const ProgramKind& kind_;
  const Params& given_;
  std::string* error_;
};

// A program that cannot restore has nothing sensible to do: it crashes, and
// the supervisor's policy decides what happens next.
void restore_or_crash(Persistent& p) {
  if (const persist::PersistStatus s = p.restore(); !s)
    throw std::runtime_error(std::string("restore: ") + persist::to_string(s.error) + ": " + s.what);
}

// A kernel result the program cannot go on without (a grant whose server died
// just after the start is severed, say): a crash, as above, never an abort of
// the simulator.
template <class T>
T or_crash(kernel::Result<T> r, const char* what) {
  if (!r) throw std::runtime_error(std::string(what) + ": " + std::string(kernel::to_string(r.error())));
  return *r;
}

// A group member whose checkpoint failed (the epoch aborted: another member
// died) crashes, so its restart policy restarts it from the group's last
// epoch; returning would end it for good.
void checkpoint_or_crash(Persistent& p) {
  if (const persist::PersistStatus s = p.checkpoint(); !s)
    throw std::runtime_error(std::string("checkpoint: ") + persist::to_string(s.error) + ": " + s.what);
}

// ---------------------------------------------------------------- counter

kernel::Entry counter(const ProgramKind& kind, const ProgramSetup& setup, std::string* error) {
  Args a(kind, setup.params, error);
  const persist::StrategyKind* strategy = &setup.strategy;
  const std::uint64_t steps = a.number("steps"), every = a.number("every"), step_ns = a.number("step_ns");
  const Effects effects = a.effects("effects");
  const std::uint32_t full_every = a.full_every();
  const std::uint64_t cold_bytes = a.number("cold_bytes");
  // The slot's default quota (4 MiB) holds up to four images (two whole
  // ones and two deltas): an image must fit a quarter of it, with room.
  if (cold_bytes > (1u << 20)) *error = "params.cold_bytes: at most 1048576 (1 MiB: four images must fit the slot's 4 MiB quota)";
  if (!a.ok()) return {};
  return [=](Sys& sys) {
    Persistent p(sys, {.program = "counter", .effects = effects, .full_every = full_every, .strategy = strategy});
    std::uint64_t count = 0;
    p.field("count", count);
    // State set once at the first start and never changed: what a delta leaves out.
    std::vector<std::byte> cold(cold_bytes);
    if (cold_bytes != 0) p.region("cold", cold);
    persist::Console& out = p.console("out");
    restore_or_crash(p);
    if (count == 0)
      for (std::size_t i = 0; i < cold.size(); ++i) cold[i] = static_cast<std::byte>(i * 131 + 7);
    while (count < steps) {
      ++count;
      if (!out.write(sys, "count " + std::to_string(count) + "\n")) return;
      if (every != 0 && count % every == 0 && !p.checkpoint()) return;
      if (!sys.sleep_for(step_ns)) return;
    }
  };
}

// ---------------------------------------------------------------- echo

kernel::Entry echo(const ProgramKind& kind, const ProgramSetup& setup, std::string* error) {
  Args a(kind, setup.params, error);
  const persist::StrategyKind* strategy = &setup.strategy;
  const Effects effects = a.effects("effects");
  const std::uint32_t full_every = a.full_every();
  if (!a.ok()) return {};
  return [=](Sys& sys) {
    Persistent p(sys, {.program = "echo", .effects = effects, .full_every = full_every, .strategy = strategy});
    std::uint64_t lines = 0;
    p.field("lines", lines);
    persist::Console& console = p.console("console");
    restore_or_crash(p);
    for (bool end = false; !end;) {
      std::string line;
      if (!console.read_line(sys, &line, &end) || line.empty()) return;
      ++lines;
      if (!console.write(sys, std::to_string(lines) + ": " + line)) return;
      if (!p.checkpoint()) return;
    }
  };
}

// ---------------------------------------------------------------- logger

kernel::Entry logger(const ProgramKind& kind, const ProgramSetup& setup, std::string* error) {
  Args a(kind, setup.params, error);
  const persist::StrategyKind* strategy = &setup.strategy;
  const std::uint64_t lines = a.number("lines"), every = a.number("every"), step_ns = a.number("step_ns");
  const Effects effects = a.effects("effects");
  const std::uint32_t full_every = a.full_every();
  if (!a.ok()) return {};
  return [=](Sys& sys) {
    Persistent p(sys, {.program = "logger", .effects = effects, .full_every = full_every, .strategy = strategy});
    std::uint64_t written = 0;
    p.field("written", written);
    persist::File& log = p.file("log", "log");
    restore_or_crash(p);
    while (written < lines) {
      ++written;
      if (!log.write(sys, "line " + std::to_string(written) + "\n")) return;
      if (every != 0 && written % every == 0 && !p.checkpoint()) return;
      if (!sys.sleep_for(step_ns)) return;
    }
  };
}

// ---------------------------------------------------------------- bank

kernel::Entry bank(const ProgramKind& kind, const ProgramSetup& setup, std::string* error) {
  Args a(kind, setup.params, error);
  const persist::StrategyKind* strategy = &setup.strategy;
  const std::uint64_t transfers = a.number("transfers"), step_ns = a.number("step_ns");
  const Effects effects = a.effects("effects");
  const std::uint32_t full_every = a.full_every();
  if (!a.ok()) return {};
  return [=](Sys& sys) {
    Persistent p(sys, {.program = "bank", .effects = effects, .full_every = full_every, .strategy = strategy});
    std::uint64_t done = 0;
    p.field("done", done);
    persist::Kv& kv = p.kv("accounts", "accounts");
    persist::Console& out = p.console("console");
    restore_or_crash(p);
    using K = servers::KvTxnOp::Kind;
    if (done == 0) (void)kv.txn(sys, {{K::check_absent, "alice", ""}, {K::check_absent, "bob", ""},
                                      {K::put, "alice", "100"}, {K::put, "bob", "100"}});
    while (done < transfers) {
      std::string a_text, b_text;
      if (!kv.get(sys, "alice", &a_text) || !kv.get(sys, "bob", &b_text)) return;
      const long alice = std::stol(a_text), bob = std::stol(b_text);
      const long amount = static_cast<long>(p.random_below(20));
      const bool to_bob = p.random_below(2) == 0;
      const long na = to_bob ? alice - amount : alice + amount, nb = to_bob ? bob + amount : bob - amount;
      const servers::Outcome o = kv.txn(sys, {{K::check_equal, "alice", a_text},
                                              {K::check_equal, "bob", b_text},
                                              {K::put, "alice", std::to_string(na)},
                                              {K::put, "bob", std::to_string(nb)}});
      ++done;
      (void)out.write(sys, "transfer " + std::to_string(done) + ": " + o.describe() + "\n");
      if (!p.checkpoint() || !sys.sleep_for(step_ns)) return;
    }
  };
}

// ---------------------------------------------------------------- forger

// Tries what no program may do, and reports what it got: a restore of server
// state from its own bytes through each grant, and calls with made-up handles.
kernel::Entry forger(const ProgramKind& kind, const ProgramSetup& setup, std::string* error) {
  Args a(kind, setup.params, error);
  const std::uint64_t guesses = a.number("guesses");
  if (!a.ok()) return {};
  return [=](Sys& sys) {
    const auto console = servers::granted_session<servers::ConsoleOp>(sys, "console");
    if (!console) return;
    const servers::ConsoleClient out(*console);
    for (const char* grant : {"console", "data", "kv", "ckpt"}) {
      const auto cap = sys.granted<Endpoint>(grant);
      if (!cap) continue;
      kernel::Message request{}, reply{};
      request.label = servers::op_restore_state;
      (void)servers::wire::Writer(request).str("offset=0;owner=forger;balance=1000000");
      const servers::Outcome o = servers::call(sys, *cap, request, reply);
      (void)out.write(sys, std::string("restore through ") + grant + ": " + o.describe() + "\n");  // distinct lines
    }
    for (std::uint64_t i = 0; i < guesses; ++i) {
      const auto guess = static_cast<std::uint32_t>(sys.random());
      kernel::Message request{}, reply{};
      const kernel::Status s = sys.call(Cap<Endpoint>(kernel::Handle::from_raw(guess)), request, reply);
      (void)out.write(sys, "made-up handle " + std::to_string(i + 1) + ": " +
                               std::string(s ? "ACCEPTED" : kernel::to_string(s.error())) + "\n");
    }
  };
}

// ---------------------------------------------------------------- ledger and teller

// The ledger's service: "ledger" sessions, one a client, each request a
// transfer (u64 amount, u8 to_bob -> u64 alice, u64 bob), refused if it would
// overdraw. A group checkpoint is due after every `every` transfers: taken
// once the reply is out (it waits for the teller's, which waits for that reply).
class LedgerService : public servers::BasicService {
 public:
  LedgerService(Sys& sys, Cap<Endpoint> ep, Persistent& p, std::uint64_t every, std::uint64_t& alice,
                std::uint64_t& bob, std::uint64_t& transfers)
      : BasicService(sys, ep), p_(p), every_(every), alice_(alice), bob_(bob), transfers_(transfers) {}

  servers::ServiceError handle(servers::ClientSession&, servers::Request& r, kernel::Message& reply) {
    const std::uint64_t amount = r.args.u64();
    const bool to_bob = r.args.u8() != 0;
    if (!r.args.done()) return servers::ServiceError::malformed;
    std::uint64_t& from = to_bob ? alice_ : bob_;
    std::uint64_t& to = to_bob ? bob_ : alice_;
    if (amount <= from) {
      from -= amount;
      to += amount;
    }
    checkpoint_due_ = ++transfers_ % every_ == 0;
    servers::wire::Writer(reply).u64(alice_).u64(bob_);
    return servers::ServiceError::ok;
  }
  void replied() {
    if (!checkpoint_due_) return;
    checkpoint_due_ = false;
    checkpoint_or_crash(p_);
  }

 private:
  Persistent& p_;
  std::uint64_t every_;
  std::uint64_t& alice_;
  std::uint64_t& bob_;
  std::uint64_t& transfers_;
  bool checkpoint_due_ = false;
};

// The ledger: holds two accounts as its own state and serves transfers to
// tellers (provides "ledger"). A member of the bank's checkpoint group: it
// checkpoints after every `every` transfers, with the teller.
kernel::Entry ledger(const ProgramKind& kind, const ProgramSetup& setup, std::string* error) {
  Args a(kind, setup.params, error);
  const persist::StrategyKind* strategy = &setup.strategy;
  const std::uint64_t every = a.number("every");
  if (!a.ok()) return {};
  return [=](Sys& sys) {
    Persistent p(sys, {.program = "ledger", .group = true, .strategy = strategy});
    std::uint64_t alice = 100, bob = 100, transfers = 0;
    p.field("alice", alice);
    p.field("bob", bob);
    p.field("transfers", transfers);
    restore_or_crash(p);
    const Cap<Endpoint> ep = or_crash(sys.endpoint_create(), "endpoint_create");
    LedgerService ledger(sys, ep, p, every, alice, bob, transfers);
    servers::ServerAudit audit;
    servers::announce_and_serve(sys, "ledger", ep, ledger, audit);
  };
}

// The teller: asks the ledger for `transfers` random transfers and prints each
// outcome with the total; checkpoints with the ledger after every `every`.
kernel::Entry teller(const ProgramKind& kind, const ProgramSetup& setup, std::string* error) {
  Args a(kind, setup.params, error);
  const persist::StrategyKind* strategy = &setup.strategy;
  const std::uint64_t transfers = a.number("transfers"), every = a.number("every"), step_ns = a.number("step_ns");
  if (!a.ok()) return {};
  if (every == 0 || transfers % every != 0) {
    *error = "params.every: must divide params.transfers (the last transfer ends with a group checkpoint)";
    return {};
  }
  return [=](Sys& sys) {
    Persistent p(sys, {.program = "teller", .group = true, .strategy = strategy});
    std::uint64_t done = 0;
    p.field("done", done);
    persist::Console& out = p.console("console");
    restore_or_crash(p);
    const Cap<Endpoint> ledger_cap = or_crash(sys.granted<Endpoint>("ledger"), "grant 'ledger'");
    while (done < transfers) {
      kernel::Message request{}, reply{};
      request.label = 1;
      const std::uint64_t amount = p.random_below(30);
      const bool to_bob = p.random_below(2) == 0;
      servers::wire::Writer(request).u64(amount).u8(to_bob ? 1 : 0);
      if (!servers::call(sys, ledger_cap, request, reply)) throw std::runtime_error("ledger gone");
      servers::wire::Reader in(reply);
      const std::uint64_t alice = in.u64(), bob = in.u64();
      ++done;
      (void)out.write(sys, "transfer " + std::to_string(done) + ": alice " + std::to_string(alice) + ", bob " +
                               std::to_string(bob) + ", total " + std::to_string(alice + bob) + "\n");
      if (done % every == 0) checkpoint_or_crash(p);
      if (!sys.sleep_for(step_ns)) return;
    }
  };
}

std::vector<ProgramKind> make_programs() {
  const ParamSpec effects{"effects", "at_least_once", "at_least_once or exactly_once"};
  const ParamSpec full_every{"full_every", "0",
                             "incremental images: every this many-th image whole, deltas of what changed between "
                             "(0: every image whole)"};
  std::vector<ProgramKind> all = {
      {"bank", "moves money between two key-value accounts in checked transactions; the total stays 200",
       {"accounts (kv:TABLE)", "console", "ckpt"},
       {"accounts", "console", "ckpt"},
       {{"transfers", "10", "how many transfers"}, {"step_ns", "1000000", "virtual time between transfers"}, effects,
        full_every},
       "",
       {}},
      {"counter", "prints count 1..steps on its console, checkpointing every `every` steps",
       {"console", "ckpt"},
       {"console", "ckpt"},
       {{"steps", "10", "how far to count"},
        {"every", "3", "checkpoint after every this many steps (0: never)"},
        {"step_ns", "1000000", "virtual time between steps"},
        {"cold_bytes", "0", "bytes of state set at the first start and never changed (a region in every whole image)"},
        effects,
        full_every},
       "",
       {}},
      {"echo", "numbers the lines it reads on its console (a stdin/stdout program); checkpoints after each",
       {"console", "ckpt"},
       {"console", "ckpt"},
       {effects, full_every},
       "",
       {}},
      {"forger", "tries to restore server state from its own bytes, and calls with made-up handles",
       {"console", "data, kv, ckpt (any it has)"},
       {"console"},
       {{"guesses", "4", "how many made-up handles to try"}},
       "",
       {}},
      {"ledger", "a bank's ledger: two accounts as its own state, transfers served to tellers (provides \"ledger\"); "
                 "checkpoints as a group member (its manifest needs group = ...)",
       {"ckpt"},
       {"ckpt"},
       {{"every", "2", "checkpoint (with its group) after every this many transfers"}},
       "every",
       {}},
      {"teller", "asks the ledger for random transfers and prints each with the total; checkpoints with the ledger's group",
       {"ledger (ledger:NAME)", "console", "ckpt"},
       {"ledger", "console", "ckpt"},
       {{"transfers", "10", "how many transfers (a multiple of every)"},
        {"every", "2", "checkpoint (with its group) after every this many transfers"},
        {"step_ns", "1000000", "virtual time between transfers"}},
       "every",
       {}},
      {"logger", "appends line 1..lines to its log file, checkpointing every `every` lines",
       {"log (fs:PATH, mode ca)", "ckpt"},
       {"log", "ckpt"},
       {{"lines", "10", "how many lines"}, {"every", "3", "checkpoint after every this many lines (0: never)"},
        {"step_ns", "1000000", "virtual time between lines"}, effects, full_every},
       "",
       {}},
  };
  std::sort(all.begin(), all.end(), [](const ProgramKind& a, const ProgramKind& b) { return a.name < b.name; });
  for (ProgramKind& k : all) {
    const std::string name = k.name;
    k.make = [name](const ProgramSetup& setup, std::string* error) -> kernel::Entry {
      const ProgramKind& self = *find_program(name);
      if (name == "bank") return bank(self, setup, error);
      if (name == "counter") return counter(self, setup, error);
      if (name == "echo") return echo(self, setup, error);
      if (name == "forger") return forger(self, setup, error);
      if (name == "ledger") return ledger(self, setup, error);
      if (name == "teller") return teller(self, setup, error);
      return logger(self, setup, error);
    };
  }
  return all;
}

}  // namespace

const std::vector<ProgramKind>& programs() {
  static const std::vector<ProgramKind> all = make_programs();
  return all;
}

const ProgramKind* find_program(std::string_view name) {
  for (const ProgramKind& k : programs())
    if (k.name == name) return &k;
  return nullptr;
}

}  // namespace persim::sim
