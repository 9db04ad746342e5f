// Persistence benchmarks (issue 4): checkpoint of a 1 KiB state, encoding of a
// 64 MiB region, restart of one process, and the durable backend's group
// commit. Each figure is named `<group>/persim...` beside its floor
// `<group>/floor_...`, so one --benchmark_filter=<group> runs both and
// bench/ratios.py divides the figure's median by the floor's median from the
// same run. See docs/performance.md.
//
//   checkpoint_1k  one iteration = one Persistent::checkpoint() of a 1 KiB field
//                  to the in-memory checkpoint store; floor: memcpy of 1 KiB
//   encode_64m     one iteration = persist::encode of an image holding one
//                  64 MiB region; floor: memcpy of 64 MiB (bytes/s reported)
//   restart_1      one iteration = kill a program, then the supervisor's
//                  restart (re-grant) and the new process's restore, until it
//                  runs again; persim_regrant_restore times the brief's
//                  figure (re-grant + restore), persim_kill_to_running the
//                  whole cycle; floor: a raw fiber create + first resume
//   durable_1k     persim_backend_batch: one iteration = one transaction of
//                  the durable backend alone (a batch of 1 KiB images,
//                  synced, real file); persim_store: one iteration = one
//                  acknowledged checkpoint of each of N programs through the
//                  store's durable backend on the simulated disk; floor: a
//                  4 KiB write + fsync (items/s = durable images per second)
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <unistd.h>

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "bench/restart_rig.hpp"
#include "kernel/node.hpp"
#include "kernel/sys.hpp"
#include "libpersist/image.hpp"
#include "libpersist/persist.hpp"
#include "servers/ckpt/durable.hpp"
#include "servers/system.hpp"

namespace {

namespace ctx = boost::context;
using namespace persim;
using kernel::Sys;
using persist::Persistent;

constexpr std::size_t state_bytes = 1024;
constexpr std::size_t region_bytes = std::size_t{64} << 20;

servers::Manifest manifest(std::string instance, std::vector<servers::GrantSpec> grants) {
  servers::Manifest m;
  m.instance = instance;
  m.program = std::move(instance);
  m.grants = std::move(grants);
  return m;
}

servers::GrantSpec grant(std::string name, std::string source, std::string mode = {}) {
  return servers::parse_grant(name, source, mode).value();
}

// Deterministic, not all zeros: the copies below move real bytes.
void fill(std::span<std::byte> bytes) {
  std::uint64_t x = 0x9e3779b97f4a7c15;
  for (std::byte& b : bytes) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<std::byte>(x);
  }
}

// ---------------------------------------------------------------- checkpoint_1k

// Floor: memcpy of the same 1 KiB the checkpoint writes, in the same binary.
void floor_memcpy_1k(benchmark::State& state) {
  std::vector<std::byte> src(state_bytes), dst(state_bytes);
  fill(src);
  for (auto _ : state) {
    benchmark::DoNotOptimize(src.data());
    std::memcpy(dst.data(), src.data(), state_bytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * state_bytes));
}

// persim: a program process under a System with the standard servers (console,
// file server, key-value store, checkpoint store) and the supervisor, started
// from a manifest that grants it "ckpt". It declares a 1 KiB field, restores
// (a fresh start), and the benchmark loop runs inside the process: each
// iteration changes one byte of the state and calls Persistent::checkpoint().
// That is: the snapshot (the field copied into an image entry, plus the
// persisted random stream), persist::encode (header, entries, XXH3 checksum),
// and the write to the checkpoint store over IPC: the image copied into the
// process's kernel buffer, a stage call lending the buffer (the store copies
// it into its staging image), a commit call (the store puts the image in its
// trusted storage and keeps the newest two). Nothing is skipped for the
// benchmark.
// A program's 1 KiB state, declared as one field, and its restore (a fresh
// start). False, with `*failure` set, if the restore failed.
bool declare_and_restore(Persistent& p, std::vector<std::byte>& bytes, std::string* failure) {
  bytes.assign(state_bytes, std::byte{0});
  fill(bytes);
  p.field("state", bytes);
  if (const persist::PersistStatus s = p.restore(); !s) {
    *failure = "restore: " + s.what;
    return false;
  }
  return true;
}

