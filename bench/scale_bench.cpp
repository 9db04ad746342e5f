// Scale: N processes on one node, each owning one endpoint capability and blocked
// in receive on it. Measures wall time to create, start and run them all to
// quiescence, resident memory per process, and teardown. A one-shot measurement,
// not a Google Benchmark loop. Wall time uses std::chrono::steady_clock: this is
// the harness, outside the simulated world.
//
// Usage: persim-bench-scale [N] [--no-reference] [--no-persim]
//   N               processes (default 1000000)
//   --no-reference  skip the reference phase (N raw Boost.Context fibers on the
//                   same stack size, each suspended once: no kernel objects)
//   --no-persim     skip the persim phase
//
// Prints one summary line and one JSON line per phase. See docs/performance.md.
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernel/node.hpp"
#include "kernel/sys.hpp"

namespace {

namespace ctx = boost::context;
using namespace persim::kernel;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::size_t page_bytes() { return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)); }

// Resident set size, from /proc/self/statm (second field, in pages).
std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size_pages = 0, resident_pages = 0;
  statm >> size_pages >> resident_pages;
  return resident_pages * page_bytes();
}

// Peak resident set size (VmHWM), in bytes.
std::size_t peak_resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

// Resets VmHWM to the current RSS, so each phase reports its own peak.
void reset_peak_resident() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
}

// Bytes handed out by malloc (kernel objects, tables, capability slots).
std::size_t heap_bytes() {
  const struct mallinfo2 mi = ::mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// Memory mappings (VMAs) of the process; Linux allows vm.max_map_count of them.
std::size_t mapping_count() {
  std::ifstream maps("/proc/self/maps");
  std::size_t n = 0;
  std::string line;
  while (std::getline(maps, line)) ++n;
  return n;
}

struct Measurement {
  const char* phase;
  std::size_t n = 0;
  double create_s = 0;  // create + start (persim), create (reference)
  double run_s = 0;     // run to quiescence (persim), first resume of each fiber (reference)
  double teardown_s = 0;
  std::size_t rss_before = 0;
  std::size_t rss_after = 0;
  std::size_t heap_before = 0;
  std::size_t heap_after = 0;
  std::size_t peak_rss = 0;
  std::size_t mappings = 0;
  bool ok = true;

  double total_s() const { return create_s + run_s; }
  double rss_per_process() const { return n ? static_cast<double>(rss_after - rss_before) / static_cast<double>(n) : 0; }
  double heap_per_process() const {
    return n ? (static_cast<double>(heap_after) - static_cast<double>(heap_before)) / static_cast<double>(n) : 0;
  }

  void print() const {
    std::printf(
        "%s: n=%zu  create+start+run=%.3f s (create+start %.3f s, run %.3f s, %.0f ns/process)  "
        "resident +%.1f MiB = %.0f B/process (heap %.0f B/process)  peak RSS %.1f MiB  mappings %zu  "
        "teardown %.3f s%s\n",
        phase, n, total_s(), create_s, run_s, n ? total_s() * 1e9 / static_cast<double>(n) : 0.0,
        static_cast<double>(rss_after - rss_before) / (1024.0 * 1024.0), rss_per_process(), heap_per_process(),
        static_cast<double>(peak_rss) / (1024.0 * 1024.0), mappings, teardown_s, ok ? "" : "  FAILED");
    std::printf(
        "{\"phase\":\"%s\",\"processes\":%zu,\"create_start_s\":%.6f,\"run_s\":%.6f,\"total_s\":%.6f,"
        "\"ns_per_process\":%.1f,\"rss_before_bytes\":%zu,\"rss_after_bytes\":%zu,\"rss_bytes_per_process\":%.1f,"
        "\"heap_bytes_per_process\":%.1f,\"peak_rss_bytes\":%zu,\"mappings\":%zu,\"teardown_s\":%.6f,"
        "\"page_bytes\":%zu,\"ok\":%s}\n",
        phase, n, create_s, run_s, total_s(), n ? total_s() * 1e9 / static_cast<double>(n) : 0.0, rss_before,
        rss_after, rss_per_process(), heap_per_process(), peak_rss, mappings, teardown_s, page_bytes(),
        ok ? "true" : "false");
    std::fflush(stdout);
  }
};

// ---------------------------------------------------------------- persim

Measurement run_persim(std::size_t n) {
  Measurement m{"persim"};
  m.n = n;
  reset_peak_resident();
  auto node = std::make_unique<Node>();  // default NodeConfig (64 KiB stacks, first 16384 guarded)
  m.rss_before = resident_bytes();
  m.heap_before = heap_bytes();

  const Clock::time_point t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    // Short enough for the std::string small-buffer: no heap allocation per name.
    char name[16];
    const int len = std::snprintf(name, sizeof name, "w%zu", i);
    const Result<ProcessId> pid = node->create_process(std::string(name, static_cast<std::size_t>(len)));
    if (!pid) {
      std::fprintf(stderr, "create_process %zu: %s\n", i, std::string(to_string(pid.error())).c_str());
      m.ok = false;
      m.n = i;
      break;
    }
    const Result<Handle> ep = node->create_endpoint(pid.value());
    if (!ep) {
      std::fprintf(stderr, "create_endpoint %zu: %s\n", i, std::string(to_string(ep.error())).c_str());
      m.ok = false;
      m.n = i;
      break;
    }
    const Handle h = ep.value();
    const Status started = node->start(pid.value(), [h](Sys& sys) {
      Message request;
      const Result<Received> r = sys.receive(Cap<Endpoint>(h), request);
      (void)r;  // never reached: nobody calls
    });
    if (!started) {
      std::fprintf(stderr, "start %zu failed\n", i);
      m.ok = false;
      m.n = i;
      break;
    }
  }
  m.create_s = seconds_since(t0);

  const Clock::time_point t1 = Clock::now();
  const RunOutcome outcome = node->run();
  m.run_s = seconds_since(t1);

  m.rss_after = resident_bytes();
  m.heap_after = heap_bytes();
  m.peak_rss = peak_resident_bytes();
  m.mappings = mapping_count();
  const NodeStats stats = node->stats();
  if (outcome != RunOutcome::quiescent || stats.live_processes != m.n || stats.ready != 0 || stats.endpoints != m.n ||
      stats.stacks_in_use != m.n) {
    std::fprintf(stderr, "unexpected end state: outcome=%d live=%zu ready=%zu endpoints=%zu stacks=%zu\n",
                 static_cast<int>(outcome), stats.live_processes, stats.ready, stats.endpoints, stats.stacks_in_use);
    m.ok = false;
  }

  const Clock::time_point t2 = Clock::now();
  node.reset();  // kills every process: each stack unwinds
  m.teardown_s = seconds_since(t2);
  return m;
}

