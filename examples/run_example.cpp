// persim-example: boots a node with the standard servers and a supervisor,
// adds the manifests of a TOML file, runs it, and shows what happened: the
// supervisor's timeline and restart log, console output, files, key-value
// tables. A stand-in for `persim run` until scenarios exist.
//
//   persim-example examples/logger.toml --kill fs@3500000 --until-ns 20000000
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "examples/programs.hpp"
#include "servers/console/terminal.hpp"
#include "servers/supervisor/manifest.hpp"

using namespace persim;
using namespace persim::servers;

namespace {

struct Kill {
  std::string instance;
  std::uint64_t at_ns;
};

bool parse_kill(const std::string& spec, Kill* out) {
  const std::size_t at = spec.rfind('@');
  if (at == std::string::npos || at == 0) return false;
  try {
    std::size_t used = 0;
    out->at_ns = std::stoull(spec.substr(at + 1), &used);
    if (used != spec.size() - at - 1) return false;
  } catch (const std::exception&) {
    return false;
  }
  out->instance = spec.substr(0, at);
  return true;
}

void print_report(System& system) {
  std::printf("\ntimeline (supervisor)\n");
  for (const SupervisorEvent& e : system.supervisor().events)
    std::printf("  %10.3f ms  %-10s #%-2u %-17s %s\n", static_cast<double>(e.time_ns) / 1e6, e.instance.c_str(),
                e.incarnation, std::string(to_string(e.kind)).c_str(), e.detail.c_str());
  std::printf("\nrestart log\n");
  if (system.supervisor().restarts.empty()) std::printf("  (none)\n");
  for (const RestartRecord& r : system.supervisor().restarts) {
    auto join = [](const std::vector<std::string>& v) {
      std::string s;
      for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
      return s.empty() ? std::string("-") : s;
    };
    std::string refused;
    for (const auto& [g, why] : r.refused) refused += (refused.empty() ? "" : "; ") + g + " (" + why + ")";
    std::printf("  %10.3f ms  %s #%u after %s: severed [%s] + %u others; re-granted [%s]; refused [%s]\n",
                static_cast<double>(r.time_ns) / 1e6, r.instance.c_str(), r.incarnation,
                kernel::to_string(r.cause), join(r.severed).c_str(), r.severed_other,
                join(r.regranted).c_str(), refused.empty() ? "-" : refused.c_str());
  }
  std::printf("\nconsole\n");
  for (const auto& [stream, text] : system.console().output) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) std::printf("  %-10s | %s\n", stream.c_str(), line.c_str());
  }
  std::printf("\nfiles\n");
  for (const auto& [key, bytes] : system.fs().store.records())
    if (key.starts_with("file:")) std::printf("  %s: %zu bytes\n", key.substr(5).c_str(), bytes.size());
  std::printf("\nkey-value\n");
  for (const auto& [key, bytes] : system.kv().store.records()) {
    if (!key.starts_with("kv:")) continue;  // the store's idempotency tokens
    std::string k = key.substr(3);
    std::replace(k.begin(), k.end(), '\0', '/');
    std::printf("  %s = %.*s\n", k.c_str(), static_cast<int>(bytes.size()), reinterpret_cast<const char*>(bytes.data()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Run example programs under the supervisor from a manifest file."};
  std::string file;
  std::uint64_t seed = 1;
  std::uint64_t until_ns = 50'000'000;
  std::vector<std::string> kills;
  std::string interactive;
  app.add_option("manifest", file, "TOML file of [[program]] tables")->required()->check(CLI::ExistingFile);
  app.add_option("--seed", seed, "seed of the run");
  app.add_option("--until-ns", until_ns, "virtual time to run for, in ns");
  app.add_option("--kill", kills, "kill INSTANCE's process at virtual time NS (INSTANCE@NS); repeatable");
  app.add_option("--interactive", interactive,
                 "bridge console stream STREAM to this terminal (lines \"!kill INSTANCE\", \"!quit\"); runs until "
                 "the input ends");
  CLI11_PARSE(app, argc, argv);

  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  const auto parsed = parse_manifests(text.str(), file);
  if (const ConfigError* e = std::get_if<ConfigError>(&parsed)) {
    std::fprintf(stderr, "%s\n", e->describe().c_str());
    return 2;
  }
  std::vector<Kill> faults;
  for (const std::string& k : kills) {
    Kill kill;
    if (!parse_kill(k, &kill)) {
      std::fprintf(stderr, "--kill %s: expected INSTANCE@NS, e.g. fs@3500000\n", k.c_str());
      return 2;
    }
    faults.push_back(kill);
  }

  kernel::NodeConfig config;
  config.seed = seed;
  System system(config);
  system.add_standard_servers();
  examples::register_examples(system);
  for (const Manifest& m : std::get<std::vector<Manifest>>(parsed)) system.add(m);
  std::printf("persim-example %s  manifest=%s  seed=%llu  (reproduce: persim-example %s --seed %llu", PERSIM_VERSION,
              file.c_str(), static_cast<unsigned long long>(seed), file.c_str(), static_cast<unsigned long long>(seed));
  for (const std::string& k : kills) std::printf(" --kill %s", k.c_str());
  if (interactive.empty()) std::printf(" --until-ns %llu", static_cast<unsigned long long>(until_ns));
  if (!interactive.empty()) std::printf(" --interactive %s", interactive.c_str());
  std::printf(")\n");
  std::fflush(stdout);
  for (const Kill& k : faults) {
    system.node().at(k.at_ns, [&system, k](kernel::Node& node) {
      if (const auto pid = system.process_of(k.instance)) (void)node.kill(*pid);
    });
  }
  if (const kernel::Status s = system.boot(); !s) {
    std::fprintf(stderr, "boot: %s\n", std::string(kernel::to_string(s.error())).c_str());
    return 1;
  }
  if (!interactive.empty()) {
    AsioIo io;
    TerminalBridge bridge(system, io, interactive, 0, 1);
    bridge.start();
    (void)system.world().run({.real_io = &io, .when_idle = kernel::WhenIdle::wait_for_real_io});
  } else {
    (void)system.world().run({.until_ns = until_ns});
  }
  print_report(system);
  std::printf("\ntrace hash %016llx  kernel calls %llu  audit %llu\n",
              static_cast<unsigned long long>(system.node().trace_hash()),
              static_cast<unsigned long long>(system.node().stats().kernel_calls),
              static_cast<unsigned long long>(system.node().audit().total()));
  return 0;
}
