// The supervisor: starts from manifests, refuses clearly, restarts by policy,
// re-grants exactly the manifest, logs what deaths severed, re-binds clients of
// a crashed server.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <stdexcept>

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "support/system_harness.hpp"

namespace persim::servers {
namespace {

using namespace persim::testing;

std::set<std::uint32_t> raw(const std::vector<kernel::Handle>& hs) {
  std::set<std::uint32_t> out;
  for (const kernel::Handle h : hs) out.insert(h.raw());
  return out;
}

std::set<std::uint32_t> granted_handles(const kernel::Node& node, ProcessId p) {
  std::set<std::uint32_t> out;
  for (const kernel::NamedGrant& g : node.grants(p)) out.insert(g.handle.raw());
  return out;
}

const SupervisorEvent* find_event(const System& s, std::string_view instance, SupervisorEventKind kind) {
  for (const SupervisorEvent& e : s.supervisor().events)
    if (e.instance == instance && e.kind == kind) return &e;
  return nullptr;
}

// Property: a program whose manifest grant cannot be provided does not start:
// the refusal names the grant and why, the program never runs, and nothing it
// would have held survives (no process, no session at any server).
TEST(Supervisor, MissingGrantFailsTheStartNamingIt) {
  System system(system_config());
  system.add_standard_servers();
  bool ran = false;
  ASSERT_TRUE(system.add_program("logger", [&](Sys&) { ran = true; }).ok());
  system.add(manifest("logger", "logger", {{"console", "console", ""}, {"log", "fs:/var/log/missing", "a"}}));
  ASSERT_TRUE(system.boot().ok());
  ASSERT_TRUE(run_until(system, [&] { return find_event(system, "logger", SupervisorEventKind::start_refused); }));
  const SupervisorEvent& refused = *find_event(system, "logger", SupervisorEventKind::start_refused);
  EXPECT_NE(refused.detail.find("grant 'log'"), std::string::npos) << refused.detail;
  EXPECT_NE(refused.detail.find("not_found"), std::string::npos) << refused.detail;
  (void)system.node().run({.until_ns = system.node().now_ns() + 1'000'000});
  EXPECT_FALSE(ran);
  EXPECT_FALSE(system.process_of("logger"));
  EXPECT_FALSE(find_event(system, "logger", SupervisorEventKind::started));
  ASSERT_NE(system.console().live, nullptr);
  EXPECT_EQ(system.console().live->sessions.size(), 0u) << "the console session opened for it was closed";
  EXPECT_EQ(system.fs().live->sessions.size(), 0u);
  EXPECT_TRUE(system.node().check_invariants().empty());
}

// Property: a grant naming a service no manifest provides is refused by name.
TEST(Supervisor, GrantOfUnknownServiceIsRefused) {
  System system(system_config());
  system.add_standard_servers();
  ASSERT_TRUE(system.add_program("p", [](Sys&) {}).ok());
  system.add(manifest("p", "p", {{"x", "nosuch:thing", ""}}));
  ASSERT_TRUE(system.boot().ok());
  ASSERT_TRUE(run_until(system, [&] { return find_event(system, "p", SupervisorEventKind::start_refused); }));
  const std::string& detail = find_event(system, "p", SupervisorEventKind::start_refused)->detail;
  EXPECT_NE(detail.find("grant 'x'"), std::string::npos) << detail;
  EXPECT_NE(detail.find("no instance provides service 'nosuch'"), std::string::npos) << detail;
}

// Property: an unknown program is refused by name, and the policy still applies.
TEST(Supervisor, UnknownProgramIsRefused) {
  System system(system_config());
  system.add_standard_servers();
  Manifest m = manifest("ghost", "not-registered", {}, RestartPolicy::always);
  m.restarts_max = 2;
  system.add(m);
  ASSERT_TRUE(system.boot().ok());
  ASSERT_TRUE(run_until(system, [&] { return find_event(system, "ghost", SupervisorEventKind::gave_up); }));
  std::size_t refusals = 0;
  for (const SupervisorEvent& e : system.supervisor().events)
    if (e.instance == "ghost" && e.kind == SupervisorEventKind::start_refused) {
      ++refusals;
      EXPECT_NE(e.detail.find("'not-registered': not_found"), std::string::npos) << e.detail;
    }
  EXPECT_EQ(refusals, 3u) << "the first start and two restarts";
}

// Property: after any restart the program holds exactly its manifest grants
// (plus the supervisor's); what it obtains by requests comes on top; the
// restart log lists what the death severed and what was re-granted.
TEST(Supervisor, RestartRegrantsExactlyTheManifestAndLogsTheSevered) {
  System system(system_config());
  system.add_standard_servers();
  DrivenProgram worker;
  ASSERT_TRUE(system.add_program("worker", worker.entry()).ok());
  system.add(manifest("worker", "worker", {{"console", "console", ""}, {"data", "fs:/data/", "rwcd"}},
                      RestartPolicy::on_failure));
  ASSERT_TRUE(system.boot().ok());
  kernel::Node& node = system.node();
  ASSERT_TRUE(run_until(system, [&] { return worker.incarnations() == 1; }));
  const ProcessId first = system.process_of("worker").value();
  EXPECT_EQ(raw(node.handles(first)), granted_handles(node, first));
  EXPECT_EQ(node.grants(first).size(), 3u) << "supervisor, console, data";

  // A request adds a capability: a file session opened through the directory.
  ASSERT_TRUE(worker.run(system, [](Sys& sys) {
    const FsClient dir(granted_session<FsOp>(sys, "data").value());
    FsClient file;
    ASSERT_TRUE(dir.open(sys, "x", fs_mode::write | fs_mode::create, &file).ok());
    ASSERT_TRUE(file.write(sys, "one").ok());
  }));
  EXPECT_EQ(node.handles(first).size(), granted_handles(node, first).size() + 1);

  // It crashes; the supervisor restarts it.
  EXPECT_FALSE(worker.run(system, [](Sys&) { throw std::runtime_error("crash"); }, 100'000));
  ASSERT_TRUE(run_until(system, [&] { return worker.incarnations() == 2; }));
  const ProcessId second = system.process_of("worker").value();
  EXPECT_NE(second, first);
  EXPECT_EQ(raw(node.handles(second)), granted_handles(node, second)) << "exactly the manifest again";
  EXPECT_EQ(system.fs().live->sessions.size(), 1u) << "the old incarnation's sessions are gone; the new one's dir";

  ASSERT_EQ(system.supervisor().restarts.size(), 1u);
  const RestartRecord& r = system.supervisor().restarts[0];
  EXPECT_EQ(r.instance, "worker");
  EXPECT_EQ(r.incarnation, 2u);
  EXPECT_EQ(r.cause, kernel::ExitReason::crashed);
  EXPECT_EQ(r.severed, (std::vector<std::string>{"console", "data"}));
  EXPECT_EQ(r.severed_other, 1u) << "the file session";
  EXPECT_EQ(r.regranted, (std::vector<std::string>{"console", "data"}));
  EXPECT_TRUE(r.refused.empty());

  // The data written and acknowledged before the crash is there.
  ASSERT_TRUE(worker.run(system, [](Sys& sys) {
    const FsClient dir(granted_session<FsOp>(sys, "data").value());
    FsClient file;
    ASSERT_TRUE(dir.open(sys, "x", fs_mode::read, &file).ok());
    std::string got;
    ASSERT_TRUE(file.read(sys, 100, &got).ok());
    EXPECT_EQ(got, "one");
  }));
  EXPECT_TRUE(node.check_invariants().empty());
}

// Property (invariant 3, authority after restart), over random manifests and
// random histories: whatever a program obtained by its own requests (objects
// it made, capabilities it derived, file sessions it opened), and however it
// died (crashed, or killed from outside), each restarted incarnation holds
// exactly its manifest's grants, by name, and the supervisor's; while it runs,
// exactly those plus what it obtained since it started.
RC_GTEST_PROP(Supervisor, AuthorityAfterAnyRestartIsExactlyTheManifest, ()) {
  static const std::vector<G> pool = {{"console", "console", ""},
                                      {"data", "fs:/data/", "rwcd"},
                                      {"ro", "fs:/data/", "rd"},
                                      {"kv", "kv:accounts", ""},
                                      {"ckpt", "ckpt", ""}};
  const auto mask = *rc::gen::inRange(1, 1 << static_cast<int>(pool.size()));
  // 0 make an endpoint, 1 a notification, 2 derive a grant, 3 open a file
  // through "data" (if granted), 4 crash, 5 be killed from outside.
  // (element, not inRange: resize would scale inRange's values down too.)
  const auto steps =
      *rc::gen::resize(20, rc::gen::nonEmpty(rc::gen::container<std::vector<int>>(rc::gen::element(0, 1, 2, 3, 4, 5))));
  Manifest m;
  m.instance = m.program = "worker";
  m.restart = RestartPolicy::always;
  m.backoff_ns_initial = 1'000;
  std::set<std::string> names = {"supervisor"};
  for (std::size_t i = 0; i < pool.size(); ++i) {
    if ((mask & (1 << i)) == 0) continue;
    m.grants.push_back(parse_grant(pool[i].name, pool[i].source, pool[i].mode).value());
    names.insert(pool[i].name);
  }
  const bool has_data = (mask & 2) != 0;
  System system(system_config());
  system.add_standard_servers();
  DrivenProgram worker;
  RC_ASSERT(system.add_program("worker", worker.entry()).ok());
  system.add(m);
  RC_ASSERT(system.boot().ok());
  RC_ASSERT(run_until(system, [&] { return worker.incarnations() == 1; }));
  kernel::Node& node = system.node();
  auto grant_names = [&](ProcessId p) {
    std::set<std::string> out;
    for (const kernel::NamedGrant& g : node.grants(p)) out.insert(g.name);
    return out;
  };
  std::size_t obtained = 0;
  for (const int step : steps) {
    if (step == 4 || step == 5) {
      const int before = worker.incarnations();
      if (step == 4) {
        RC_ASSERT(!worker.run(system, [](Sys&) { throw std::runtime_error("crash"); }, 100'000));
      } else {
        RC_ASSERT(node.kill(*system.process_of("worker")).ok());
      }
      RC_ASSERT(run_until(system, [&] { return worker.incarnations() == before + 1; }));
      const ProcessId p = *system.process_of("worker");
      RC_ASSERT(raw(node.handles(p)) == granted_handles(node, p));
      RC_ASSERT(grant_names(p) == names);
      obtained = 0;
      continue;
    }
    bool got = false;
    RC_ASSERT(worker.run(system, [&](Sys& sys) {
      switch (step) {
        case 0: got = sys.endpoint_create().ok(); break;
        case 1: got = sys.notification_create().ok(); break;
        case 2:  // every incarnation is granted "supervisor"
          if (const auto g = sys.granted<Endpoint>("supervisor")) got = sys.derive(*g, kernel::Rights::send()).ok();
          break;
        default:
          if (has_data) {
            FsClient file;
            got = FsClient(granted_session<FsOp>(sys, "data").value())
                      .open(sys, "f" + std::to_string(obtained), fs_mode::write | fs_mode::create, &file)
                      .ok();
          }
          break;
      }
    }));
    obtained += got ? 1 : 0;
    const ProcessId p = *system.process_of("worker");
    RC_ASSERT(node.handles(p).size() == granted_handles(node, p).size() + obtained);
  }
  RC_ASSERT(node.check_invariants().empty());
}

// Property: restart policies: never leaves a dead program dead; on_failure
// restarts a crash but not a clean exit; always restarts both, with backoff
// doubling up to its maximum, and gives up after restarts_max.
TEST(Supervisor, RestartPoliciesAndBackoff) {
  System system(system_config());
  system.add_standard_servers();
  int runs_never = 0, runs_failure = 0, runs_always = 0;
  ASSERT_TRUE(system.add_program("never", [&](Sys&) { ++runs_never; throw std::runtime_error("x"); }).ok());
  ASSERT_TRUE(system.add_program("clean", [&](Sys&) { ++runs_failure; }).ok());
  ASSERT_TRUE(system.add_program("always", [&](Sys&) { ++runs_always; }).ok());
  system.add(manifest("never", "never", {}, RestartPolicy::never));
  system.add(manifest("clean", "clean", {}, RestartPolicy::on_failure));
  Manifest always = manifest("always", "always", {}, RestartPolicy::always);
  always.backoff_ns_initial = 1'000;
  always.backoff_ns_max = 4'000;
  always.restarts_max = 4;
  system.add(always);
  ASSERT_TRUE(system.boot().ok());
  ASSERT_TRUE(run_until(system, [&] { return find_event(system, "always", SupervisorEventKind::gave_up); }));
  (void)system.node().run({.until_ns = system.node().now_ns() + 1'000'000});
  EXPECT_EQ(runs_never, 1);
  EXPECT_EQ(runs_failure, 1);
  EXPECT_EQ(runs_always, 5);
  std::vector<std::string> delays;
  for (const SupervisorEvent& e : system.supervisor().events)
    if (e.instance == "always" && e.kind == SupervisorEventKind::restart_scheduled) delays.push_back(e.detail);
  EXPECT_EQ(delays, (std::vector<std::string>{"in 1000 ns", "in 2000 ns", "in 4000 ns", "in 4000 ns"}));
}

// Property: a host's event observer is called with each event as the
// supervisor logs it (at that virtual time, with that entry last in the log),
// sees exactly the log, and changes nothing in the run (same trace hash).
TEST(Supervisor, EventObserverSeesEachEventAsItIsLogged) {
  const auto run = [](bool observe, std::vector<SupervisorEvent>* seen) {
    System system(system_config());
    system.add_standard_servers();
    EXPECT_TRUE(system.add_program("flaky", [](Sys&) { throw std::runtime_error("crash"); }).ok());
    Manifest m = manifest("flaky", "flaky", {{"console", "console", ""}}, RestartPolicy::on_failure);
    m.backoff_ns_initial = 1'000;
    m.restarts_max = 2;
    system.add(m);
    if (observe) {
      system.on_supervisor_event([&system, seen](const SupervisorEvent& e) {
        EXPECT_EQ(e.time_ns, system.node().now_ns()) << "called as the event is logged, not later";
        EXPECT_EQ(system.supervisor().events.size(), seen->size() + 1) << "once per event, the newest last";
        EXPECT_EQ(&system.supervisor().events.back(), &e);
        seen->push_back(e);
      });
    }
    EXPECT_TRUE(system.boot().ok());
    EXPECT_TRUE(run_until(system, [&] { return find_event(system, "flaky", SupervisorEventKind::gave_up); }));
    if (observe) {
      EXPECT_EQ(seen->size(), system.supervisor().events.size());
      for (std::size_t i = 0; i < seen->size() && i < system.supervisor().events.size(); ++i) {
        const SupervisorEvent& logged = system.supervisor().events[i];
        EXPECT_EQ((*seen)[i].time_ns, logged.time_ns);
        EXPECT_EQ((*seen)[i].instance, logged.instance);
        EXPECT_EQ((*seen)[i].incarnation, logged.incarnation);
        EXPECT_EQ((*seen)[i].kind, logged.kind);
        EXPECT_EQ((*seen)[i].detail, logged.detail);
      }
    }
    return system.node().trace_hash();
  };
  std::vector<SupervisorEvent> seen;
  const std::uint64_t watched = run(true, &seen);
  EXPECT_EQ(watched, run(false, nullptr));
  std::size_t restarts = 0;
  for (const SupervisorEvent& e : seen) restarts += e.kind == SupervisorEventKind::restart_scheduled ? 1 : 0;
  EXPECT_EQ(restarts, 2u);
  EXPECT_GT(seen.size(), 6u) << "the servers' starts and announcements, three starts and exits of flaky";
}

// Property: a server crash loses no acknowledged write; the server recovers its
// state from its own storage, and a client re-binds through the supervisor
// (its old session is severed, never silently carried over).
TEST(Supervisor, ServerCrashClientsRebindNoAcknowledgedWriteLost) {
  System system(system_config());
  system.add_standard_servers();
  DrivenProgram app;
  ASSERT_TRUE(system.add_program("app", app.entry()).ok());
  system.add(manifest("app", "app", {{"log", "fs:/log", "wca"}}));
  ASSERT_TRUE(system.boot().ok());
  ASSERT_TRUE(run_until(system, [&] { return app.incarnations() == 1; }));
  FsClient log;
  ASSERT_TRUE(app.run(system, [&](Sys& sys) {
    log = FsClient(granted_session<FsOp>(sys, "log").value());
    ASSERT_TRUE(log.write(sys, "before;").ok());
  }));
  const ProcessId fs_before = system.process_of("fs").value();
  ASSERT_TRUE(system.node().kill(fs_before).ok());
  std::vector<std::string> seen;
  ASSERT_TRUE(app.run(system, [&](Sys& sys) {
    EXPECT_EQ(sys.granted<Endpoint>("log").error(), kernel::Error::severed) << "its grant died with the server";
    Outcome o = log.write(sys, "after;");
    seen.push_back(o.describe());
    ASSERT_TRUE(o.server_gone());
    Session<FsOp> fresh;
    o = regrant(sys, "log", &fresh);  // waits for the file server to come back
    seen.push_back(o.describe());
    ASSERT_TRUE(o.ok());
    EXPECT_TRUE(FsClient(fresh).write(sys, "after;").ok());
  }));
  EXPECT_EQ(seen, (std::vector<std::string>{"kernel: severed", "ok"}));
  EXPECT_NE(system.process_of("fs"), fs_before);
  const TrustedStore::Bytes* data = system.fs().store.get("file:/log");
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(data->data()), data->size()), "before;after;");
  EXPECT_TRUE(system.node().check_invariants().empty());
}

// Property: a program can regrant only its own manifest grants.
TEST(Supervisor, RegrantOnlyOwnGrants) {
  System system(system_config());
  system.add_standard_servers();
  DrivenProgram app;
  ASSERT_TRUE(system.add_program("app", app.entry()).ok());
  system.add(manifest("app", "app", {{"console", "console", ""}}));
  ASSERT_TRUE(system.boot().ok());
  ASSERT_TRUE(run_until(system, [&] { return app.incarnations() == 1; }));
  std::vector<std::string> seen;
  ASSERT_TRUE(app.run(system, [&](Sys& sys) {
    Cap<Endpoint> c;
    seen.push_back(regrant(sys, "console", &c).describe());
    seen.push_back(regrant(sys, "log", &c).describe());
    seen.push_back(regrant(sys, "factory", &c).describe());
  }));
  EXPECT_EQ(seen, (std::vector<std::string>{"ok", "not_found", "not_found"}));
}

// Property: a program waiting for a service whose only server gave up is
// refused then, naming the grant, instead of waiting forever.
TEST(Supervisor, WaitersOfAServiceWhoseServerGaveUpAreRefused) {
  System system(system_config());
  ASSERT_TRUE(system.add_program("broken-fs", [](Sys&) {}).ok());  // exits before it announces
  ASSERT_TRUE(system.add_program("app", [](Sys&) { FAIL() << "must not start"; }).ok());
  Manifest fs = manifest("fs", "broken-fs", {}, RestartPolicy::never);
  fs.provides = "fs";
  system.add(fs);
  system.add(manifest("app", "app", {{"log", "fs:/log", "ca"}}));
  ASSERT_TRUE(system.boot().ok());
  ASSERT_TRUE(run_until(system, [&] { return find_event(system, "app", SupervisorEventKind::start_refused); }));
  EXPECT_NE(find_event(system, "app", SupervisorEventKind::start_refused)->detail.find("down for good"),
            std::string::npos);
  EXPECT_TRUE(system.supervisor().booted);
}

// A server of one's own: answers the generic root open with a session whose
// badge it remembers, and "add" on a session by returning the running sum.
void tally_server(Sys& sys) {
  const Cap<Endpoint> ep = sys.endpoint_create().value();
  struct Tally : BasicService {
    using BasicService::BasicService;
    std::uint64_t sum = 0;
    ServiceError open(const OpenRequest& r, kernel::Message& reply) {
      if (r.argument != "main") return ServiceError::not_found;
      return BasicService::open(r, reply);
    }
    ServiceError handle(ClientSession&, Request& r, kernel::Message& reply) {
      sum += r.args.u64();
      wire::Writer(reply).u64(sum);
      return ServiceError::ok;
    }
  } tally{sys, ep};
  ServerAudit audit;
  announce_and_serve(sys, "tally", ep, tally, audit);
}

// Property: a grant of a service of one's own is resolved through the generic
// root open; an argument the server does not know is refused by name.
TEST(Supervisor, GrantsOfAServiceOfOnesOwn) {
  System system(system_config());
  system.add_standard_servers();
  ASSERT_TRUE(system.add_program("tally", tally_server).ok());
  Manifest tally = manifest("tally", "tally", {}, RestartPolicy::always);
  tally.provides = "tally";
  system.add(tally);
  DrivenProgram app;
  ASSERT_TRUE(system.add_program("app", app.entry()).ok());
  system.add(manifest("app", "app", {{"t", "tally:main", ""}}));
  ASSERT_TRUE(system.add_program("lost", [](Sys&) {}).ok());
  system.add(manifest("lost", "lost", {{"t", "tally:other", ""}}));
  ASSERT_TRUE(system.boot().ok());
  ASSERT_TRUE(run_until(system, [&] { return app.incarnations() == 1; }));
  std::uint64_t sum = 0;
  ASSERT_TRUE(app.run(system, [&](Sys& sys) {
    for (std::uint64_t v : {3, 4}) {
      kernel::Message request{}, reply{};
      request.label = 1;
      wire::Writer(request).u64(v);
      ASSERT_TRUE(call(sys, sys.granted<Endpoint>("t").value(), request, reply).ok());
      sum = wire::Reader(reply).u64();
    }
  }));
  EXPECT_EQ(sum, 7u);
  const SupervisorEvent* refused = find_event(system, "lost", SupervisorEventKind::start_refused);
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->detail, "grant 't': tally:other: not_found");
}

// Property: a program's own service that never answers cannot stall the
// supervisor: the open for a client times out (call_timed_out on the
// provider), that client's start is refused naming the grant, and the
// supervisor goes on starting others.
TEST(Supervisor, AServiceThatNeverAnswersIsGivenUpOn) {
  System system(system_config());
  system.add_standard_servers();
  ASSERT_TRUE(system.add_program("mute", [](Sys& sys) {
    const Cap<Endpoint> ep = sys.endpoint_create().value();
    if (!announce(sys, "mute", ep)) return;
    kernel::Message request{};
    while (sys.receive(ep, request)) {
    }  // receives every call, answers none
  }).ok());
  Manifest mute = manifest("mute", "mute", {}, RestartPolicy::never);
  mute.provides = "mute";
  system.add(mute);
  ASSERT_TRUE(system.add_program("client", [](Sys&) { FAIL() << "must not start"; }).ok());
  system.add(manifest("client", "client", {{"m", "mute:x", ""}}));
  bool later_ran = false;
  ASSERT_TRUE(system.add_program("later", [&](Sys&) { later_ran = true; }).ok());
  system.add(manifest("later", "later", {{"console", "console", ""}}));
  ASSERT_TRUE(system.boot().ok());
  ASSERT_TRUE(run_until(system, [&] { return find_event(system, "client", SupervisorEventKind::start_refused); }));
  const SupervisorEvent* timed_out = find_event(system, "mute", SupervisorEventKind::call_timed_out);
  ASSERT_NE(timed_out, nullptr);
  EXPECT_EQ(timed_out->detail, "open for client #1: refused");
  EXPECT_NE(find_event(system, "client", SupervisorEventKind::start_refused)->detail.find("grant 'm'"), std::string::npos);
  ASSERT_TRUE(run_until(system, [&] { return later_ran; }));
  EXPECT_GE(timed_out->time_ns, system.supervisor().service_call_timeout_ns);
}

}  // namespace
}  // namespace persim::servers
