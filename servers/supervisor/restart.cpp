// The supervisor's deaths and restarts: a refused start or a death goes to
// the instance's restart policy (backoff, giving up); a dead client's sessions
// are closed at every service, those a service did not take in time sent again.
#include <algorithm>
#include <cassert>

#include "servers/supervisor/supervisor_server.hpp"

namespace persim::servers::supervision {

using kernel::Error;
using kernel::ExitReason;
using kernel::Message;

// The start failed: log it, then treat it as a failed run (restart policy).
void Supervisor::refuse(Instance& in, std::vector<Refusal> refused) {
  std::string detail;
  for (const Refusal& r : refused) detail += (detail.empty() ? "" : "; ") + ("grant '" + r.grant + "': " + r.why);
  event(in, SupervisorEventKind::start_refused, detail);
  if (in.record) {
    in.record->time_ns = sys_.now_ns();
    in.record->incarnation = in.incarnation;
    for (Refusal& r : refused) in.record->refused.emplace_back(std::move(r.grant), std::move(r.why));
    host_.restarts.push_back(*in.record);
    // The next attempt logs what it re-grants; the severed were logged now.
    in.record->severed.clear();
    in.record->severed_other = 0;
    in.record->refused.clear();
  }
  schedule_restart(in, /*failed=*/true);
}

void Supervisor::schedule_restart(Instance& in, bool failed) {
  const Manifest& m = manifest(in);
  const bool wanted = m.restart == RestartPolicy::always || (m.restart == RestartPolicy::on_failure && failed);
  if (!wanted) {
    finish_instance(in);
    return;
  }
  if (in.restarts >= m.restarts_max) {
    event(in, SupervisorEventKind::gave_up, "restarts_max " + std::to_string(m.restarts_max) + " reached");
    finish_instance(in);
    return;
  }
  ++in.restarts;
  assert(in.restarts <= m.restarts_max);
  in.phase = Phase::backoff;
  in.due_ns = sys_.now_ns() + in.backoff_ns;
  event(in, SupervisorEventKind::restart_scheduled, "in " + std::to_string(in.backoff_ns) + " ns");
  in.backoff_ns = std::min(in.backoff_ns * 2, m.backoff_ns_max);
}

// The instance will not run again. If it provided a service, whoever waits
// for that service is told now rather than left waiting.
void Supervisor::finish_instance(Instance& in) {
  in.phase = Phase::done;
  const std::string& service = manifest(in).provides;
  if (service.empty() || this->service(service).up) return;
  for (Instance& waiting : instances_)
    if (waiting.phase == Phase::waiting && waiting.waiting_for == service) try_start(waiting);
  std::vector<PendingRegrant> still;
  for (PendingRegrant& p : pending_) {
    const GrantSpec* g = find_grant(instances_[p.instance], p.grant);
    if (g == nullptr || g->service != service) {
      still.push_back(std::move(p));
      continue;
    }
    Message reply{};
    finish(p.reply, ServiceError::unavailable, reply);
  }
  pending_ = std::move(still);
}

// ---- deaths

void Supervisor::handle_exits(std::uint64_t word) {
  for (Instance& in : instances_) {
    if (in.phase != Phase::running || (word & (std::uint64_t{1} << (in.index % 64))) == 0) continue;
    const kernel::Result<kernel::Sys::ProcessStatus> status = sys_.process_status(in.process);
    if (status && status->alive) continue;
    on_exit(in, status ? status.value() : kernel::Sys::ProcessStatus{});
  }
}

void Supervisor::on_exit(Instance& in, const kernel::Sys::ProcessStatus& status) {
  const Manifest& m = manifest(in);
  event(in, SupervisorEventKind::exited, kernel::to_string(status.exit_reason));
  RestartRecord record{};
  record.instance = m.instance;
  record.cause = status.exit_reason;
  for (const GrantSpec& g : m.grants) record.severed.push_back(g.name);
  // Besides its manifest grants and the supervisor's, what it held came from requests.
  const std::uint32_t from_manifest = static_cast<std::uint32_t>(m.grants.size()) + 1;
  record.severed_other = status.caps_released > from_manifest ? status.caps_released - from_manifest : 0;
  in.record = std::move(record);
  (void)sys_.delete_cap(in.process);
  in.process = {};
  if (!m.provides.empty()) {
    // Its root derived from the dead server's endpoint: severed already, its slot free.
    Service& svc = service(m.provides);
    svc.up = false;
    svc.root = {};
  }
  // Its sessions at every server go, those it opened by requests too.
  client_gone(in.client);
  // Its checkpoint group restarts with it, from the group's last committed epoch.
  if (!m.group.empty() && status.exit_reason != ExitReason::returned) {
    for (Instance& other : instances_) {
      if (&other == &in || other.phase != Phase::running || manifest(other).group != m.group) continue;
      (void)sys_.kill(other.process);  // its exit (killed) is handled when its watch signals it
    }
  }
  schedule_restart(in, status.exit_reason != ExitReason::returned);
  // The dead incarnation holds nothing of ours now; the policy has decided.
  assert(in.process.is_null() && (in.phase == Phase::backoff || in.phase == Phase::done));
}

void Supervisor::client_gone(std::uint64_t client) {
  for (auto& [name, svc] : services_)
    if (svc.up) send_gone(name, svc, client);
}

void Supervisor::send_gone(const std::string& name, const Service& svc, std::uint64_t client) {
  Message request{}, reply{};
  request.label = static_cast<std::uint64_t>(RootOp::client_gone);
  wire::Writer(request).u64(client);
  if (call_service(svc, request, reply).kernel != Error::timed_out) return;
  if (gone_retry_.empty()) gone_retry_due_ = sys_.now_ns() + host_.service_call_timeout_ns;
  gone_retry_.push_back({name, svc.root, client});
  event(instances_[*svc.provider], SupervisorEventKind::call_timed_out,
        "client_gone " + std::to_string(client) + ": sent again later");
}

void Supervisor::retry_gone() {
  std::vector<PendingGone> due;
  due.swap(gone_retry_);
  for (const PendingGone& g : due) {
    const Service& svc = service(g.service);
    if (svc.up && svc.root == g.root) send_gone(g.service, svc, g.client);
  }
}

// A trusted server (the standard ones) is waited on without limit; a
// program's own service for service_call_timeout_ns at most (kernel: timed_out).
Outcome Supervisor::call_service(const Service& svc, const Message& request, Message& reply) {
  if (svc.trusted) return call(sys_, svc.root, request, reply);
  const kernel::Status s = sys_.call_until(svc.root, request, reply, sys_.now_ns() + host_.service_call_timeout_ns);
  if (!s) return {s.error(), ServiceError::ok};
  return {Error{}, status_of(reply)};
}

}  // namespace persim::servers::supervision
