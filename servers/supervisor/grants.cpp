// The supervisor starting an instance: every grant of its manifest resolved
// afresh at the service that provides it, the process started and watched,
// nothing half-done if any step is refused.
#include <algorithm>
#include <cassert>

#include "servers/supervisor/supervisor_server.hpp"

namespace persim::servers::supervision {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Error;
using kernel::Message;
using kernel::Notification;
using kernel::Process;
using kernel::Rights;

// Starts the instance if every service its grants need is up; otherwise it
// waits (a provider exists) or its start is refused (none does).
void Supervisor::try_start(Instance& in) {
  const Manifest& m = manifest(in);
  for (const GrantSpec& g : m.grants) {
    const Service* svc = service_of(in, g);
    if (svc == nullptr || !svc->provider) {
      refuse(in, {{g.name, g.describe() + ": no instance provides service '" + g.service + "'"}});
      return;
    }
    if (!svc->up && instances_[*svc->provider].phase == Phase::done) {
      refuse(in, {{g.name, g.describe() + ": service '" + g.service + "' is down for good (its instance gave up)"}});
      return;
    }
    if (!svc->up) {
      if (in.phase != Phase::waiting || in.waiting_for != g.service)
        event(in, SupervisorEventKind::waiting, "grant '" + g.name + "' needs service '" + g.service + "'");
      in.phase = Phase::waiting;
      in.waiting_for = g.service;
      return;
    }
  }
  start(in);
}

// A new incarnation: created, granted exactly its manifest (and the
// supervisor), started; or killed before it ran and the start refused.
void Supervisor::start(Instance& in) {
  const Manifest& m = manifest(in);
  [[maybe_unused]] const std::uint32_t last = host_.incarnations[m.instance];
  in.incarnation = ++host_.incarnations[m.instance];
  in.client = (static_cast<std::uint64_t>(in.index) + 1) << 32 | in.incarnation;
  assert(in.incarnation == last + 1 && (in.client >> 32) == in.index + 1);
  const std::string name = m.instance + "#" + std::to_string(in.incarnation);
  const kernel::Result<Cap<Process>> process = sys_.process_create(factory_, m.program, name);
  if (!process) {
    refuse(in, {{"program", "'" + m.program + "': " + std::string(kernel::to_string(process.error()))}});
    return;
  }
  std::vector<std::string> granted;
  std::vector<Refusal> refused = grant_manifest(in, *process, &granted);
  if (refused.empty()) refused = watch_and_start(in, *process);
  if (!refused.empty()) {
    // Nothing half-done: the child never ran; its grants and sessions go.
    (void)sys_.kill(*process);
    (void)sys_.delete_cap(*process);
    client_gone(in.client);
    refuse(in, std::move(refused));
    return;
  }
  started(in, *process, std::move(granted));
}

// The supervisor's grant and each of the manifest's, in order, until one is
// refused; `*granted` names those given.
std::vector<Refusal> Supervisor::grant_manifest(const Instance& in, Cap<Process> process,
                                                std::vector<std::string>* granted) {
  if (const kernel::Status s = sys_.process_grant(process, supervisor_grant, ep_, Rights::send(), in.client); !s)
    return {{std::string(supervisor_grant), std::string(kernel::to_string(s.error()))}};
  for (const GrantSpec& g : manifest(in).grants) {
    Cap<Endpoint> session;
    const Outcome o = resolve(in, g, &session);
    if (!o) return {{g.name, g.describe() + ": " + o.describe()}};
    // The child's copy derives from ours; ours is not needed once it is given.
    const kernel::Status s = sys_.process_grant(process, g.name, session, Rights::send());
    (void)sys_.delete_cap(session);
    if (!s) return {{g.name, std::string(kernel::to_string(s.error()))}};
    granted->push_back(g.name);
  }
  assert(granted->size() == manifest(in).grants.size());
  return {};
}

// The incarnation runs: logged, and its restart record (if it replaces one) completed.
void Supervisor::started(Instance& in, Cap<Process> process, std::vector<std::string> granted) {
  in.process = process;
  in.phase = Phase::running;
  event(in, SupervisorEventKind::started, manifest(in).instance + "#" + std::to_string(in.incarnation));
  if (in.record) {
    in.record->time_ns = sys_.now_ns();
    in.record->incarnation = in.incarnation;
    in.record->regranted = std::move(granted);
    host_.restarts.push_back(std::move(*in.record));
    in.record.reset();
  }
}

std::vector<Refusal> Supervisor::watch_and_start(Instance& in, Cap<Process> process) {
  const std::uint64_t bit = std::uint64_t{1} << (in.index % 64);
  if (in.watch.is_null()) {
    const kernel::Result<Cap<Notification>> watch = sys_.derive(exits_, Rights::send(), bit);
    if (!watch) return {{"watch", std::string(kernel::to_string(watch.error()))}};
    in.watch = *watch;
  }
  if (const kernel::Status s = sys_.process_watch(process, in.watch); !s)
    return {{"watch", std::string(kernel::to_string(s.error()))}};
  if (const kernel::Status s = sys_.process_start(process); !s)
    return {{"start", std::string(kernel::to_string(s.error()))}};
  return {};
}

// A session for grant `g` of `in`'s current client, from the service's
// root: the same open request for every server, with what the supervisor
// attests of the client. The server decides what it serves.
Outcome Supervisor::resolve(const Instance& in, const GrantSpec& g, Cap<Endpoint>* session) {
  const Service* found = service_of(in, g);
  if (found == nullptr || !found->up) return {Error{}, ServiceError::unavailable};
  const Service& svc = *found;
  const Manifest& m = manifest(in);
  const OpenRequest open{g.argument, g.mode, in.client, m.instance, m.group,
                         m.group.empty() ? 0 : group_size(m.group, g.service)};
  Message request{}, reply{};
  if (!write_open(request, open)) return {Error{}, ServiceError::malformed};
  const Outcome o = call_service(svc, request, reply);
  if (o) *session = reply.received_cap<Endpoint>(0);
  if (o.kernel == Error::timed_out)
    event(instances_[*svc.provider], SupervisorEventKind::call_timed_out,
          "open for " + m.instance + " #" + std::to_string(in.incarnation) + ": refused");
  return o;
}

// How many instances of `group` are granted `service` (a checkpoint
// store's group commit waits for that many members).
std::uint64_t Supervisor::group_size(const std::string& group, const std::string& service) const {
  return static_cast<std::uint64_t>(std::count_if(host_.manifests.begin(), host_.manifests.end(), [&](const Manifest& m) {
    return m.group == group &&
           std::any_of(m.grants.begin(), m.grants.end(), [&](const GrantSpec& g) { return g.service == service; });
  }));
}

}  // namespace persim::servers::supervision
