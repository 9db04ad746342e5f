// Idempotency tokens belong to the client they were issued to: another
// client that learns one (it is only a 64-bit value) and sends it through its
// own session is refused with wrong_owner, audited, changes nothing, and
// cannot make the owner's later requests be acknowledged without being applied.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <optional>

#include "support/system_harness.hpp"

namespace persim::servers {
namespace {

using namespace persim::testing;
using kernel::Message;

// Two clients sharing a key-value table and a directory, each with its own
// console stream: alice, the owner, and mallory, who learns alice's tokens.
struct Pair {
  Pair() : system(system_config()) {
    system.add_standard_servers();
    for (auto* who : {&alice, &mallory}) {
      const std::string name = who == &alice ? "alice" : "mallory";
      EXPECT_TRUE(system.add_program(name, who->entry()).ok());
      system.add(manifest(name, name, {{"console", "console", ""}, {"data", "fs:/data/", "rwacd"}, {"kv", "kv:shared", ""}},
                          RestartPolicy::always));
    }
    EXPECT_TRUE(system.boot().ok());
    EXPECT_TRUE(run_until(system, [&] { return alice.incarnations() == 1 && mallory.incarnations() == 1; }));
  }
  void run(DrivenProgram& who, DrivenProgram::Operation op) { ASSERT_TRUE(who.run(system, std::move(op))); }

  System system;
  DrivenProgram alice, mallory;
};

Cap<Endpoint> grant(Sys& sys, std::string_view name) { return sys.granted<Endpoint>(name).value(); }

// An operation sent exactly once: its arguments, then the token's trailer.
std::string send_once(Sys& sys, Cap<Endpoint> session, Message request, std::uint64_t token, std::uint64_t seq) {
  Message reply{};
  EXPECT_TRUE(make_once(request, token, seq));
  return call(sys, session, request, reply).describe();
}

std::string put_once(Sys& sys, std::uint64_t token, std::uint64_t seq, std::string_view value) {
  Message request{};
  request.label = static_cast<std::uint64_t>(KvOp::put);
  wire::Writer(request).str("k").str(value);
  return send_once(sys, grant(sys, "kv"), request, token, seq);
}

std::string get(Sys& sys) {
  std::string v;
  EXPECT_TRUE(KvClient(Session<KvOp>(grant(sys, "kv"))).get(sys, "k", &v).ok());
  return v;
}

// Alice takes a key-value token and puts "one" with it (seq 1): the token.
std::uint64_t alice_puts_one(Pair& p, std::vector<std::string>& seen) {
  std::uint64_t token = 0;
  p.run(p.alice, [&](Sys& sys) {
    ASSERT_TRUE(issue_token(sys, grant(sys, "kv"), &token).ok());
    seen.push_back(put_once(sys, token, 1, "one"));
  });
  return token;
}

// The attack as it was found: mallory sends alice's token with a high
// sequence number through her own key-value session. Refused and audited;
// alice's next write, with her own next sequence number, is applied.
TEST(TokenOwnership, AnotherClientsTokenIsRefusedAndTheOwnersWriteApplies) {
  Pair p;
  std::vector<std::string> seen;
  const std::uint64_t token = alice_puts_one(p, seen);
  p.run(p.mallory, [&](Sys& sys) {
    seen.push_back(put_once(sys, token, 1'000'000, "stolen"));
    seen.push_back(put_once(sys, token, 2, "stolen"));
    seen.push_back(get(sys));
  });
  p.run(p.alice, [&](Sys& sys) {
    seen.push_back(put_once(sys, token, 2, "two"));
    seen.push_back(get(sys));
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"ok", "wrong_owner", "wrong_owner", "one", "ok", "two"}));
  EXPECT_EQ(p.system.kv().audit.wrong_owners, 2u);
  EXPECT_EQ(p.system.kv().audit.last_wrong_owner_token, token);
}

// The same for the console and the file server: a stolen token writes
// nothing, and the owner's writes all land.
TEST(TokenOwnership, ConsoleAndFileServerRefuseAnotherClientsToken) {
  Pair p;
  std::uint64_t console_token = 0, file_token = 0;
  auto console_write = [](Sys& sys, std::uint64_t token, std::uint64_t seq, std::string_view text) {
    Message request{};
    request.label = static_cast<std::uint64_t>(ConsoleOp::write);
    wire::Writer(request).str(text);
    return send_once(sys, grant(sys, "console"), request, token, seq);
  };
  // A file session opened through the directory grant: it inherits the
  // directory session's owner.
  auto file_write = [](Sys& sys, std::uint64_t* token, std::uint64_t seq, std::string_view text) {
    FsClient file;
    EXPECT_TRUE(FsClient(Session<FsOp>(grant(sys, "data"))).open(sys, "log", fs_mode::append | fs_mode::create, &file).ok());
    if (*token == 0) {
      EXPECT_TRUE(issue_token(sys, file.session().cap(), token).ok());
    }
    Message request{};
    request.label = static_cast<std::uint64_t>(FsOp::write);
    wire::Writer(request).str(text);
    return send_once(sys, file.session().cap(), request, *token, seq);
  };
  std::vector<std::string> seen;
  p.run(p.alice, [&](Sys& sys) {
    ASSERT_TRUE(issue_token(sys, grant(sys, "console"), &console_token).ok());
    seen.push_back(console_write(sys, console_token, 1, "a1;"));
    seen.push_back(file_write(sys, &file_token, 1, "a1;"));
  });
  p.run(p.mallory, [&](Sys& sys) {
    seen.push_back(console_write(sys, console_token, 99, "m;"));
    std::uint64_t stolen = file_token;
    seen.push_back(file_write(sys, &stolen, 99, "m;"));
  });
  p.run(p.alice, [&](Sys& sys) {
    seen.push_back(console_write(sys, console_token, 2, "a2;"));
    seen.push_back(file_write(sys, &file_token, 2, "a2;"));
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"ok", "ok", "wrong_owner", "wrong_owner", "ok", "ok"}));
  EXPECT_EQ(p.system.console().output["alice"], "a1;a2;");
  EXPECT_EQ(p.system.console().output["mallory"], "");
  EXPECT_EQ(p.system.fs().contents("/data/log"), "a1;a2;");
  EXPECT_EQ(p.system.console().audit.wrong_owners, 1u);
  EXPECT_EQ(p.system.fs().audit.wrong_owners, 1u);
}

