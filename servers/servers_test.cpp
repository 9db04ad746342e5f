// Each server's interface: what it does, and the precise error for each kind
// of bad input (unknown operation, malformed or oversized message, the wrong
// kind of session, the wrong type of capability).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "support/system_harness.hpp"

namespace persim::servers {
namespace {

using namespace persim::testing;
using kernel::Message;

// One client with a session of every kind, driven from the test.
struct Fixture {
  explicit Fixture(bool durable_checkpoints = false) : system(system_config()) {
    system.add_standard_servers();
    if (durable_checkpoints) system.use_durable_checkpoints();
    EXPECT_TRUE(system.add_program("client", client.entry()).ok());
    system.add(manifest("client", "client",
                        {{"console", "console", ""},
                         {"data", "fs:/data/", "rwacd"},
                         {"readonly", "fs:/data/", "rd"},
                         {"kv", "kv:accounts", ""},
                         {"ckpt", "ckpt", ""}}));
    EXPECT_TRUE(system.boot().ok());
    EXPECT_TRUE(run_until(system, [&] { return client.incarnations() == 1; }));
  }
  void run(DrivenProgram::Operation op) { ASSERT_TRUE(client.run(system, std::move(op))); }

  System system;
  DrivenProgram client;
};

Cap<Endpoint> grant(Sys& sys, std::string_view name) { return sys.granted<Endpoint>(name).value(); }
template <class Protocol>
Session<Protocol> session(Sys& sys, std::string_view name) {
  return granted_session<Protocol>(sys, name).value();
}

// Property: a started program writes to its console stream, named after it.
TEST(Console, WritesLandInTheStreamAndInputIsRead) {
  Fixture f;
  f.system.console_input("client", "typed");
  f.run([](Sys& sys) {
    const ConsoleClient console(session<ConsoleOp>(sys, "console"));
    EXPECT_TRUE(console.write(sys, std::string(500, 'x')).ok()) << "longer than a chunk";
    std::string in;
    bool end = true;
    EXPECT_TRUE(console.read(sys, 3, &in, &end).ok());
    EXPECT_EQ(in, "typ");
    EXPECT_FALSE(end);
    EXPECT_TRUE(console.read(sys, 100, &in).ok());
    EXPECT_EQ(in, "ed");
  });
  EXPECT_EQ(f.system.console().output["client"], std::string(500, 'x'));
  // A read with nothing queued waits: the input that comes later answers it.
  std::vector<std::string> lines;
  bool end = false;
  f.system.node().at(f.system.node().now_ns() + 50'000, [&](kernel::Node&) { f.system.console_input("client", "later\n"); });
  f.system.node().at(f.system.node().now_ns() + 90'000, [&](kernel::Node&) { f.system.console_input("client", "", true); });
  f.run([&](Sys& sys) {
    const ConsoleClient console(session<ConsoleOp>(sys, "console"));
    std::string line;
    while (!end && console.read_line(sys, &line, &end).ok()) lines.push_back(line);
  });
  EXPECT_EQ(lines, (std::vector<std::string>{"later\n", ""}));
  EXPECT_TRUE(end);
}

// Property: file sessions honour their mode, offsets and append; a directory
// session opens below its prefix with at most its own rights; paths are checked.
TEST(FileServer, ModesOffsetsAppendAndDirectories) {
  Fixture f;
  f.run([](Sys& sys) {
    const FsClient dir(session<FsOp>(sys, "data"));
    const FsClient readonly(session<FsOp>(sys, "readonly"));
    FsClient a, r, app;
    EXPECT_EQ(dir.open(sys, "a", fs_mode::read | fs_mode::write, &a).service, ServiceError::not_found);
    ASSERT_TRUE(dir.open(sys, "a", fs_mode::read | fs_mode::write | fs_mode::create, &a).ok());
    std::uint64_t at = 0;
    ASSERT_TRUE(a.write(sys, "hello world", &at).ok());
    EXPECT_EQ(at, 11u);
    ASSERT_TRUE(a.seek(sys, 6).ok());
    std::string got;
    ASSERT_TRUE(a.read(sys, 100, &got).ok());
    EXPECT_EQ(got, "world");
    ASSERT_TRUE(dir.open(sys, "a", fs_mode::append, &app).ok());
    ASSERT_TRUE(app.write(sys, "!", &at).ok());
    EXPECT_EQ(at, 12u) << "append writes at the end";
    EXPECT_EQ(app.read(sys, 1, &got).service, ServiceError::permission_denied);
    ASSERT_TRUE(readonly.open(sys, "a", fs_mode::read, &r).ok());
    EXPECT_EQ(r.write(sys, "x").service, ServiceError::permission_denied);
    EXPECT_EQ(readonly.open(sys, "a", fs_mode::write, &r).service, ServiceError::permission_denied)
        << "no more rights than the directory";
    EXPECT_EQ(readonly.remove(sys, "a").service, ServiceError::permission_denied);
    EXPECT_EQ(dir.open(sys, "../etc/passwd", fs_mode::read, &r).service, ServiceError::malformed);
    EXPECT_EQ(dir.open(sys, "x//y", fs_mode::read | fs_mode::create, &r).service, ServiceError::malformed);
    ASSERT_TRUE(a.truncate(sys, 5).ok());
    std::uint64_t offset = 0, size = 0;
    ASSERT_TRUE(a.stat(sys, &offset, &size).ok());
    EXPECT_EQ(size, 5u);
    ASSERT_TRUE(dir.remove(sys, "a").ok());
    EXPECT_EQ(a.read(sys, 1, &got).service, ServiceError::not_found) << "removed under the session";
  });
  EXPECT_EQ(f.system.fs().store.get("file:/data/a"), nullptr) << "removed from its storage too";
}

// Property: compare-and-set and transactions are all or nothing.
TEST(KvStore, CasAndTransactionsAreAtomic) {
  Fixture f;
  f.run([](Sys& sys) {
    const KvClient kv(session<KvOp>(sys, "kv"));
    ASSERT_TRUE(kv.put(sys, "alice", "100").ok());
    ASSERT_TRUE(kv.put(sys, "bob", "50").ok());
    EXPECT_EQ(kv.cas(sys, "alice", "99", "0").service, ServiceError::conflict);
    EXPECT_TRUE(kv.cas(sys, "carol", std::nullopt, "1").ok()) << "absent as expected: created";
    using K = KvTxnOp::Kind;
    std::uint8_t failed = 0xff;
    const Outcome refused = kv.txn(sys,
                                   {{K::check_equal, "alice", "100"},
                                    {K::check_equal, "bob", "49"},
                                    {K::put, "alice", "70"},
                                    {K::put, "bob", "80"}},
                                   &failed);
    EXPECT_EQ(refused.service, ServiceError::conflict);
    EXPECT_EQ(failed, 1u);
    std::string v;
    ASSERT_TRUE(kv.get(sys, "alice", &v).ok());
    EXPECT_EQ(v, "100") << "nothing applied";
    EXPECT_TRUE(kv.txn(sys, {{K::check_equal, "alice", "100"},
                             {K::check_equal, "bob", "50"},
                             {K::put, "alice", "70"},
                             {K::put, "bob", "80"},
                             {K::del, "carol", ""}})
                    .ok());
    ASSERT_TRUE(kv.get(sys, "bob", &v).ok());
    EXPECT_EQ(v, "80");
    EXPECT_EQ(kv.get(sys, "carol", &v).service, ServiceError::not_found);
    EXPECT_EQ(kv.del(sys, "carol").service, ServiceError::not_found);
  });
}

// Property: an image is visible whole at commit with the next version, the
// newest is what is read back, and the quota holds.
// Both transfers: a lent kernel buffer, and message-sized chunks.
TEST(CheckpointStore, ImagesCommitWholeAndQuotaHolds) {
  for (const CkptClient::Transfer transfer : {CkptClient::Transfer::buffer, CkptClient::Transfer::chunks}) {
    SCOPED_TRACE(transfer == CkptClient::Transfer::buffer ? "buffer" : "chunks");
    Fixture f;
    f.run([&](Sys& sys) {
      CkptClient ckpt(session<CkptOp>(sys, "ckpt"), transfer);
      std::vector<std::byte> image;
      std::uint64_t version = 0;
      EXPECT_EQ(ckpt.read_newest(sys, &image, &version).service, ServiceError::not_found);
      std::vector<std::byte> one(1000, std::byte{1}), two(700, std::byte{2});
      ASSERT_TRUE(ckpt.write(sys, one, &version).ok());
      EXPECT_EQ(version, 1u);
      ASSERT_TRUE(ckpt.write(sys, two, &version).ok());
      EXPECT_EQ(version, 2u);
      ASSERT_TRUE(ckpt.read_newest(sys, &image, &version).ok());
      EXPECT_EQ(version, 2u);
      EXPECT_EQ(image, two);
      const std::vector<std::byte> huge(5u << 20, std::byte{3});
      EXPECT_EQ(ckpt.write(sys, huge, &version).service, ServiceError::quota_exceeded);
      // Read back by either transfer, whichever wrote it.
      CkptClient other(ckpt.session(), transfer == CkptClient::Transfer::buffer ? CkptClient::Transfer::chunks
                                                                             : CkptClient::Transfer::buffer);
      ASSERT_TRUE(other.read(sys, 1, one.size(), &image).ok());
      EXPECT_EQ(image, one);
    });
  }
}

// Property (random sequences of whole images and deltas, on both backends):
// the newest image and its base are kept, as is every kept delta's base; once
// two whole images are in, one damaged image always leaves a restore point
// (an image and its base) that does not use it; with whole images only,
// exactly the newest two stay. A delta on a version not kept is not_found, on
// a delta conflict, and changes nothing. Bytes read back are those written,
// and a restarted store lists the same images with the same bases.
RC_GTEST_PROP(CheckpointStore, DeltasKeepTheirBasesAndOneDamageLeavesARestorePoint, ()) {
  const bool durable = *rc::gen::arbitrary<bool>();
  // (element, not inRange: resize would scale inRange's values down too.)
  const auto steps = *rc::gen::resize(24, rc::gen::nonEmpty(rc::gen::container<std::vector<std::uint8_t>>(
                                              rc::gen::element<std::uint8_t>(0, 1, 2, 3))));
  Fixture f(durable);
  std::map<std::uint64_t, std::uint64_t> base_of;      // every version written -> its base
  std::map<std::uint64_t, std::vector<std::byte>> written;
  std::vector<CkptKept> listed;
  std::vector<std::string> broken;
  auto check = [&](const std::vector<CkptKept>& kept, std::uint64_t newest, std::size_t wholes, bool all_whole) {
    std::set<std::uint64_t> versions;
    for (const CkptKept& k : kept) versions.insert(k.version);
    auto has = [&](std::uint64_t v) { return v == 0 || versions.contains(v); };
    if (!versions.contains(newest) || !has(base_of[newest])) broken.push_back("newest or its base not kept");
    for (const CkptKept& k : kept) {
      if (k.base != base_of[k.version]) broken.push_back("base of " + std::to_string(k.version) + " misreported");
      if (!has(k.base)) broken.push_back("base of " + std::to_string(k.version) + " dropped");
    }
    if (kept.size() > 2 * images_kept) broken.push_back("more than 2 x images_kept kept");
    if (all_whole && versions != std::set<std::uint64_t>{newest - 1, newest} && newest > 1)
      broken.push_back("whole images only, but not the newest two");
    if (wholes < 2) return;
    for (const std::uint64_t damaged : versions) {
      const bool survives = std::any_of(kept.begin(), kept.end(), [&](const CkptKept& k) {
        return k.version != damaged && k.base != damaged;
      });
      if (!survives) broken.push_back("damage to " + std::to_string(damaged) + " leaves nothing");
    }
  };
  f.run([&](Sys& sys) {
    CkptClient ckpt(session<CkptOp>(sys, "ckpt"));
    std::uint64_t newest = 0, last_whole = 0, wholes = 0;
    bool all_whole = true;
    for (const std::uint8_t step : steps) {
      // 0: whole; 1, 2: a delta on the last whole image; 3: a bad base.
      std::uint64_t base = step == 0 || last_whole == 0 ? 0 : last_whole;
      std::vector<CkptKept> before;
      ASSERT_TRUE(ckpt.list(sys, &before).ok());
      if (step == 3 && newest != 0) {
        std::uint64_t v = 0;
        const std::vector<std::byte> img(10, std::byte{0xee});
        if (base_of[newest] != 0) {
          EXPECT_EQ(ckpt.write(sys, img, &v, newest).service, ServiceError::conflict);
        }
        EXPECT_EQ(ckpt.write(sys, img, &v, newest + 5).service, ServiceError::not_found);
        // Group operations through a slot of no group.
        std::uint64_t epoch = 0;
        EXPECT_EQ(ckpt.group_epoch(sys, &epoch).service, ServiceError::wrong_session);
        EXPECT_EQ(ckpt.group_rollback(sys, 1, 0, &epoch).service, ServiceError::wrong_session);
        ASSERT_TRUE(ckpt.list(sys, &listed).ok());
        EXPECT_EQ(listed, before);
        continue;
      }
      const std::vector<std::byte> img(base != 0 ? 40 : 300, static_cast<std::byte>(newest + 1));
      std::uint64_t v = 0;
      ASSERT_TRUE(ckpt.write(sys, img, &v, base).ok());
      ASSERT_EQ(v, newest + 1);
      newest = v;
      base_of[v] = base;
      written[v] = img;
      if (base == 0) {
        last_whole = v;
        ++wholes;
      } else {
        all_whole = false;
      }
      ASSERT_TRUE(ckpt.list(sys, &listed).ok());
      check(listed, newest, wholes, all_whole);
      for (const CkptKept& k : listed) {
        std::vector<std::byte> back;
        ASSERT_TRUE(ckpt.read(sys, k.version, k.size, &back).ok());
        if (back != written[k.version]) broken.push_back("version " + std::to_string(k.version) + " read back wrong");
      }
    }
  });
  RC_ASSERT(broken.empty());
  // The store restarts from its own storage: the same images, the same bases.
  RC_ASSERT(f.system.node().kill(*f.system.process_of("ckpt")).ok());
  std::vector<CkptKept> after;
  f.run([&](Sys& sys) {
    Session<CkptOp> ckpt;
    ASSERT_TRUE(regrant(sys, "ckpt", &ckpt).ok());
    ASSERT_TRUE(CkptClient(ckpt).list(sys, &after).ok());
  });
  RC_ASSERT(after == listed);
}

// Property: a stage or fetch whose lent capability is missing, not a buffer,
// lacks the right the store needs or is too short is refused as malformed,
// and the image in progress stays as it was.
TEST(CheckpointStore, LentBuffersAreChecked) {
  Fixture f;
  std::vector<std::string> seen;
  std::vector<std::byte> back;
  f.run([&](Sys& sys) {
    const Cap<Endpoint> session = grant(sys, "ckpt");
    // An image in progress, in chunks: 4 bytes.
    Message request{}, reply{};
    request.label = static_cast<std::uint64_t>(CkptOp::begin);
    wire::Writer(request).u64(4).u64(0);
    ASSERT_TRUE(call(sys, session, request, reply).ok());
    const std::byte four[4] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    request = {};
    request.label = static_cast<std::uint64_t>(CkptOp::chunk);
    wire::Writer(request).u64(0).bytes(four);
    ASSERT_TRUE(call(sys, session, request, reply).ok());
    const Cap<kernel::Buffer> small = sys.buffer_create(8).value();
    auto stage = [&](std::uint64_t size, kernel::Handle lent, kernel::Rights rights) {
      Message m{};
      m.label = static_cast<std::uint64_t>(CkptOp::stage);
      wire::Writer(m).u64(size).u64(0);
      if (!lent.is_null()) {
        m.caps[0] = {lent, rights};
        m.cap_count = 1;
      }
      seen.push_back(call(sys, session, m, reply).describe());
    };
    stage(8, {}, kernel::Rights::all());                                         // no capability
    stage(8, sys.endpoint_create().value().handle(), kernel::Rights::all());     // not a buffer
    stage(8, small.handle(), kernel::Rights::send());                           // cannot be read
    stage(9, small.handle(), kernel::Rights::receive());                        // shorter than the image
    request = {};
    request.label = static_cast<std::uint64_t>(CkptOp::commit);
    std::uint64_t version = 0;
    ASSERT_TRUE(call(sys, session, request, reply).ok());  // the chunked image, untouched
    version = wire::Reader(reply).u64();
    auto fetch = [&](std::uint64_t v, kernel::Rights rights) {
      Message m{};
      m.label = static_cast<std::uint64_t>(CkptOp::fetch);
      wire::Writer(m).u64(v).u64(0);
      m.caps[0] = {small.handle(), rights};
      m.cap_count = 1;
      seen.push_back(call(sys, session, m, reply).describe());
    };
    fetch(version, kernel::Rights::receive());  // cannot be written
    fetch(version + 5, kernel::Rights::send());  // no such image
    fetch(version, kernel::Rights::send());
    EXPECT_EQ(wire::Reader(reply).u64(), 4u);
    back.resize(4);
    ASSERT_TRUE(sys.buffer_read(small, 0, back).ok());
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"malformed", "malformed", "malformed", "malformed", "malformed",
                                            "not_found", "ok"}));
  EXPECT_EQ(back, (std::vector<std::byte>{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}}));
}

// What a bad request gets, through each kind of session.
struct BadInput {
  const char* grant;
  std::uint64_t known_op;  // an operation of this session kind, sent with bad arguments
};

// Property: every server answers an unknown operation, malformed arguments and
// a root operation sent through a session with its precise error, audited; the
// kernel refuses an oversized message and a capability of the wrong type
// before any server sees them.
TEST(BadInput, EveryServerAnswersPrecisely) {
  Fixture f;
  const BadInput cases[] = {{"console", static_cast<std::uint64_t>(ConsoleOp::write)},
                            {"data", static_cast<std::uint64_t>(FsOp::open)},
                            {"kv", static_cast<std::uint64_t>(KvOp::put)},
                            {"ckpt", static_cast<std::uint64_t>(CkptOp::chunk)}};
  for (const BadInput& c : cases) {
    SCOPED_TRACE(c.grant);
    std::vector<std::string> seen;
    f.run([&](Sys& sys) {
      const Cap<Endpoint> session = grant(sys, c.grant);
      Message request{}, reply{};
      request.label = 0x77;  // unknown
      seen.push_back(call(sys, session, request, reply).describe());
      request = {};
      request.label = c.known_op;
      wire::Writer(request).u32(1000);  // a length prefix with nothing after it
      seen.push_back(call(sys, session, request, reply).describe());
      request = {};
      request.label = static_cast<std::uint64_t>(RootOp::client_gone);  // a root operation
      wire::Writer(request).u64(1);
      seen.push_back(call(sys, session, request, reply).describe());
      request = {};
      request.label = c.known_op;
      request.length = kernel::msg_bytes_max + 1;
      seen.push_back(call(sys, session, request, reply).describe());
      const Cap<kernel::Notification> note = sys.notification_create().value();
      seen.push_back(call(sys, Cap<Endpoint>(note.handle()), Message{}, reply).describe());
    });
    EXPECT_EQ(seen, (std::vector<std::string>{"unknown_operation", "malformed", "wrong_session",
                                              "kernel: message_too_large", "kernel: wrong_type"}));
  }
  for (const ServerAudit* a : {&f.system.console().audit, &f.system.fs().audit, &f.system.kv().audit,
                               &f.system.ckpt().audit}) {
    EXPECT_EQ(a->unknown_operations, 1u);
    EXPECT_EQ(a->malformed, 1u);
    EXPECT_EQ(a->wrong_sessions, 1u);
  }
}

// Property: an operation meant for another kind of session is refused as such:
// a file operation on a directory session, a directory operation on a file
// session, a root operation (an open) through a session.
TEST(BadInput, WrongSessionKind) {
  Fixture f;
  std::vector<std::string> seen;
  f.run([&](Sys& sys) {
    const FsClient dir(session<FsOp>(sys, "data"));
    FsClient file;
    ASSERT_TRUE(dir.open(sys, "w", fs_mode::write | fs_mode::create, &file).ok());
    std::string out;
    seen.push_back(FsClient(dir.session()).read(sys, 1, &out).describe());
    FsClient nested;
    seen.push_back(file.open(sys, "x", fs_mode::read, &nested).describe());
    Message request{}, reply{};
    ASSERT_TRUE(write_open(request, OpenRequest{"other", "", 1, "client", "", 0}));
    seen.push_back(call(sys, grant(sys, "kv"), request, reply).describe());
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"wrong_session", "wrong_session", "wrong_session"}));
}

// Property: an operation sent at most once with a server's token is applied
// once per sequence number, a repeat is acknowledged without effect, an unknown
// token is refused, and the tokens survive the server's crash.
TEST(Idempotency, AppliedOncePerSequenceNumberAcrossACrash) {
  Fixture f;
  std::uint64_t token = 0;
  auto put_once = [&](Sys& sys, Cap<Endpoint> kv, std::uint64_t tok, std::uint64_t seq, std::string_view v) {
    Message request{}, reply{};
    request.label = static_cast<std::uint64_t>(KvOp::put);
    wire::Writer(request).str("k").str(v);
    EXPECT_TRUE(make_once(request, tok, seq));
    return call(sys, kv, request, reply).describe();
  };
  std::vector<std::string> seen;
  f.run([&](Sys& sys) {
    const Cap<Endpoint> kv = grant(sys, "kv");
    ASSERT_TRUE(issue_token(sys, kv, &token).ok());
    seen.push_back(put_once(sys, kv, token, 1, "one"));
    seen.push_back(put_once(sys, kv, token, 1, "again"));  // a repeat: acknowledged, not applied
    seen.push_back(put_once(sys, kv, token + 1, 2, "forged"));
    std::string v;
    ASSERT_TRUE(KvClient(Session<KvOp>(kv)).get(sys, "k", &v).ok());
    seen.push_back(v);
  });
  ASSERT_TRUE(f.system.node().kill(*f.system.process_of("kv")).ok());
  f.run([&](Sys& sys) {
    Cap<Endpoint> kv;
    ASSERT_TRUE(regrant(sys, "kv", &kv).ok());
    seen.push_back(put_once(sys, kv, token, 1, "after crash, repeat"));
    seen.push_back(put_once(sys, kv, token, 2, "two"));
    std::string v;
    ASSERT_TRUE(KvClient(Session<KvOp>(kv)).get(sys, "k", &v).ok());
    seen.push_back(v);
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"ok", "ok", "not_found", "one", "ok", "ok", "two"}));
}

}  // namespace
}  // namespace persim::servers