void persim_checkpoint_1k(benchmark::State& state) {
  servers::System system;
  system.add_standard_servers();
  bool finished = false;
  std::string failure;
  std::uint64_t last_version = 0;
  const kernel::Status added = system.add_program("app", [&](Sys& sys) {
    Persistent p(sys, {.program = "app"});
    std::vector<std::byte> bytes;
    if (!declare_and_restore(p, bytes, &failure)) return;
    std::size_t i = 0;
    for (auto _ : state) {
      bytes[i++ % state_bytes] ^= std::byte{1};
      if (const persist::PersistStatus s = p.checkpoint(&last_version); !s) {
        failure = "checkpoint: " + s.what;
        return;
      }
    }
    finished = true;
  });
  system.add(manifest("app", {grant("ckpt", "ckpt")}));
  if (!added || !system.boot()) {
    state.SkipWithError("cannot set up the system");
    return;
  }
  system.node().run();
  if (!failure.empty()) {
    state.SkipWithError(failure.c_str());
    return;
  }
  if (!finished || last_version != static_cast<std::uint64_t>(state.iterations())) {
    state.SkipWithError("not every checkpoint was written");
    return;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * state_bytes));
}

// ---------------------------------------------------------------- encode_64m

// Floor: memcpy of 64 MiB, both buffers touched beforehand (no page faults in
// the loop), in the same binary and run.
void floor_memcpy_64m(benchmark::State& state) {
  std::vector<std::byte> src(region_bytes), dst(region_bytes);
  fill(src);
  for (auto _ : state) {
    benchmark::DoNotOptimize(src.data());
    std::memcpy(dst.data(), src.data(), region_bytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * region_bytes));
}

// persim: persist::encode of an Image holding one 64 MiB region entry, into an
// output buffer reused from one iteration to the next (as Persistent reuses
// its buffer; the buffer's pages are touched before the loop, like the
// floor's). One iteration is a whole image: header, the region copied into the
// image, and the XXH3-64 checksum over it. Bytes processed = the region.
void persim_encode_64m(benchmark::State& state) {
  persist::Image image;
  image.program = "app";
  image.program_version = 1;
  image.sequence = 1;
  persist::Entry& region = image.entries.emplace_back();
  region.kind = persist::EntryKind::region;
  region.name = "heap";
  region.bytes.resize(region_bytes);
  fill(region.bytes);
  std::vector<std::byte> out;
  persist::encode(image, out);
  if (!std::holds_alternative<persist::Image>(persist::decode(out))) {
    state.SkipWithError("the encoded image does not decode");
    return;
  }
  for (auto _ : state) {
    persist::encode(image, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * region_bytes));
}

// ---------------------------------------------------------------- restart_1

// The floor: a raw Boost.Context fiber created on a pooled stack, resumed for
// the first time, and run to its end (its stack goes back to the pool). Why
// this one rather than an IPC round trip: a restart is, at bottom, one
// execution context retired and a new one created and run to its first
// instructions; this is that, with nothing else, on the same kind of stack
// (pooled, 64 KiB) persim's processes run on. An IPC round trip is only one of
// the many messages a restart needs (the restart_1/persim counters give the
// number of kernel calls and fiber switches per restart), so it would be the
// floor of a part of the work, not of the whole.
class OneStack {
 public:
  explicit OneStack(std::size_t bytes) : bytes_(bytes), memory_(static_cast<char*>(std::malloc(bytes))) {}
  ~OneStack() { std::free(memory_); }
  OneStack(const OneStack&) = delete;
  OneStack& operator=(const OneStack&) = delete;
  char* top() const { return memory_ + bytes_; }
  std::size_t bytes() const { return bytes_; }

 private:
  std::size_t bytes_;
  char* memory_;
};

class OneStackAllocator {
 public:
  explicit OneStackAllocator(OneStack& stack) : stack_(&stack) {}
  ctx::stack_context allocate() {
    ctx::stack_context sctx;
    sctx.sp = stack_->top();
    sctx.size = stack_->bytes();
    return sctx;
  }
  void deallocate(ctx::stack_context&) noexcept {}

 private:
  OneStack* stack_;
};