// The owner is the program, not the incarnation: restarted, alice still uses
// her token (a re-done write is acknowledged, not redone; the next applies).
TEST(TokenOwnership, ARestartedOwnerStillUsesItsToken) {
  Pair p;
  std::vector<std::string> seen;
  const std::uint64_t token = alice_puts_one(p, seen);
  ASSERT_TRUE(p.system.node().kill(*p.system.process_of("alice")).ok());
  ASSERT_TRUE(run_until(p.system, [&] { return p.alice.incarnations() == 2; }));
  p.run(p.alice, [&](Sys& sys) {
    seen.push_back(put_once(sys, token, 1, "one again"));
    seen.push_back(put_once(sys, token, 2, "two"));
    seen.push_back(get(sys));
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"ok", "ok", "ok", "two"}));
  EXPECT_EQ(p.system.kv().audit.wrong_owners, 0u);
}

// Property: whatever mix of alice's and mallory's exactly-once puts, with
// either's token or a made-up one and any sequence numbers, the table holds
// exactly what the owner-only model says: a token used through any session
// but its owner's changes nothing and never makes an owner's put be dropped.
RC_GTEST_PROP(TokenOwnership, AStolenTokenNeverChangesStateOrDropsTheOwnersPut, ()) {
  Pair p;
  std::map<std::string, std::uint64_t> token;  // owner -> token
  for (auto* who : {&p.alice, &p.mallory}) {
    const std::string name = who == &p.alice ? "alice" : "mallory";
    p.run(*who, [&](Sys& sys) { RC_ASSERT(issue_token(sys, grant(sys, "kv"), &token[name]).ok()); });
  }
  std::map<std::uint64_t, std::uint64_t> last;  // token -> last applied seq (the model)
  std::string value;                            // the model's value of "k"
  const auto steps = *rc::gen::container<std::vector<std::tuple<bool, int, std::uint64_t>>>(
      rc::gen::tuple(rc::gen::arbitrary<bool>(), rc::gen::inRange(0, 3), rc::gen::inRange<std::uint64_t>(1, 8)));
  int n = 0;
  for (const auto& [by_alice, which, seq] : steps) {
    const std::string actor = by_alice ? "alice" : "mallory";
    const std::uint64_t t = which == 0 ? token["alice"] : which == 1 ? token["mallory"] : 0x5eed;
    const std::string v = actor + std::to_string(++n);
    std::string expected = "ok";
    if (t == 0x5eed) {
      expected = "not_found";
    } else if (t != token[actor]) {
      expected = "wrong_owner";
    } else if (seq > last[t]) {
      last[t] = seq;
      value = v;
    }
    std::string got;
    p.run(by_alice ? p.alice : p.mallory, [&](Sys& sys) { got = put_once(sys, t, seq, v); });
    RC_ASSERT(got == expected);
  }
  std::string stored;
  p.run(p.alice, [&](Sys& sys) {
    KvClient kv(Session<KvOp>(grant(sys, "kv")));
    const Outcome o = kv.get(sys, "k", &stored);
    if (!o) stored = "<" + o.describe() + ">";
  });
  RC_ASSERT(stored == (value.empty() ? std::string("<not_found>") : value));
}

}  // namespace
}  // namespace persim::servers
