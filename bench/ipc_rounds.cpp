// A fixed number of IPC round trips, for instruction counting under callgrind:
// the same client/server pair as ipc_call_reply/persim in ipc_bench.cpp, without
// Google Benchmark's timing loop around it. Instructions per round trip are the
// difference of two runs divided by the difference of their counts:
//
//   valgrind --tool=callgrind --callgrind-out-file=/dev/null build/bench/bench/persim-ipc-rounds 10000
//   valgrind --tool=callgrind --callgrind-out-file=/dev/null build/bench/bench/persim-ipc-rounds 20000
//
// (the "Collected" lines; setup and teardown cancel out). See docs/performance.md.
#include <cstdint>
#include <cstdio>
#include <optional>

#include "bench/count_arg.hpp"
#include "kernel/node.hpp"
#include "kernel/sys.hpp"

using namespace persim::kernel;

int main(int argc, char** argv) {
  const std::optional<std::uint64_t> argument = persim::bench::rounds_argument(argc, argv);
  if (!argument) return 2;
  const std::uint64_t rounds = *argument;
  Node node;  // default NodeConfig, as in the benchmark
  const ProcessId server = node.create_process("server").value();
  const Handle ep = node.create_endpoint(server).value();
  const Status server_started = node.start(server, [ep](Sys& sys) {
    Message request, response;
    Result<Received> r = sys.receive(Cap<Endpoint>(ep), request);
    while (r) {
      response.put<std::uint64_t>(0, request.get<std::uint64_t>(0) + 1);
      r = sys.reply_receive(r->reply, response, Cap<Endpoint>(ep), request);
    }
  });
  const ProcessId client = node.create_process("client").value();
  const Handle send_cap = node.grant(server, ep, client, Rights::send()).value();
  std::uint64_t last = 0;
  const Status client_started = node.start(client, [rounds, send_cap, &last](Sys& sys) {
    Message request, response;
    std::uint64_t counter = 0;
    for (std::uint64_t i = 0; i < rounds; ++i) {
      request.put<std::uint64_t>(0, counter);
      if (!sys.call(Cap<Endpoint>(send_cap), request, response)) return;
      counter = response.get<std::uint64_t>(0);
    }
    last = counter;
  });
  if (!server_started || !client_started) return 1;
  node.run();
  std::printf("%llu round trips, trace hash %016llx\n", static_cast<unsigned long long>(last),
              static_cast<unsigned long long>(node.trace_hash()));
  return last == rounds ? 0 : 1;
}
