// Manifests as TOML: the format, and a precise error for each kind of mistake.
#include <gtest/gtest.h>

#include "servers/supervisor/manifest.hpp"

namespace persim::servers {
namespace {

std::vector<Manifest> ok(std::string_view text) {
  auto parsed = parse_manifests(text, "test.toml");
  if (auto* e = std::get_if<ConfigError>(&parsed)) ADD_FAILURE() << e->describe();
  return std::holds_alternative<std::vector<Manifest>>(parsed) ? std::get<std::vector<Manifest>>(parsed)
                                                               : std::vector<Manifest>{};
}

std::string error(std::string_view text) {
  auto parsed = parse_manifests(text, "test.toml");
  if (!std::holds_alternative<ConfigError>(parsed)) return "no error";
  return std::get<ConfigError>(parsed).describe();
}

// Property: every field of the format reaches the manifest; defaults fill the rest.
TEST(ManifestToml, ParsesEveryField) {
  const std::vector<Manifest> ms = ok(R"(
[[program]]
instance = "logger"
program = "logger"
restart = "on_failure"
backoff_ns = 5000
backoff_max_ns = 80000
restarts_max = 3
[program.grants]
console = "console"
log = { source = "fs:/var/log/app", mode = "ca" }

[[program]]
program = "fs"
provides = "fs"
restart = "always"
)");
  ASSERT_EQ(ms.size(), 2u);
  EXPECT_EQ(ms[0].instance, "logger");
  EXPECT_EQ(ms[0].restart, RestartPolicy::on_failure);
  EXPECT_EQ(ms[0].backoff_ns_initial, 5000u);
  EXPECT_EQ(ms[0].backoff_ns_max, 80000u);
  EXPECT_EQ(ms[0].restarts_max, 3u);
  ASSERT_EQ(ms[0].grants.size(), 2u);
  EXPECT_EQ(ms[0].grants[0].describe(), "console");
  EXPECT_EQ(ms[0].grants[1].name, "log");
  EXPECT_EQ(ms[0].grants[1].describe(), "fs:/var/log/app (ca)");
  EXPECT_EQ(ms[1].instance, "fs") << "instance defaults to the program";
  EXPECT_EQ(ms[1].provides, "fs");
  EXPECT_EQ(ms[1].restart, RestartPolicy::always);
  EXPECT_EQ(ms[1].backoff_ns_initial, 1'000'000u);
}

// Property: each kind of mistake is refused with file:line:column, the key and what was expected.
TEST(ManifestToml, MistakesAreNamedWithWhereAndWhat) {
  EXPECT_EQ(error("[[program]]\nprogram = \"a\"\nrestart = \"sometimes\"\n"),
            "test.toml:3:11: program[0].restart: expected one of never, always, on_failure, got \"sometimes\"");
  EXPECT_EQ(error("[[program]]\nprogram = \"a\"\nrestrat = \"never\"\n"),
            "test.toml:3:11: program[0].restrat: unknown key (expected one of: instance, program, restart, "
            "backoff_ns, backoff_max_ns, restarts_max, provides, grants, params, group)");
  EXPECT_EQ(error("[[program]]\nprogram = 7\n"), "test.toml:2:11: program[0].program: expected a string, got an integer");
  EXPECT_EQ(error("[[program]]\ninstance = \"a\"\n"), "test.toml:1:1: program[0].program: missing (expected a string)");
  EXPECT_EQ(error("[[program]]\nprogram = \"a\"\n[[program]]\nprogram = \"a\"\n"),
            "test.toml:3:1: program[1].instance: duplicate instance \"a\"");
  EXPECT_EQ(error("[[program]]\nprogram = \"a\"\nrestarts_max = -1\n"),
            "test.toml:3:16: program[0].restarts_max: expected an integer in [0, 1000000], got -1");
  EXPECT_EQ(error("[[program]]\nprogram = \"a\"\ngrants = { log = { source = \"fs:/x\", mode = \"rz\" } }\n"),
            "test.toml:3:45: program[0].grants.log.mode: expected letters of r w a c t d, got \"rz\"");
  EXPECT_EQ(error("[[program]]\nprogram = \"a\"\ngrants = { supervisor = \"kv\" }\n"),
            "test.toml:3:25: program[0].grants.supervisor: the name 'supervisor' is reserved (every program is "
            "granted it)");
  EXPECT_EQ(error("[[program]]\nprogram = \"a\"\ngrants = { x = 3 }\n"),
            "test.toml:3:16: program[0].grants.x: expected \"service:argument\" or { source = ..., mode = ... }, got "
            "an integer");
  EXPECT_EQ(error("[[program]]\nprogram = \"a\"\ngrants = { c = { source = \"console\", mode = \"r\" } }\n"),
            "test.toml:3:45: program[0].grants.c.mode: a console grant takes no mode");
  EXPECT_EQ(error("[[program]]\nprogram = \"a\"\ngrants = { d = { source = \"fs:/data\", mode = \"rd\" } }\n"),
            "test.toml:3:46: program[0].grants.d.mode: mode d needs a directory path ending in '/'");
  EXPECT_EQ(error("[[program]]\nprogram = \"a\"\ngrants = { f = \"fs:data\" }\n"),
            "test.toml:3:16: program[0].grants.f: expected an absolute path after \"fs:\", got \"data\"");
  const std::string syntax = error("[[program]\n");
  EXPECT_EQ(syntax.rfind("test.toml:1:", 0), 0u) << syntax;
}

}  // namespace
}  // namespace persim::servers
