// Whole runs of a random workload: clients calling servers (some servers
// forwarding to the next one), with random sleeps and derivations, every
// choice drawn from the processes' own random streams.
//
// Invariant 8, determinism: the same workload and seed give the same trace hash
// and the same event sequence; another seed gives another hash.
//
// Kill property: a process killed at a random point (its n-th kernel call, or a
// random virtual time) leaves no capability, waiter or stack behind: it holds
// nothing, nobody is left blocked on it, every other client finishes, and the
// kernel's tables are consistent. Before the kill, the run is the uninterrupted
// run, event for event.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <vector>

#include "support/harness.hpp"

namespace persim::kernel {
namespace {

using persim::testing::expect_consistent;

struct Workload {
  int servers = 1;            // server k forwards to k + 1 when `chain`
  int clients = 1;
  int calls_per_client = 1;
  bool chain = false;
  std::uint64_t sleep_ns_max = 1;  // clients sleep 1..sleep_ns_max between calls
  std::uint64_t work_ns_max = 0;   // servers sleep 0..work_ns_max before replying, so callers queue
};

void showValue(const Workload& w, std::ostream& os) {
  os << "{servers " << w.servers << ", clients " << w.clients << ", calls " << w.calls_per_client << ", chain "
     << w.chain << ", sleep_ns_max " << w.sleep_ns_max << ", work_ns_max " << w.work_ns_max << "}";
}

rc::Gen<Workload> workloads() {
  return rc::gen::build<Workload>(rc::gen::set(&Workload::servers, rc::gen::inRange(1, 4)),
                                  rc::gen::set(&Workload::clients, rc::gen::inRange(1, 5)),
                                  rc::gen::set(&Workload::calls_per_client, rc::gen::inRange(1, 9)),
                                  rc::gen::set(&Workload::chain, rc::gen::arbitrary<bool>()),
                                  rc::gen::set(&Workload::sleep_ns_max, rc::gen::inRange<std::uint64_t>(1, 5000)),
                                  rc::gen::set(&Workload::work_ns_max, rc::gen::inRange<std::uint64_t>(0, 3000)));
}

// Keeps every event of a run.
class Recorder : public TraceSink {
 public:
  void on_event(const TraceEvent& e) override { events.push_back(e); }
  std::vector<TraceEvent> events;
};

bool same(const TraceEvent& a, const TraceEvent& b) {
  return a.time_ns == b.time_ns && a.process == b.process && a.process_generation == b.process_generation &&
         a.op == b.op && a.error == b.error && a.peer == b.peer && a.arg == b.arg;
}

// One run of a workload on a fresh node; what the properties look at.
struct Run {
  ProcessId keeper;  // never runs; holds a process capability to every other
                     // process so each one's kernel-call count outlives it
  std::vector<ProcessId> servers;
  std::vector<ProcessId> clients;
  std::vector<int> calls_done;  // per client
  std::vector<TraceEvent> events;
  std::uint64_t trace_hash = 0;
  std::vector<std::uint64_t> kernel_calls;  // per process: servers, then clients
};

// Builds the workload on `node`. Client i records its finished calls in
// `calls_done[i]`, which must outlive the run.
void build(Node& node, const Workload& w, Run& run) {
  run.keeper = node.create_process("keeper").value();
  std::vector<Handle> endpoints;
  for (int k = 0; k < w.servers; ++k) {
    run.servers.push_back(node.create_process("server-" + std::to_string(k)).value());
    endpoints.push_back(node.create_endpoint(run.servers.back()).value());
  }
  for (int k = 0; k < w.servers; ++k) {
    Handle next;
    if (w.chain && k + 1 < w.servers)
      next = node.grant(run.servers[static_cast<std::size_t>(k + 1)], endpoints[static_cast<std::size_t>(k + 1)],
                        run.servers[static_cast<std::size_t>(k)], Rights::send())
                 .value();
    const Handle ep = endpoints[static_cast<std::size_t>(k)];
    const std::uint64_t work_ns_max = w.work_ns_max;
    const Status started = node.start(run.servers[static_cast<std::size_t>(k)], [ep, next, work_ns_max](Sys& sys) {
      Message request{}, response{}, inner{};
      Result<Received> r = sys.receive(Cap<Endpoint>(ep), request);
      while (r) {
        std::uint64_t value = request.get<std::uint64_t>(0);
        response = {};
        if (!next.is_null()) {
          // Forward; a failure downstream is reported upstream, not fatal.
          const Status forwarded = sys.call(Cap<Endpoint>(next), request, inner);
          if (forwarded) value = inner.get<std::uint64_t>(0);
          response.label = forwarded ? 0 : 1;
        }
        response.put<std::uint64_t>(0, value + 1);
        if (work_ns_max > 0 && !sys.sleep_for(sys.random_below(work_ns_max + 1))) return;
        r = sys.reply_receive(r->reply, response, Cap<Endpoint>(ep), request);
      }
    });
    EXPECT_TRUE(started.ok());
  }
  run.calls_done.assign(static_cast<std::size_t>(w.clients), 0);
  for (int i = 0; i < w.clients; ++i) {
    const ProcessId client = node.create_process("client-" + std::to_string(i)).value();
    run.clients.push_back(client);
    std::vector<Handle> caps;
    for (int k = 0; k < w.servers; ++k)
      caps.push_back(node.grant(run.servers[static_cast<std::size_t>(k)], endpoints[static_cast<std::size_t>(k)],
                                client, Rights::send() | Rights::derive())
                         .value());
    int* done = &run.calls_done[static_cast<std::size_t>(i)];
    const Status started = node.start(client, [caps, w, done](Sys& sys) {
      Message request{}, response{};
      for (int c = 0; c < w.calls_per_client; ++c) {
        const Cap<Endpoint> server(caps[sys.random_below(caps.size())]);
        if (sys.random_below(4) == 0) {
          // Exercise the capability space: a short-lived narrowed copy.
          const Result<Cap<Endpoint>> copy = sys.derive(server, Rights::send());
          if (!copy || !sys.delete_cap(*copy)) return;
        }
        request = {};
        request.put<std::uint64_t>(0, sys.random());
        if (!sys.call(server, request, response)) return;  // the server is gone: stop
        ++*done;
        if (!sys.sleep_for(1 + sys.random_below(w.sleep_ns_max))) return;
      }
    });
    EXPECT_TRUE(started.ok());
  }
  for (const auto* group : {&run.servers, &run.clients})
    for (const ProcessId p : *group) EXPECT_TRUE(node.create_process_cap(run.keeper, p).ok());
}

NodeConfig config(std::uint64_t seed) {
  NodeConfig c;
  c.seed = seed;
  c.kernel_call_cost_ns = 100;
  return c;
}

Run run_workload(const Workload& w, std::uint64_t seed) {
  Node node(config(seed));
  Recorder recorder;
  node.set_trace_sink(&recorder);
  Run run;
  build(node, w, run);
  RC_ASSERT(node.run() == RunOutcome::quiescent);
  run.events = std::move(recorder.events);
  run.trace_hash = node.trace_hash();
  for (const auto* group : {&run.servers, &run.clients})
    for (const ProcessId p : *group) run.kernel_calls.push_back(node.kernel_calls(p));
  return run;
}

RC_GTEST_PROP(Determinism, SameSeedSameTraceOtherSeedOtherHash, ()) {
  const Workload w = *workloads();
  const auto seed = *rc::gen::arbitrary<std::uint64_t>();
  const Run a = run_workload(w, seed);
  const Run b = run_workload(w, seed);
  RC_ASSERT(a.trace_hash == b.trace_hash);
  RC_ASSERT(a.events.size() == b.events.size());
  RC_ASSERT(std::equal(a.events.begin(), a.events.end(), b.events.begin(), same));
  const Run c = run_workload(w, seed + 1);
  RC_ASSERT(a.trace_hash != c.trace_hash);
}

enum class KillBy : std::uint8_t { nth_kernel_call, virtual_time };

void showValue(KillBy k, std::ostream& os) { os << (k == KillBy::nth_kernel_call ? "nth_kernel_call" : "virtual_time"); }

RC_GTEST_PROP(Kill, AtARandomPointLeavesNothingBehind, ()) {
  const Workload w = *workloads();
  const auto seed = *rc::gen::arbitrary<std::uint64_t>();
  const Run uninterrupted = run_workload(w, seed);
  const std::size_t processes = uninterrupted.servers.size() + uninterrupted.clients.size();
  const auto victim_index = *rc::gen::inRange<std::size_t>(0, processes);
  const bool victim_is_server = victim_index < uninterrupted.servers.size();
  const ProcessId victim_id = victim_is_server ? uninterrupted.servers[victim_index]
                                               : uninterrupted.clients[victim_index - uninterrupted.servers.size()];
  // How many kernel calls the victim made uninterrupted, and when the run ended.
  const std::uint64_t victim_calls = uninterrupted.kernel_calls[victim_index];
  const std::uint64_t end_ns = uninterrupted.events.empty() ? 0 : uninterrupted.events.back().time_ns;
  const KillBy how = *rc::gen::element(KillBy::nth_kernel_call, KillBy::virtual_time);
  RC_PRE(how == KillBy::virtual_time || victim_calls > 0);
  const std::uint64_t at = how == KillBy::nth_kernel_call ? *rc::gen::inRange<std::uint64_t>(1, victim_calls + 1)
                                                          : *rc::gen::inRange<std::uint64_t>(0, end_ns + 1);
  RC_TAG(how == KillBy::nth_kernel_call ? "by kernel call" : "by time", victim_is_server ? "server" : "client");

  Node node(config(seed));
  Recorder recorder;
  node.set_trace_sink(&recorder);
  Run run;
  build(node, w, run);
  const ProcessId victim = victim_is_server ? run.servers[victim_index] : run.clients[victim_index - run.servers.size()];
  RC_ASSERT(victim == victim_id);
  if (how == KillBy::nth_kernel_call) {
    RC_ASSERT(node.faults().kill_at_call(victim, at).ok());
  } else {
    // A client may have finished by then: nothing to kill.
    node.at(at, [victim](Node& n) {
      if (n.alive(victim)) (void)n.kill(victim);
    });
  }
  RC_ASSERT(node.run() == RunOutcome::quiescent);

  // Up to the kill (the host event that kills, or the death itself), this run
  // is the uninterrupted one.
  const auto death = std::find_if(recorder.events.begin(), recorder.events.end(),
                                  [&](const TraceEvent& e) { return e.op == Op::death || e.op == Op::timer; });
  const auto prefix = static_cast<std::size_t>(death - recorder.events.begin());
  RC_ASSERT(prefix <= uninterrupted.events.size());
  RC_ASSERT(std::equal(recorder.events.begin(), death, uninterrupted.events.begin(), same));

  // The victim holds nothing.
  RC_ASSERT(!node.alive(victim));
  if (how == KillBy::nth_kernel_call) RC_ASSERT(node.exit_reason(victim) == ExitReason::killed);
  RC_ASSERT(node.handles(victim).empty());
  // Nobody is left waiting on it: every surviving client finished (ran all its
  // calls, or stopped at an error), every surviving server waits for a call.
  for (const ProcessId c : run.clients)
    if (c != victim) RC_ASSERT(!node.alive(c));
  std::size_t caps_held = node.handles(run.keeper).size();
  for (const ProcessId s : run.servers) {
    if (s == victim) continue;
    RC_ASSERT(node.state(s) == ProcessState::blocked_receive);
    caps_held += node.handles(s).size();
  }
  // No stack, reply or capability survives beyond the servers' own.
  const NodeStats stats = node.stats();
  RC_ASSERT(stats.stacks_in_use == run.servers.size() - (victim_is_server ? 1 : 0));
  RC_ASSERT(stats.replies == 0u);
  RC_ASSERT(stats.capabilities == caps_held);
  RC_ASSERT(node.check_invariants().empty());
  // A client that did not depend on the victim lost nothing: when the victim is
  // a client, every other client made all its calls.
  if (!victim_is_server) {
    for (std::size_t i = 0; i < run.clients.size(); ++i)
      if (run.clients[i] != victim) RC_ASSERT(run.calls_done[i] == w.calls_per_client);
  }
}

}  // namespace
}  // namespace persim::kernel