void floor_fiber_create_resume(benchmark::State& state) {
  OneStack stack(kernel::stack_bytes_default);
  std::uint64_t ran = 0;
  for (auto _ : state) {
    ctx::fiber f(std::allocator_arg, OneStackAllocator(stack), [&ran](ctx::fiber&& back) {
      ++ran;
      return std::move(back);
    });
    f = std::move(f).resume();  // runs to its end; `f` is empty again
    benchmark::DoNotOptimize(f);
  }
  if (ran != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("a fiber did not run");
  state.SetItemsProcessed(state.iterations());
}

// persim: the system of bench/restart_rig.hpp (a program with a field, a file
// and a console session under the supervisor, restarted on every exit), killed
// and restarted once per iteration. The window says which part is timed, by the
// wall clock: the restart proper, the brief's "re-grant + restore" (from the
// supervisor scheduling the restart to restore() returning in the new
// process), or the whole cycle (from just before the kill to the same point:
// the old incarnation's teardown included). Counters: kernel calls and fiber
// switches per iteration (the untimed check and block after the restore
// included: one stat, one endpoint_create, one receive).
enum class RestartWindow : std::uint8_t { regrant_restore, kill_to_running };

void persim_restart(benchmark::State& state, RestartWindow window) {
  using Clock = std::chrono::steady_clock;
  Clock::time_point scheduled{}, running_again{};
  bench::RestartRig rig([&scheduled] { scheduled = Clock::now(); },
                        [&running_again] { running_again = Clock::now(); });
  if (!rig.boot()) {
    state.SkipWithError(rig.failure().c_str());
    return;
  }
  const kernel::NodeStats before = rig.node().stats();
  for (auto _ : state) {
    const std::optional<kernel::ProcessId> pid = rig.program_process();
    scheduled = {};
    const Clock::time_point start = Clock::now();
    if (!rig.restart(pid)) {
      state.SkipWithError(rig.failure().c_str());
      return;
    }
    if (scheduled < start || running_again < scheduled) {
      state.SkipWithError("the restart was not scheduled between the kill and the restore");
      return;
    }
    const Clock::time_point from = window == RestartWindow::regrant_restore ? scheduled : start;
    state.SetIterationTime(std::chrono::duration<double>(running_again - from).count());
  }
  const kernel::NodeStats after = rig.node().stats();
  const double n = static_cast<double>(state.iterations());
  state.counters["kernel_calls"] = static_cast<double>(after.kernel_calls - before.kernel_calls) / n;
  state.counters["switches"] = static_cast<double>(after.switches - before.switches) / n;
  state.SetItemsProcessed(state.iterations());
}

// ---------------------------------------------------------------- durable_1k

// The durable figure of the brief is end to end: checkpoints acknowledged by
// the checkpoint store once they are on disk, many processes' images in one
// transaction (group commit). Two figures:
// - persim_backend_batch: the backend alone, DurableImages::commit of a batch
//   of 1 KiB images on a real file (SQLite, WAL, synchronous=FULL: one fsync
//   of the log per transaction), no IPC;
// - persim_store: end to end, N programs each checkpointing a 1 KiB state in a
//   loop through the checkpoint store with its durable backend, on the node's
//   simulated disk (SimDisk: a sync is a copy in memory, no real fsync), group
//   commit window 50 us virtual. Every checkpoint is acknowledged only once its
//   transaction is synced.
// Floor: one 4 KiB pwrite + fsync of a file in the same directory, in the
// same binary. Items processed = images made durable.

class TempDir {
 public:
  TempDir() : path_(std::filesystem::temp_directory_path() / ("persim-bench-durable-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

void floor_write_fsync_4k(benchmark::State& state) {
  TempDir dir;
  const int fd = ::open(dir.file("floor").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    state.SkipWithError("cannot create a file");
    return;
  }
  std::vector<std::byte> block(4096);
  fill(block);
  for (auto _ : state) {
    if (::pwrite(fd, block.data(), block.size(), 0) != static_cast<ssize_t>(block.size()) || ::fsync(fd) != 0) {
      state.SkipWithError("write or fsync failed");
      break;
    }
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations());
}

// One iteration: a transaction putting `batch` images of 1 KiB (one per slot,
// each slot's next version) and erasing each slot's version before the
// previous (the store keeps two per slot), committed and synced.
void persim_durable_batch(benchmark::State& state) {
  const auto batch_size = static_cast<std::size_t>(state.range(0));
  TempDir dir;
  auto opened = servers::DurableImages::open(dir.file("ckpt.db"), nullptr);
  if (auto* e = std::get_if<std::string>(&opened)) {
    state.SkipWithError(e->c_str());
    return;
  }
  servers::DurableImages& db = *std::get<std::unique_ptr<servers::DurableImages>>(opened);
  servers::DurableImages::Batch batch;
  for (std::size_t i = 0; i < batch_size; ++i) {
    servers::StoredImage& image = batch.puts.emplace_back();
    image.slot = "program-" + std::to_string(i);
    image.bytes.resize(state_bytes);
    fill(image.bytes);
  }
  std::uint64_t version = 0;
  for (auto _ : state) {
    ++version;
    batch.erases.clear();
    for (servers::StoredImage& image : batch.puts) {
      image.version = version;
      image.bytes[version % state_bytes] ^= std::byte{1};
      if (version > 2) batch.erases.emplace_back(image.slot, version - 2);
    }
    if (const std::optional<std::string> e = db.commit(batch)) {
      state.SkipWithError(e->c_str());
      break;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch_size));
}

// One iteration: every one of the N programs has had one more checkpoint
// acknowledged (the node run in steps of 10 us virtual until the store's
// commits grew by N). Counters: syncs of the simulated disk per second of
// wall time, and images per transaction.
void persim_durable_store(benchmark::State& state) {
  const auto programs = static_cast<std::uint64_t>(state.range(0));
  servers::System system;
  system.use_durable_checkpoints(50'000);
  system.add_standard_servers();
  std::string failure;
  for (std::uint64_t i = 0; i < programs; ++i) {
    const std::string name = "app" + std::to_string(i);
    const kernel::Status added = system.add_program(name, [&failure, i](Sys& sys) {
      Persistent p(sys, {.program = "app"});
      std::vector<std::byte> bytes;
      if (!declare_and_restore(p, bytes, &failure)) return;
      for (std::size_t n = i;; ++n) {
        bytes[n % state_bytes] ^= std::byte{1};
        if (const persist::PersistStatus s = p.checkpoint(); !s) {
          failure = "checkpoint: " + s.what;
          return;
        }
      }
    });
    if (!added) {
      state.SkipWithError("cannot add a program");
      return;
    }
    system.add(manifest(name, {grant("ckpt", "ckpt")}));
  }
  if (!system.boot()) {
    state.SkipWithError("cannot boot");
    return;
  }
  auto run_until_commits = [&](std::uint64_t target) {
    while (system.ckpt().stats.commits < target && failure.empty())
      system.node().run({.until_ns = system.node().now_ns() + 10'000});
  };
  run_until_commits(programs);  // every program started and checkpointed once
  const std::uint64_t commits_before = system.ckpt().stats.commits;
  const std::uint64_t syncs_before = system.disk()->stats().syncs;
  const std::uint64_t transactions_before = system.ckpt().stats.transactions;
  for (auto _ : state) run_until_commits(system.ckpt().stats.commits + programs);
  if (!failure.empty()) {
    state.SkipWithError(failure.c_str());
    return;
  }
  const std::uint64_t images = system.ckpt().stats.commits - commits_before;
  const std::uint64_t transactions = system.ckpt().stats.transactions - transactions_before;
  state.SetItemsProcessed(static_cast<std::int64_t>(images));
  state.counters["syncs_per_s"] =
      benchmark::Counter(static_cast<double>(system.disk()->stats().syncs - syncs_before), benchmark::Counter::kIsRate);
  state.counters["images_per_transaction"] =
      transactions == 0 ? 0 : static_cast<double>(images) / static_cast<double>(transactions);
}

}  // namespace

BENCHMARK(floor_memcpy_1k)->Name("checkpoint_1k/floor_memcpy_1k");
BENCHMARK(persim_checkpoint_1k)->Name("checkpoint_1k/persim");
BENCHMARK(floor_memcpy_64m)->Name("encode_64m/floor_memcpy_64m");
BENCHMARK(persim_encode_64m)->Name("encode_64m/persim");
BENCHMARK(floor_fiber_create_resume)->Name("restart_1/floor_fiber_create_resume");
BENCHMARK_CAPTURE(persim_restart, regrant_restore, RestartWindow::regrant_restore)
    ->Name("restart_1/persim_regrant_restore")
    ->UseManualTime();
BENCHMARK_CAPTURE(persim_restart, kill_to_running, RestartWindow::kill_to_running)
    ->Name("restart_1/persim_kill_to_running")
    ->UseManualTime();
BENCHMARK(floor_write_fsync_4k)->Name("durable_1k/floor_write_fsync_4k")->UseRealTime();
BENCHMARK(persim_durable_batch)->Name("durable_1k/persim_backend_batch")->Arg(1)->Arg(256)->Arg(4096)->UseRealTime();
BENCHMARK(persim_durable_store)->Name("durable_1k/persim_store")->Arg(16)->Arg(256)->UseRealTime();

BENCHMARK_MAIN();
