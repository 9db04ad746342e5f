// persim: run scenarios, check determinism, sweep seeds, inspect images.
// See docs/scenarios.md and `persim --help`.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "libpersist/image.hpp"
#include "servers/ckpt/durable.hpp"
#include "sim/programs.hpp"
#include "sim/runner.hpp"

extern char** environ;

using namespace persim;
using namespace persim::sim;

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;     // expectations did not hold, determinism broken, an image invalid
constexpr int exit_bad_input = 2;  // the scenario, an argument or a file is wrong
constexpr std::uint64_t seed_max = std::uint64_t{1} << 62;  // as in scenario files

// Whether every output file can be written, before anything runs.
bool outputs_writable(const Outputs& o) {
  for (const std::string* path : {&o.trace_path, &o.events_path, &o.metrics_path}) {
    if (path->empty()) continue;
    std::ofstream probe(*path, std::ios::app);
    if (!probe) {
      std::fprintf(stderr, "%s: cannot write\n", path->c_str());
      return false;
    }
  }
  return true;
}

// Loads a scenario and applies --set overrides; prints the error and returns null on bad input.
std::optional<Scenario> load(const std::string& path, const std::vector<std::string>& overrides) {
  auto parsed = load_scenario(path);
  if (const ConfigError* e = std::get_if<ConfigError>(&parsed)) {
    std::fprintf(stderr, "%s\n", e->describe().c_str());
    return std::nullopt;
  }
  Scenario s = std::move(std::get<Scenario>(parsed));
  for (const std::string& o : overrides) {
    if (const auto e = apply_override(s, o)) {
      std::fprintf(stderr, "--set %s\n", e->c_str());
      return std::nullopt;
    }
  }
  if (const auto e = check_overridden(s)) {
    std::fprintf(stderr, "--set %s\n", e->c_str());
    return std::nullopt;
  }
  return s;
}

int cmd_run(const std::string& path, std::optional<std::uint64_t> seed, const Outputs& outputs_in, bool quiet,
            const std::vector<std::string>& overrides) {
  const auto s = load(path, overrides);
  if (!s || !outputs_writable(outputs_in)) return exit_bad_input;
  const std::uint64_t run_seed = seed.value_or(s->seed);
  Outputs outputs = outputs_in;
  outputs.timeline = quiet ? nullptr : stdout;
  if (!quiet) std::printf("%s\n\n", reproduce_line(*s, run_seed, overrides).c_str());
  const RunResult r = run_scenario(*s, run_seed, outputs);
  if (!r.error.empty()) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), r.error.c_str());
    return exit_bad_input;
  }
  if (quiet && !r.failed.empty())
    for (const std::string& f : r.failed) std::fprintf(stderr, "%s seed %llu: FAILED %s\n", path.c_str(),
                                                       static_cast<unsigned long long>(run_seed), f.c_str());
  return r.failed.empty() ? exit_ok : exit_failed;
}

int cmd_check(const std::string& path, std::optional<std::uint64_t> seed, const std::vector<std::string>& overrides) {
  const auto s = load(path, overrides);
  if (!s) return exit_bad_input;
  const std::uint64_t run_seed = seed.value_or(s->seed);
  std::printf("%s\n", reproduce_line(*s, run_seed, overrides).c_str());
  const RunResult a = run_scenario(*s, run_seed, {});
  const RunResult b = run_scenario(*s, run_seed, {});
  if (!a.error.empty()) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), a.error.c_str());
    return exit_bad_input;
  }
  const bool same = a.metrics.trace_hash == b.metrics.trace_hash && a.metrics.kernel_calls == b.metrics.kernel_calls &&
                    a.metrics.virtual_ns == b.metrics.virtual_ns;
  std::printf("run 1: trace hash %016llx, %llu kernel calls, %llu ns\nrun 2: trace hash %016llx, %llu kernel calls, %llu ns\n%s\n",
              static_cast<unsigned long long>(a.metrics.trace_hash), static_cast<unsigned long long>(a.metrics.kernel_calls),
              static_cast<unsigned long long>(a.metrics.virtual_ns), static_cast<unsigned long long>(b.metrics.trace_hash),
              static_cast<unsigned long long>(b.metrics.kernel_calls), static_cast<unsigned long long>(b.metrics.virtual_ns),
              same ? "deterministic: the same seed gave the same trace" : "NOT DETERMINISTIC: the traces differ");
  return same ? exit_ok : exit_failed;
}

