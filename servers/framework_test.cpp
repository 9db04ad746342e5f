// The shape every server shares: the one open request, typed sessions, and the
// table of standard services that System, the manifest reader and the runner
// loop over.
#include <gtest/gtest.h>

#include <type_traits>

#include "support/system_harness.hpp"

namespace persim::servers {
namespace {

using namespace persim::testing;

// Property: a session capability's protocol is part of its type: a client of
// one server cannot be built on another's session, nor on an untyped endpoint.
static_assert(std::is_constructible_v<FsClient, Session<FsOp>>);
static_assert(!std::is_constructible_v<FsClient, Session<KvOp>>);
static_assert(!std::is_constructible_v<KvClient, Session<FsOp>>);
static_assert(!std::is_constructible_v<ConsoleClient, Session<CkptOp>>);
static_assert(!std::is_constructible_v<CkptClient, kernel::Cap<kernel::Endpoint>>);
static_assert(!std::is_convertible_v<Session<KvOp>, Session<FsOp>>);

// Property: the open request reads back exactly as written, and anything
// short of it, or with a byte more, is malformed.
TEST(OpenRequest, RoundTripsAndRefusesMalformedBytes) {
  const OpenRequest sent{"/data/", "rwd", 42, "app", "bank", 2};
  kernel::Message m{};
  ASSERT_TRUE(write_open(m, sent));
  EXPECT_EQ(m.label, static_cast<std::uint64_t>(RootOp::open));
  wire::Reader in(m);
  const std::optional<OpenRequest> got = read_open(in);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->argument, "/data/");
  EXPECT_EQ(got->mode, "rwd");
  EXPECT_EQ(got->client, 42u);
  EXPECT_EQ(got->instance, "app");
  EXPECT_EQ(got->group, "bank");
  EXPECT_EQ(got->group_size, 2u);
  for (std::uint32_t cut = 0; cut < m.length; ++cut) {
    kernel::Message shorter = m;
    shorter.length = cut;
    wire::Reader r(shorter);
    EXPECT_FALSE(read_open(r).has_value()) << "cut at " << cut;
  }
  kernel::Message longer = m;
  longer.data[longer.length++] = std::byte{0};
  wire::Reader r(longer);
  EXPECT_FALSE(read_open(r).has_value()) << "a byte left over";
}

// Property: a grant that names no argument is served on the client's
// instance (a console stream, a slot); one that names one, on that.
TEST(OpenRequest, ArgumentDefaultsToTheInstance) {
  EXPECT_EQ((OpenRequest{"", "", 1, "app", "", 0}.argument_or_instance()), "app");
  EXPECT_EQ((OpenRequest{"log", "", 1, "app", "", 0}.argument_or_instance()), "log");
}

// Property: the table of standard services is what System boots, in its
// order, each service named by its server's host type, and nothing else is
// standard.
TEST(StandardServices, OneTableNamesThemAll) {
  std::vector<std::string_view> names;
  for (const StandardService& s : standard_services()) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string_view>{ConsoleHost::service, FileServerHost::service, KvHost::service,
                                                  CkptHost::service}));
  EXPECT_EQ(standard_service_names(), "console, fs, kv, ckpt");
  EXPECT_EQ(find_standard_service("kv"), &standard_services()[2]);
  EXPECT_EQ(find_standard_service("ledger"), nullptr);

  System system(system_config());
  ASSERT_EQ(system.hosts().size(), standard_services().size());
  EXPECT_EQ(&system.host<KvHost>(), system.hosts()[2].get());
  EXPECT_NE(dynamic_cast<CkptHost*>(system.hosts()[3].get()), nullptr);
  system.add_standard_servers(RestartPolicy::on_failure);
  ASSERT_EQ(system.supervisor().manifests.size(), standard_services().size());
  for (std::size_t i = 0; i < standard_services().size(); ++i) {
    const Manifest& m = system.supervisor().manifests[i];
    EXPECT_EQ(m.instance, standard_services()[i].name);
    EXPECT_EQ(m.provides, standard_services()[i].name);
    EXPECT_TRUE(m.trusted) << m.instance;
    EXPECT_EQ(m.restart, RestartPolicy::on_failure);
  }
}

// Property: each standard server judges its own grants: the file server wants
// an absolute path and its mode letters, the others take no mode.
TEST(StandardServices, EachChecksItsOwnGrants) {
  auto problem = [](std::string_view service, std::string_view argument, std::string_view mode) {
    const std::optional<GrantProblem> p = find_standard_service(service)->check_grant(argument, mode);
    return p ? p->message : std::string("ok");
  };
  EXPECT_EQ(problem("fs", "/log", "ca"), "ok");
  EXPECT_EQ(problem("fs", "/dir/", "rd"), "ok");
  EXPECT_EQ(problem("fs", "log", ""), "expected an absolute path after \"fs:\", got \"log\"");
  EXPECT_EQ(problem("fs", "/log", "x"), "expected letters of r w a c t d, got \"x\"");
  EXPECT_EQ(problem("fs", "/dir/", "r"), "a path ending in '/' needs mode d");
  EXPECT_EQ(problem("console", "", ""), "ok");
  EXPECT_EQ(problem("kv", "t", "r"), "a kv grant takes no mode");
  EXPECT_EQ(problem("ckpt", "", "w"), "a ckpt grant takes no mode");
}

// Property: a standard server judges the open request itself, whoever checked
// the manifest before: a grant that reaches it with a mode it takes none of,
// or an empty table, is refused by the server, and the start with it.
TEST(StandardServices, ServersRefuseOpensTheyCannotServe) {
  System system(system_config());
  system.add_standard_servers();
  DrivenProgram app;
  ASSERT_TRUE(system.add_program("app", app.entry()).ok());
  system.add(manifest("moded", "app", {{"c", "console", "r"}}));
  system.add(manifest("fine", "app", {{"c", "console", ""}, {"t", "kv", ""}}));
  ASSERT_TRUE(system.boot().ok());
  ASSERT_TRUE(run_until(system, [&] { return system.supervisor().booted; }));
  std::map<std::string, std::string> refused;
  for (const SupervisorEvent& e : system.supervisor().events)
    if (e.kind == SupervisorEventKind::start_refused) refused[e.instance] = e.detail;
  EXPECT_EQ(refused, (std::map<std::string, std::string>{{"moded", "grant 'c': console (r): malformed"}}));
  EXPECT_TRUE(system.process_of("fine").has_value()) << "kv's table defaults to the instance";
}

}  // namespace
}  // namespace persim::servers
