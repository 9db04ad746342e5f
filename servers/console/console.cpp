#include "servers/console/console.hpp"

#include <algorithm>

#include "servers/wire.hpp"

namespace persim::servers {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Message;
using kernel::Sys;

namespace {

class Console {
 public:
  Console(Sys& sys, Cap<Endpoint> ep, ConsoleHost& host) : sys_(sys), ep_(ep), host_(host) { host_.live = &state_; }
  ~Console() {
    host_.live = nullptr;
    host_.wake = {};
  }

  // Keeps a read that finds no input, to answer when some comes.
  bool defer(std::uint64_t badge, Message& request, kernel::Cap<kernel::Reply> reply) {
    if (badge == 0 || request.label != static_cast<std::uint64_t>(ConsoleOp::read)) return false;
    const ConsoleSession* s = state_.sessions.find(badge);
    wire::Reader in(request);
    const std::uint32_t max = in.u32();
    if (s == nullptr || !in.done() || max > chunk_bytes_max || max == 0) return false;
    if (available(*s) || host_.closed[s->stream]) return false;
    if (pending_.size() >= pending_max) return false;  // answered at once, empty: the reader asks again
    pending_.push_back({badge, max, reply});
    return true;
  }

  // Input came (or a stream closed): answer the reads that can be answered.
  void notified(std::uint64_t) {
    std::vector<PendingRead> waiting;
    waiting.swap(pending_);
    for (const PendingRead& p : waiting) {
      ConsoleSession* s = state_.sessions.find(p.badge);
      if (s == nullptr) {
        (void)sys_.delete_cap(p.reply);  // the session closed: its reader is gone
        continue;
      }
      if (!available(*s) && !host_.closed[s->stream]) {
        pending_.push_back(p);
        continue;
      }
      Message reply{};
      const std::uint64_t before = s->input_at;
      take_input(*s, p.max, reply);
      // A reader killed while it waited gets nothing, and loses nothing: the
      // stream's readers did not get past it.
      if (!sys_.reply(p.reply, reply)) {
        s->input_at = before;
        continue;
      }
      advance_readers(*s);
    }
  }
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  Sessions<ConsoleSession>& sessions() { return state_.sessions; }

  // A session on the grant's stream, by default the client's instance's:
  // reading from where the stream's readers got to.
  ServiceError open(const OpenRequest& r, Message& reply) {
    const std::string stream(r.argument_or_instance());
    if (!r.mode.empty() || stream.empty() || stream.size() > name_bytes_max || stream.find('\0') != std::string::npos)
      return ServiceError::malformed;
    return state_.sessions.open(sys_, ep_, r.instance, ConsoleSession{r.client, stream, host_.read_to[stream]},
                                reply, for_supervisor);
  }

  ServiceError handle(ConsoleSession& s, Request& r, Message& reply) {
    wire::Reader& in = r.args;
    switch (static_cast<ConsoleOp>(r.op)) {
      case ConsoleOp::write: {
        const std::string_view text = in.str();
        if (!in.done() || text.size() > chunk_bytes_max) return ServiceError::malformed;
        std::string& out = host_.output[s.stream];
        if (out.size() + text.size() > console_bytes_max) return ServiceError::quota_exceeded;
        out += text;
        if (host_.echo) host_.echo(s.stream, text);
        return ServiceError::ok;
      }
      case ConsoleOp::read: {
        const std::uint32_t max = in.u32();
        if (!in.done() || max > chunk_bytes_max) return ServiceError::malformed;
        take_input(s, max, reply);
        advance_readers(s);
        return ServiceError::ok;
      }
      case ConsoleOp::tell_input:
        if (!in.done()) return ServiceError::malformed;
        wire::Writer(reply).u64(s.input_at);
        return ServiceError::ok;
      case ConsoleOp::seek_input: {
        const std::uint64_t at = in.u64();
        if (!in.done()) return ServiceError::malformed;
        if (at > host_.input[s.stream].size()) return ServiceError::not_found;  // not arrived (yet)
        s.input_at = at;
        return ServiceError::ok;
      }
    }
    return ServiceError::unknown_operation;
  }