// ---------------------------------------------------------------- reference

// Stacks for the reference fibers: the same size as persim's, carved from
// chunks of 256 mapped with MAP_NORESERVE, no guard pages, never reused.
class ChunkStacks {
 public:
  explicit ChunkStacks(std::size_t stack_bytes) : stack_bytes_(stack_bytes) {}
  ~ChunkStacks() {
    for (void* c : chunks_) ::munmap(c, stack_bytes_ * per_chunk);
  }
  ChunkStacks(const ChunkStacks&) = delete;
  ChunkStacks& operator=(const ChunkStacks&) = delete;

  ctx::stack_context allocate() {
    if (next_ == per_chunk) {
      void* c = ::mmap(nullptr, stack_bytes_ * per_chunk, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (c == MAP_FAILED) {
        std::perror("mmap");
        std::abort();
      }
      chunks_.push_back(c);
      next_ = 0;
    }
    ctx::stack_context sctx;
    sctx.size = stack_bytes_;
    sctx.sp = static_cast<char*>(chunks_.back()) + (next_ + 1) * stack_bytes_;
    ++next_;
    return sctx;
  }

 private:
  static constexpr std::size_t per_chunk = 256;
  std::size_t stack_bytes_;
  std::size_t next_ = per_chunk;
  std::vector<void*> chunks_;
};

struct ChunkStackAllocator {
  ChunkStacks* stacks;
  ctx::stack_context allocate() { return stacks->allocate(); }
  void deallocate(ctx::stack_context&) noexcept {}  // the chunks go with ChunkStacks
};

// N raw fibers, each started and suspended once (holding its continuation): the
// least a suspended fiber costs, with nothing of persim around it.
Measurement run_reference(std::size_t n) {
  Measurement m{"reference_raw_fibers"};
  m.n = n;
  reset_peak_resident();
  auto stacks = std::make_unique<ChunkStacks>(stack_bytes_default);
  auto fibers = std::make_unique<std::vector<ctx::fiber>>();
  m.rss_before = resident_bytes();
  m.heap_before = heap_bytes();

  const Clock::time_point t0 = Clock::now();
  fibers->reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    fibers->emplace_back(std::allocator_arg, ChunkStackAllocator{stacks.get()}, [](ctx::fiber&& back) {
      back = std::move(back).resume();  // suspend once; resumed (unwound) at teardown
      return std::move(back);
    });
  }
  m.create_s = seconds_since(t0);

  const Clock::time_point t1 = Clock::now();
  for (ctx::fiber& f : *fibers) f = std::move(f).resume();  // runs to its suspension point
  m.run_s = seconds_since(t1);

  m.rss_after = resident_bytes();
  m.heap_after = heap_bytes();
  m.peak_rss = peak_resident_bytes();
  m.mappings = mapping_count();

  const Clock::time_point t2 = Clock::now();
  fibers.reset();  // each suspended fiber is unwound (forced_unwind)
  stacks.reset();
  m.teardown_s = seconds_since(t2);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 1'000'000;
  bool reference = true;
  bool persim = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-reference") == 0) {
      reference = false;
    } else if (std::strcmp(argv[i], "--no-persim") == 0) {
      persim = false;
    } else if (argv[i][0] >= '0' && argv[i][0] <= '9') {
      n = std::strtoull(argv[i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: %s [N] [--no-reference] [--no-persim]\n", argv[0]);
      return 2;
    }
  }
  if (n == 0 || n >= processes_max) {
    std::fprintf(stderr, "N must be in [1, %u)\n", processes_max);
    return 2;
  }
  std::printf("persim-bench-scale: N=%zu, stack %zu KiB, page %zu B\n", n, stack_bytes_default / 1024, page_bytes());
  bool ok = true;
  if (reference) {
    const Measurement r = run_reference(n);
    r.print();
    ok = ok && r.ok;
  }
  if (persim) {
    const Measurement p = run_persim(n);
    p.print();
    ok = ok && p.ok;
  }
  return ok ? 0 : 1;
}