// "A..B" (inclusive) into a list of seeds.
std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_range(const std::string& text) {
  const std::size_t dots = text.find("..");
  if (dots == std::string::npos) return std::nullopt;
  try {
    std::size_t used_a = 0, used_b = 0;
    const std::uint64_t a = std::stoull(text.substr(0, dots), &used_a);
    const std::uint64_t b = std::stoull(text.substr(dots + 2), &used_b);
    if (used_a != dots || used_b != text.size() - dots - 2 || b < a) return std::nullopt;
    return std::pair(a, b);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Merges metrics CSV files (each a header and rows) into one table on `out`.
int merge_csv(const std::vector<std::string>& files, std::ostream& out) {
  bool header_written = false;
  for (const std::string& f : files) {
    std::ifstream in(f);
    if (!in) {
      std::fprintf(stderr, "merge: %s: cannot open\n", f.c_str());
      return exit_bad_input;
    }
    std::string header;
    std::getline(in, header);
    if (header != metrics_csv_header()) {
      std::fprintf(stderr, "merge: %s: not a persim metrics CSV (unexpected header)\n", f.c_str());
      return exit_bad_input;
    }
    if (!header_written) out << header << '\n';
    header_written = true;
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out << line << '\n';
  }
  return exit_ok;
}

// One process per seed, at most `jobs` at a time: this binary's `run --quiet`.
int cmd_sweep(const std::string& path, const std::string& seeds, unsigned jobs, const std::vector<std::string>& overrides,
              const std::string& out_path) {
  if (!load(path, overrides)) return exit_bad_input;
  const auto range = parse_range(seeds);
  if (!range) {
    std::fprintf(stderr, "--seeds %s: expected A..B with A <= B, e.g. 1..100\n", seeds.c_str());
    return exit_bad_input;
  }
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("persim-sweep-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string self = std::filesystem::read_symlink("/proc/self/exe");
  const std::uint64_t total = range->second - range->first + 1;
  std::uint64_t next = range->first, done = 0, failed = 0;
  std::map<pid_t, std::uint64_t> running;
  std::vector<std::string> files;
  const bool tty = ::isatty(2) != 0;
  while (done < total) {
    while (running.size() < std::max(jobs, 1u) && next <= range->second) {
      const std::string metrics = (dir / (std::to_string(next) + ".csv")).string();
      files.push_back(metrics);
      std::vector<std::string> args = {self, "run", path, "--quiet", "--seed", std::to_string(next), "--metrics", metrics};
      for (const std::string& o : overrides) args.insert(args.end(), {"--set", o});
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      pid_t pid = 0;
      if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
        std::fprintf(stderr, "sweep: cannot start %s\n", self.c_str());
        return exit_bad_input;
      }
      running[pid] = next++;
    }
    int status = 0;
    const pid_t pid = ::wait(&status);
    if (pid < 0) break;
    running.erase(pid);
    ++done;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != exit_ok) ++failed;
    if (tty) std::fprintf(stderr, "\r[%llu/%llu] %llu failed", static_cast<unsigned long long>(done),
                          static_cast<unsigned long long>(total), static_cast<unsigned long long>(failed));
  }
  if (tty) std::fprintf(stderr, "\n");
  // A run that died without writing its metrics still gets its row: not ok.
  for (std::uint64_t seed_i = range->first; seed_i <= range->second; ++seed_i) {
    const std::filesystem::path metrics = dir / (std::to_string(seed_i) + ".csv");
    if (std::filesystem::exists(metrics)) continue;
    Metrics lost;
    lost.seed = seed_i;
    std::ofstream(metrics) << metrics_csv_header() << '\n' << metrics_csv_row(lost, false) << '\n';
  }
  std::ofstream file;
  if (!out_path.empty()) file.open(out_path);
  const int merged = merge_csv(files, out_path.empty() ? std::cout : file);
  std::filesystem::remove_all(dir);
  if (merged != exit_ok) return merged;
  std::fprintf(stderr, "sweep: %llu runs, %llu failed\n", static_cast<unsigned long long>(total),
               static_cast<unsigned long long>(failed));
  return failed == 0 ? exit_ok : exit_failed;
}

int inspect_image(std::span<const std::byte> bytes, const std::string& what) {
  const auto decoded = persist::decode(bytes);
  if (const auto* e = std::get_if<persist::DecodeError>(&decoded)) {
    std::fprintf(stderr, "%s: %s\n", what.c_str(), e->describe().c_str());
    return exit_failed;
  }
  std::printf("%s\n", persist::to_json(std::get<persist::Image>(decoded)).c_str());
  return exit_ok;
}

int cmd_inspect(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "%s: cannot open\n", path.c_str());
    return exit_bad_input;
  }
  const std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static constexpr char sqlite_magic[] = "SQLite format 3";
  if (raw.size() >= sizeof sqlite_magic && std::equal(sqlite_magic, sqlite_magic + sizeof sqlite_magic, raw.begin())) {
    // Read from a copy (the database and its write-ahead log): opening a
    // store's database sets its journal mode and could checkpoint its log,
    // and inspecting must leave the evidence as it was.
    char dir_template[] = "/tmp/persim-inspect-XXXXXX";
    const char* dir = mkdtemp(dir_template);
    if (dir == nullptr) {
      std::fprintf(stderr, "%s: cannot make a temporary directory to read a copy in\n", path.c_str());
      return exit_failed;
    }
    const std::filesystem::path copy = std::filesystem::path(dir) / "ckpt.db";
    std::error_code ec;
    std::filesystem::copy_file(path, copy, ec);
    if (!ec && std::filesystem::exists(path + "-wal"))
      std::filesystem::copy_file(path + "-wal", copy.string() + "-wal", ec);
    struct Cleanup {
      std::string dir;
      ~Cleanup() {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
      }
    } cleanup{dir};
    if (ec) {
      std::fprintf(stderr, "%s: copying it to read: %s\n", path.c_str(), ec.message().c_str());
      return exit_failed;
    }
    auto opened = servers::DurableImages::open(copy.string(), nullptr);
    if (auto* e = std::get_if<std::string>(&opened)) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), e->c_str());
      return exit_bad_input;
    }
    auto loaded = std::get<std::unique_ptr<servers::DurableImages>>(opened)->load();
    if (auto* e = std::get_if<std::string>(&loaded)) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), e->c_str());
      return exit_failed;
    }
    int status = exit_ok;
    for (const servers::StoredImage& img : std::get<std::vector<servers::StoredImage>>(loaded)) {
      std::string about;  // a delta's base, a group member's epoch
      if (img.base != 0) about += ", a delta on version " + std::to_string(img.base);
      if (img.epoch != 0) about += ", group epoch " + std::to_string(img.epoch);
      std::printf("# slot %s version %llu (%zu bytes%s)\n", img.slot.c_str(),
                  static_cast<unsigned long long>(img.version), img.bytes.size(), about.c_str());
      if (inspect_image(img.bytes, path + ": slot " + img.slot + " version " + std::to_string(img.version)) != exit_ok)
        status = exit_failed;
    }
    return status;
  }
  return inspect_image(std::as_bytes(std::span(raw.data(), raw.size())), path);
}

