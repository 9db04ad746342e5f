// The supervisor's loop and the requests of the programs it runs: a server's
// announcement, a program's regrant of one of its manifest grants (waiting
// for its service to come back if need be).
#include <algorithm>
#include <cassert>

#include "servers/supervisor/supervisor_server.hpp"

namespace persim::servers::supervision {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Error;
using kernel::Message;
using kernel::Rights;

void Supervisor::loop() {
  Message request{};
  for (;;) {
    std::uint64_t due = UINT64_MAX;
    for (const Instance& in : instances_)
      if (in.phase == Phase::backoff) due = std::min(due, in.due_ns);
    if (!gone_retry_.empty()) due = std::min(due, gone_retry_due_);
    const kernel::Result<kernel::Received> r = sys_.receive_until(ep_, request, due);
    if (!r && r.error() == Error::timed_out) {
      on_timeout();
      continue;
    }
    if (!r) return;  // our own endpoint is gone: nothing left to supervise with
    if (r->notified) {
      handle_exits(r->badge);
    } else {
      handle_request(r->badge, request, r->reply);
    }
    update_booted();
  }
}

// What is due: client_gone calls to send again, restarts after their backoff.
void Supervisor::on_timeout() {
  if (!gone_retry_.empty() && gone_retry_due_ <= sys_.now_ns()) retry_gone();
  for (Instance& in : instances_)
    if (in.phase == Phase::backoff && in.due_ns <= sys_.now_ns()) try_start(in);
  update_booted();
}

// ---- requests from programs

void Supervisor::handle_request(std::uint64_t badge, Message& request, Cap<kernel::Reply> reply_cap) {
  Message reply{};
  const auto in = std::find_if(instances_.begin(), instances_.end(), [&](const Instance& i) {
    return i.phase == Phase::running && i.client == badge;
  });
  ServiceError e = ServiceError::wrong_session;
  if (in != instances_.end()) {
    wire::Reader args(request);
    if (request.label == static_cast<std::uint64_t>(SupervisorOp::announce)) {
      e = handle_announce(*in, args, request);
    } else if (request.label == static_cast<std::uint64_t>(SupervisorOp::regrant)) {
      const std::string grant(args.str());
      if (!args.done()) {
        e = ServiceError::malformed;
      } else if (regrant_waits(*in, grant, reply_cap)) {
        drop_received(sys_, request);
        ++host_.audit.requests;
        return;  // answered when the service is back
      } else {
        e = answer_regrant(*in, grant, reply);
      }
    } else {
      e = request.label == op_restore_state ? ServiceError::untrusted_state : ServiceError::unknown_operation;
    }
  }
  drop_received(sys_, request);
  ++host_.audit.requests;
  host_.audit.count(e);
  finish(reply_cap, e, reply);
  if (in != instances_.end() && e == ServiceError::ok &&
      request.label == static_cast<std::uint64_t>(SupervisorOp::announce))
    after_announce(manifest(*in).provides);
}

void Supervisor::finish(Cap<kernel::Reply> reply_cap, ServiceError e, Message& reply) {
  std::vector<kernel::Handle> given;
  for (std::uint32_t i = 0; i < reply.cap_count; ++i) given.push_back(reply.caps[i].handle);
  if (e != ServiceError::ok) reply = {};
  reply.label = static_cast<std::uint64_t>(e);
  (void)sys_.reply(reply_cap, reply);
  // The program's copies derive from ours; ours are not needed.
  for (const kernel::Handle h : given) (void)sys_.delete_cap(kernel::AnyCap(h));
}

ServiceError Supervisor::handle_announce(Instance& in, wire::Reader& args, Message& request) {
  const std::string service(args.str());
  if (!args.done() || request.cap_count != 1 || service.empty()) return ServiceError::malformed;
  if (service != manifest(in).provides) return ServiceError::permission_denied;
  Service& svc = this->service(service);
  if (svc.up) return ServiceError::exists;
  svc.root = request.received_cap<Endpoint>(0);
  svc.up = true;
  request.caps[0].handle = {};  // taken
  event(in, SupervisorEventKind::announced, service);
  return ServiceError::ok;
}

// Called once the announcement is answered, so the server is back in its loop.
void Supervisor::after_announce(const std::string& service) {
  for (Instance& in : instances_)
    if (in.phase == Phase::waiting && in.waiting_for == service) try_start(in);
  std::vector<PendingRegrant> waiting;
  waiting.swap(pending_);
  for (PendingRegrant& p : waiting) {
    Instance& in = instances_[p.instance];
    const GrantSpec* g = find_grant(in, p.grant);
    if (in.client != p.client || in.phase != Phase::running || g == nullptr) {
      (void)sys_.delete_cap(p.reply);  // its asker is gone
      continue;
    }
    if (g->service != service) {
      pending_.push_back(std::move(p));
      continue;
    }
    Message reply{};
    const ServiceError e = answer_regrant(in, p.grant, reply);
    finish(p.reply, e, reply);
  }
}

bool Supervisor::regrant_waits(const Instance& in, const std::string& grant, Cap<kernel::Reply> reply_cap) {
  const GrantSpec* g = find_grant(in, grant);
  if (g == nullptr) return false;
  const Service* svc = service_of(in, *g);
  if (svc == nullptr || svc->up || !svc->provider) return false;
  if (instances_[*svc->provider].phase == Phase::done) return false;  // it will not come back
  pending_.push_back({reply_cap, in.index, in.client, grant});
  return true;
}

ServiceError Supervisor::answer_regrant(const Instance& in, const std::string& grant, Message& reply) {
  const GrantSpec* g = find_grant(in, grant);
  if (g == nullptr) return ServiceError::not_found;
  Cap<Endpoint> session;
  const Outcome o = resolve(in, *g, &session);
  if (!o) return o.kernel != Error{} ? ServiceError::unavailable : o.service;
  reply.attach(session, Rights::send());
  return ServiceError::ok;
}

}  // namespace persim::servers::supervision
