// IPC call/reply benchmarks. Every benchmark is named `ipc_call_reply/...` so one
// filter runs the figure with its floor; bench/ratios.py divides each median by
// the floor's median from the same run. One iteration = one round trip: a request
// there and a reply back. See docs/performance.md.
#include <benchmark/benchmark.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/context/fiber.hpp>
#include <boost/fiber/channel_op_status.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/unbuffered_channel.hpp>
#include <cstdint>
#include <utility>

#include "kernel/node.hpp"
#include "kernel/sys.hpp"

namespace {

namespace ctx = boost::context;
using namespace persim::kernel;

// The floor: a raw Boost.Context fiber ping-pong, the switch persim's processes
// are made of. One resume into the fiber and one back per iteration; no payload,
// no queues, no checks.
void floor_fiber_round_trip(benchmark::State& state) {
  bool stop = false;
  ctx::fiber peer{[&stop](ctx::fiber&& back) {
    while (!stop) back = std::move(back).resume();
    return std::move(back);
  }};
  for (auto _ : state) {
    peer = std::move(peer).resume();
  }
  stop = true;
  peer = std::move(peer).resume();  // the peer returns; its stack is freed
  state.SetItemsProcessed(state.iterations());
}

// persim: a client process calls a server process over an endpoint with an
// 8-byte request, the server answers with an 8-byte reply via reply_receive.
// Each round trip is three kernel calls' worth of work (call; reply and receive
// in reply_receive), capability lookups with type and rights checks on the
// endpoint and the one-shot reply capability, minting that reply capability
// into a slot of the server's space and consuming it (the slot is freed and its
// generation bumped; the capability node and reply object are the server's
// spare, reused by the next call), the payload copies, three trace events
// folded into the trace hash, and two fiber switches (direct hand-offs; every
// 64th goes through the run loop). The benchmark loop runs inside the client
// process; the server is an ordinary receive/reply_receive loop.
void persim_call_reply(benchmark::State& state) {
  Node node;  // default NodeConfig: kernel_call_cost_ns = 100, full handle validation
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
  // The client holds a send-only capability derived from the server's.
  const ProcessId client = node.create_process("client").value();
  const Handle send_cap = node.grant(server, ep, client, Rights::send()).value();
  std::uint64_t last = 0;
  const Status client_started = node.start(client, [&state, send_cap, &last](Sys& sys) {
    Message request, response;
    std::uint64_t counter = 0;
    for (auto _ : state) {
      request.put<std::uint64_t>(0, counter);
      if (!sys.call(Cap<Endpoint>(send_cap), request, response)) {
        state.SkipWithError("persim call failed");
        break;
      }
      counter = response.get<std::uint64_t>(0);
    }
    last = counter;
  });
  if (!server_started || !client_started) {
    state.SkipWithError("cannot start processes");
    return;
  }
  node.run();
  if (last != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("lost a round trip");
  state.SetItemsProcessed(state.iterations());
}

// Boost.Fiber: two fibers on one thread (round-robin scheduler), a request
// channel and a reply channel. unbuffered_channel is a rendezvous: push returns
// once the value is taken, the semantics of a synchronous call. Each round trip
// is two fiber switches. (buffered_channel of capacity 2, one slot, measured
// about 10% slower here.)
void peer_boost_fiber_channel(benchmark::State& state) {
  using Channel = boost::fibers::unbuffered_channel<std::uint64_t>;
  Channel requests, replies;
  boost::fibers::fiber server([&requests, &replies] {
    std::uint64_t v = 0;
    while (requests.pop(v) == boost::fibers::channel_op_status::success) replies.push(v + 1);
  });
  std::uint64_t counter = 0;
  for (auto _ : state) {
    requests.push(counter);
    replies.pop(counter);
  }
  requests.close();
  server.join();
  if (counter != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("lost a round trip");
  state.SetItemsProcessed(state.iterations());
}

// Boost.Asio: single-threaded io_context; a "request" handler posts a "reply"
// handler which posts the next request. One round trip = two posts.
struct AsioPingPong {
  // begin() then end(), as a range-for does; end() starts the timer.
  explicit AsioPingPong(benchmark::State& state) : it(state.begin()), end(state.end()) {}

  boost::asio::io_context io{1};  // concurrency hint 1: one thread runs it
  benchmark::State::StateIterator it;
  const benchmark::State::StateIterator end;
  std::uint64_t counter = 0;

  void request() {
    if (!(it != end)) return;  // the range-for check, done by hand
    boost::asio::post(io, [this] { reply(counter); });
  }
  void reply(std::uint64_t v) {
    counter = v + 1;
    ++it;
    boost::asio::post(io, [this] { request(); });
  }
};

void peer_asio_post(benchmark::State& state) {
  AsioPingPong pp(state);
  boost::asio::post(pp.io, [&pp] { pp.request(); });
  pp.io.run();
  if (pp.counter != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("lost a round trip");
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(floor_fiber_round_trip)->Name("ipc_call_reply/floor_fiber_round_trip");
BENCHMARK(persim_call_reply)->Name("ipc_call_reply/persim");
BENCHMARK(peer_boost_fiber_channel)->Name("ipc_call_reply/peer_boost_fiber_channel");
BENCHMARK(peer_asio_post)->Name("ipc_call_reply/peer_asio_post");

BENCHMARK_MAIN();
