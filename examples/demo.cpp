// persim demo: processes calling a server, a revoke, and a refused forged handle.
// Until the `persim` command exists this is the README's demo.
#include <cstdio>
#include <string>

#include "kernel/node.hpp"
#include "kernel/sys.hpp"

using namespace persim::kernel;

namespace {

// Prints kernel events as a timeline.
class Timeline : public TraceSink {
 public:
  explicit Timeline(const Node& node) : node_(node) {}
  void on_event(const TraceEvent& e) override {
    if (e.op == Op::call || e.op == Op::receive || e.op == Op::reply) {
      if (e.error == 0) return;  // successful IPC is shown by the programs themselves
    }
    std::printf("%8.3f us  %-18s %-14.*s%s%.*s\n", e.time_ns / 1000.0, name(e).c_str(),
                static_cast<int>(to_string(e.op).size()), to_string(e.op).data(), e.error ? "error=" : "",
                e.error ? static_cast<int>(to_string(static_cast<Error>(e.error)).size()) : 0,
                e.error ? to_string(static_cast<Error>(e.error)).data() : "");
  }

 private:
  std::string name(const TraceEvent& e) const {
    if (e.process == 0) return "[node]";
    return node_.name(ProcessId{e.process, e.process_generation});
  }
  const Node& node_;
};

}  // namespace

int main() {
  const std::uint64_t seed = 42;
  NodeConfig config;
  config.seed = seed;
  Node node(config);
  Timeline timeline(node);
  node.set_trace_sink(&timeline);
  std::printf("persim demo %s  seed=%llu  (reproduce: persim-demo is deterministic for its built-in seed)\n\n",
              PERSIM_VERSION, static_cast<unsigned long long>(seed));

  // A counter server: answers each call with the running total of what callers sent.
  const ProcessId server = node.create_process("counter-server").value();
  const Handle ep = node.create_endpoint(server).value();
  node.start(server, [ep](Sys& sys) {
    Message request, response;
    std::uint64_t total = 0;
    Result<Received> r = sys.receive(Cap<Endpoint>(ep), request);
    while (r) {
      total += request.get<std::uint64_t>(0);
      response = {};
      response.put<std::uint64_t>(0, total);
      std::printf("%8.3f us  %-18s served badge %llu, total now %llu\n", sys.now_ns() / 1000.0, "counter-server",
                  static_cast<unsigned long long>(r->badge), static_cast<unsigned long long>(total));
      if (total >= 60) {
        // Enough: take back every capability derived from the endpoint. The
        // callers' next calls fail with `severed`.
        std::printf("%8.3f us  %-18s revokes every capability derived from its endpoint\n", sys.now_ns() / 1000.0,
                    "counter-server");
        if (!sys.revoke(Cap<Endpoint>(ep))) return;
      }
      r = sys.reply_receive(r->reply, response, Cap<Endpoint>(ep), request);
    }
  }).ok();

  // Two clients, each holding a badged send-only capability derived from the server's.
  for (std::uint64_t badge : {1, 2}) {
    const std::string name = "client-" + std::to_string(badge);
    const ProcessId client = node.create_process(name).value();
    const Handle cap = node.grant(server, ep, client, Rights::send(), badge).value();
    node.start(client, [cap, badge, name](Sys& sys) {
      Message request, response;
      for (int i = 0; i < 3; ++i) {
        request = {};
        request.put<std::uint64_t>(0, badge * 10);
        const Status s = sys.call(Cap<Endpoint>(cap), request, response);
        if (!s) {
          std::printf("%8.3f us  %-18s call failed: %s\n", sys.now_ns() / 1000.0, name.c_str(),
                      std::string(to_string(s.error())).c_str());
          return;
        }
        std::printf("%8.3f us  %-18s got total %llu\n", sys.now_ns() / 1000.0, name.c_str(),
                    static_cast<unsigned long long>(response.get<std::uint64_t>(0)));
        sys.sleep_for(10'000).ok();
      }
    }).ok();
  }

  // A forger: makes up handle values and tries to call the server with them.
  const ProcessId forger = node.create_process("forger").value();
  node.start(forger, [](Sys& sys) {
    Message request, response;
    for (std::uint32_t guess : {1u, 2u, 0x1001u, 0xdeadbeefu}) {
      const Status s = sys.call(Cap<Endpoint>(Handle::from_raw(guess)), request, response);
      std::printf("%8.3f us  %-18s forged handle 0x%08x refused: %s\n", sys.now_ns() / 1000.0, "forger", guess,
                  s ? "NO (bug!)" : std::string(to_string(s.error())).c_str());
    }
  }).ok();

  node.run();
  std::printf("\nsummary: %llu kernel calls, %llu forged or stale handles refused (audit), trace hash %016llx\n",
              static_cast<unsigned long long>(node.stats().kernel_calls),
              static_cast<unsigned long long>(node.audit().total()),
              static_cast<unsigned long long>(node.trace_hash()));
  return 0;
}