 private:
  struct PendingRead {
    std::uint64_t badge;
    std::uint32_t max;
    kernel::Cap<kernel::Reply> reply;
  };

  bool available(const ConsoleSession& s) { return s.input_at < host_.input[s.stream].size(); }

  // Moves up to `max` bytes of input from the session's position into `reply`.
  void take_input(ConsoleSession& s, std::uint32_t max, Message& reply) {
    const std::string& all = host_.input[s.stream];
    const std::size_t from = std::min<std::size_t>(s.input_at, all.size());
    const std::size_t n = std::min<std::size_t>(max, all.size() - from);
    wire::Writer(reply).str(std::string_view(all).substr(from, n)).u8(from + n == all.size() && host_.closed[s.stream]);
    s.input_at = from + n;
  }

  void advance_readers(const ConsoleSession& s) {
    std::uint64_t& to = host_.read_to[s.stream];
    to = std::max(to, s.input_at);
  }

  Sys& sys_;
  Cap<Endpoint> ep_;
  ConsoleHost& host_;
  ConsoleState state_;
  std::vector<PendingRead> pending_;
};


}  // namespace

std::vector<std::byte> ConsoleState::encode() const {
  wire::Encoder e;
  e.u64(sessions.size());
  sessions.for_each([&](std::uint64_t badge, const ConsoleSession& s) {
    e.u64(badge).u64(s.client).str(s.stream).u64(s.input_at);
  });
  return e.take();
}

void console_main(Sys& sys, ConsoleHost& host) {
  const kernel::Result<Cap<Endpoint>> ep = sys.endpoint_create();
  if (!ep) return;
  const kernel::Result<Cap<kernel::Notification>> wake = sys.notification_create();
  if (!wake || !sys.notification_bind(*wake)) return;
  Console console(sys, *ep, host);
  Idempotency once(host.store);
  host.wake = wake->handle();
  announce_and_serve(sys, ConsoleHost::service, *ep, console, host.audit, &once);
}

Outcome ConsoleClient::write(Sys& sys, std::string_view text) const {
  do {
    const std::string_view chunk = text.substr(0, chunk_bytes_max);
    text.remove_prefix(chunk.size());
    Message request = wire::request(ConsoleOp::write), reply{};
    wire::Writer(request).str(chunk);
    const Outcome o = call(sys, session_, request, reply);
    if (!o) return o;
  } while (!text.empty());
  return {};
}

Outcome ConsoleClient::read(Sys& sys, std::uint32_t max, std::string* out, bool* end) const {
  Message request = wire::request(ConsoleOp::read), reply{};
  wire::Writer(request).u32(max);
  const Outcome o = call(sys, session_, request, reply);
  if (!o) return o;
  wire::Reader in(reply);
  out->assign(in.str());
  const bool closed = in.u8() != 0;
  if (end != nullptr) *end = closed;
  return o;
}

Outcome ConsoleClient::read_line(Sys& sys, std::string* line, bool* end) const {
  line->clear();
  *end = false;
  // One byte at a time: the rest of the input stays queued for the next read.
  while (!*end && (line->empty() || line->back() != '\n')) {
    std::string byte;
    const Outcome o = read(sys, 1, &byte, end);
    if (!o) return o;
    *line += byte;
  }
  return {};
}

Outcome ConsoleClient::tell_input(Sys& sys, std::uint64_t* position) const {
  Message request = wire::request(ConsoleOp::tell_input), reply{};
  const Outcome o = call(sys, session_, request, reply);
  if (o) *position = wire::Reader(reply).u64();
  return o;
}

Outcome ConsoleClient::seek_input(Sys& sys, std::uint64_t position) const {
  Message request = wire::request(ConsoleOp::seek_input), reply{};
  wire::Writer(request).u64(position);
  return call(sys, session_, request, reply);
}

}  // namespace persim::servers