int cmd_programs() {
  for (const ProgramKind& k : programs()) {
    std::printf("%s: %s\n  grants:", k.name.c_str(), k.summary.c_str());
    for (const std::string& g : k.grants) std::printf(" %s;", g.c_str());
    std::printf("\n");
    for (const ParamSpec& p : k.params)
      std::printf("  params.%s (default %s): %s\n", p.name.c_str(), p.default_value.c_str(), p.meaning.c_str());
  }
  return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"persim: a deterministic simulator of a capability-based multi-server system whose processes\n"
               "checkpoint their own state and continue where they left off. See docs/scenarios.md."};
  app.require_subcommand(1);
  app.set_version_flag("--version", PERSIM_VERSION);

  std::string scenario;
  std::optional<std::uint64_t> seed;
  std::vector<std::string> overrides;
  Outputs outputs;
  bool quiet = false;
  CLI::App* run = app.add_subcommand("run", "run a scenario; exit 0 if its expectations held, 1 if not, 2 on bad input");
  run->add_option("scenario", scenario, "scenario file (TOML)")->required();
  run->add_option("--seed", seed, "seed (default: the scenario's)");
  run->add_option("--trace", outputs.trace_path, "write a Chrome trace (open in Perfetto) to FILE");
  run->add_option("--events", outputs.events_path, "write every event as JSON Lines to FILE");
  run->add_option("--metrics", outputs.metrics_path, "write metrics to FILE (.csv, else JSON)");
  run->add_option("--set", overrides, "override KEY=VALUE (repeatable), e.g. program.counter.params.every=5");
  run->add_flag("--quiet", quiet, "no timeline (for sweeps)");

  CLI::App* check = app.add_subcommand("check", "run twice with the same seed and compare traces (determinism)");
  check->add_option("scenario", scenario, "scenario file (TOML)")->required();
  check->add_option("--seed", seed, "seed (default: the scenario's)");
  check->add_option("--set", overrides, "override KEY=VALUE (repeatable)");

  std::string seeds, sweep_out;
  unsigned jobs = 2;
  CLI::App* sweep = app.add_subcommand("sweep", "run seeds A..B, one process per run, metrics merged into CSV");
  sweep->add_option("scenario", scenario, "scenario file (TOML)")->required();
  sweep->add_option("--seeds", seeds, "seed range A..B (inclusive)")->required();
  sweep->add_option("--jobs", jobs, "runs at a time (default 2)");
  sweep->add_option("--set", overrides, "override KEY=VALUE (repeatable)");
  sweep->add_option("--out", sweep_out, "write the CSV to FILE (default: stdout)");

  std::vector<std::string> csv_files;
  CLI::App* merge = app.add_subcommand("merge", "merge metrics CSV files of separate runs (GNU parallel, Slurm)");
  merge->add_option("files", csv_files, "metrics CSV files written by run --metrics")->required();

  std::string image;
  CLI::App* inspect = app.add_subcommand("inspect", "print a checkpoint image, or every image of a durable store, as JSON");
  inspect->add_option("file", image, "an image file, or a checkpoint store database")->required();

  CLI::App* list = app.add_subcommand("programs", "list the programs scenarios can run, with their parameters");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and version are not errors; every mistake on the command line is bad input.
    return app.exit(e) == 0 ? exit_ok : exit_bad_input;
  }
  if (seed && *seed > seed_max) {
    std::fprintf(stderr, "--seed %llu: at most %llu\n", static_cast<unsigned long long>(*seed),
                 static_cast<unsigned long long>(seed_max));
    return exit_bad_input;
  }
  if (*run) return cmd_run(scenario, seed, outputs, quiet, overrides);
  if (*check) return cmd_check(scenario, seed, overrides);
  if (*sweep) return cmd_sweep(scenario, seeds, jobs, overrides, sweep_out);
  if (*merge) return merge_csv(csv_files, std::cout);
  if (*inspect) return cmd_inspect(image);
  if (*list) return cmd_programs();
  return exit_bad_input;
}
