#include "servers/supervisor/supervisor.hpp"

#include <algorithm>
#include <cassert>
#include <map>

#include "servers/wire.hpp"

namespace persim::servers {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Error;
using kernel::ExitReason;
using kernel::Factory;
using kernel::Message;
using kernel::Notification;
using kernel::Process;
using kernel::Rights;
using kernel::Sys;

std::string_view to_string(RestartPolicy p) noexcept {
  switch (p) {
    case RestartPolicy::never: return "never";
    case RestartPolicy::always: return "always";
    case RestartPolicy::on_failure: return "on_failure";
  }
  return "unknown";
}

std::string_view to_string(SupervisorEventKind k) noexcept {
  switch (k) {
    case SupervisorEventKind::started: return "started";
    case SupervisorEventKind::exited: return "exited";
    case SupervisorEventKind::announced: return "announced";
    case SupervisorEventKind::start_refused: return "start_refused";
    case SupervisorEventKind::waiting: return "waiting";
    case SupervisorEventKind::restart_scheduled: return "restart_scheduled";
    case SupervisorEventKind::gave_up: return "gave_up";
    case SupervisorEventKind::call_timed_out: return "call_timed_out";
  }
  return "unknown";
}

std::string GrantSpec::describe() const {
  std::string out = service;
  if (!argument.empty()) out += ":" + argument;
  if (!mode.empty()) out += " (" + mode + ")";
  return out;
}

kernel::Result<GrantSpec> parse_grant(std::string_view name, std::string_view source, std::string_view mode) {
  const std::size_t colon = source.find(':');
  GrantSpec g{std::string(name), std::string(source.substr(0, colon)),
              colon == std::string_view::npos ? std::string() : std::string(source.substr(colon + 1)),
              std::string(mode)};
  if (g.name.empty() || g.service.empty() || g.name == "supervisor") return Error::invalid_argument;
  return g;
}

namespace {

enum class Phase : std::uint8_t {
  idle,     // not started yet
  waiting,  // for a service one of its grants needs
  running,
  backoff,  // a restart is due at due_ns
  done,     // will not run again
};

struct Service;

struct Instance {
  std::size_t index = 0;
  // The service each of its manifest's grants needs, in grant order (null: no
  // instance provides it). Looked up once: the services are known from the
  // manifests before anything starts.
  std::vector<Service*> grant_services;
  Phase phase = Phase::idle;
  std::uint32_t incarnation = 0;
  std::uint64_t client = 0;  // of the current (or last) incarnation
  Cap<Process> process;
  Cap<Notification> watch;
  std::uint64_t due_ns = 0;
  std::uint64_t backoff_ns = 0;
  std::uint32_t restarts = 0;
  std::string waiting_for;
  // Set at a death, completed and logged at the next start attempt.
  std::optional<RestartRecord> record;
};

struct Service {
  std::optional<std::size_t> provider;  // the instance whose manifest provides it
  Cap<Endpoint> root;
  bool up = false;
  bool trusted = false;  // its provider's manifest says so: waited on without limit
};

// A client_gone a program's service did not take in time: sent again later,
// unless the service has restarted meanwhile (its sessions went with it).
struct PendingGone {
  std::string service;
  Cap<Endpoint> root;  // the incarnation it was meant for
  std::uint64_t client;
};

// A regrant that waits for its service to come back.
struct PendingRegrant {
  Cap<kernel::Reply> reply;
  std::size_t instance;
  std::uint64_t client;
  std::string grant;
};

struct Refusal {
  std::string grant;
  std::string why;
};

class Supervisor {
 public:
  Supervisor(Sys& sys, SupervisorHost& host) : sys_(sys), host_(host) {}

  void run() {
    const auto factory = sys_.granted<Factory>("factory");
    const auto ep = sys_.endpoint_create();
    const auto exits = sys_.notification_create();
    if (!factory || !ep || !exits || !sys_.notification_bind(*exits)) return;
    factory_ = *factory;
    ep_ = *ep;
    exits_ = *exits;
    for (std::size_t i = 0; i < host_.manifests.size(); ++i) {
      Instance in;
      in.index = i;
      in.backoff_ns = host_.manifests[i].backoff_ns_initial;
      instances_.push_back(std::move(in));
      if (const std::string& s = host_.manifests[i].provides; !s.empty()) {
        Service& svc = services_[s];
        svc.provider = i;
        svc.trusted = host_.manifests[i].trusted;
      }
    }
    for (Instance& in : instances_) {
      for (const GrantSpec& g : manifest(in).grants) {
        const auto svc = services_.find(g.service);
        in.grant_services.push_back(svc == services_.end() ? nullptr : &svc->second);
      }
    }
    for (Instance& in : instances_) try_start(in);
    update_booted();
    loop();
  }

 private:
  const Manifest& manifest(const Instance& in) const { return host_.manifests[in.index]; }
  // A service some manifest provides. Every one is known from run() on (the
  // grants point into services_): none is added later.
  Service& service(const std::string& name) {
    const auto it = services_.find(name);
    assert(it != services_.end());
    return it->second;
  }
  // The service grant `g` (one of `in`'s manifest grants) needs; null if none provides it.
  Service* service_of(const Instance& in, const GrantSpec& g) const {
    return in.grant_services[static_cast<std::size_t>(&g - manifest(in).grants.data())];
  }
  // How many instances of `group` are granted `service` (a checkpoint
  // store's group commit waits for that many members).
  std::uint64_t group_size(const std::string& group, const std::string& service) const {
    return static_cast<std::uint64_t>(std::count_if(host_.manifests.begin(), host_.manifests.end(), [&](const Manifest& m) {
      return m.group == group &&
             std::any_of(m.grants.begin(), m.grants.end(), [&](const GrantSpec& g) { return g.service == service; });
    }));
  }

  void event(const Instance& in, SupervisorEventKind kind, std::string detail = {}) {
    host_.events.push_back({sys_.now_ns(), manifest(in).instance, in.incarnation, kind, std::move(detail)});
    if (host_.on_event) host_.on_event(host_.events.back());
  }

  void update_booted() {
    host_.booted = host_.booted || std::none_of(instances_.begin(), instances_.end(), [](const Instance& in) {
                     return in.phase == Phase::idle || in.phase == Phase::waiting;
                   });
  }

  void loop() {
    Message request{};
    for (;;) {
      std::uint64_t due = UINT64_MAX;
      for (const Instance& in : instances_)
        if (in.phase == Phase::backoff) due = std::min(due, in.due_ns);
      if (!gone_retry_.empty()) due = std::min(due, gone_retry_due_);
      const kernel::Result<kernel::Received> r = sys_.receive_until(ep_, request, due);
      if (!r && r.error() == Error::timed_out) {
        if (!gone_retry_.empty() && gone_retry_due_ <= sys_.now_ns()) retry_gone();
        for (Instance& in : instances_)
          if (in.phase == Phase::backoff && in.due_ns <= sys_.now_ns()) try_start(in);
        update_booted();
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

  // ---- starting

  // Starts the instance if every service its grants need is up; otherwise it
  // waits (a provider exists) or its start is refused (none does).
  void try_start(Instance& in) {
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

  void start(Instance& in) {
    const Manifest& m = manifest(in);
    in.incarnation = ++host_.incarnations[m.instance];
    in.client = (static_cast<std::uint64_t>(in.index) + 1) << 32 | in.incarnation;
    const std::string name = m.instance + "#" + std::to_string(in.incarnation);
    const kernel::Result<Cap<Process>> process = sys_.process_create(factory_, m.program, name);
    if (!process) {
      refuse(in, {{"program", "'" + m.program + "': " + std::string(kernel::to_string(process.error()))}});
      return;
    }
    std::vector<Refusal> refused;
    std::vector<std::string> granted;
    if (const kernel::Status s = sys_.process_grant(*process, supervisor_grant, ep_, Rights::send(), in.client); !s)
      refused.push_back({std::string(supervisor_grant), std::string(kernel::to_string(s.error()))});
    for (const GrantSpec& g : m.grants) {
      if (!refused.empty()) break;
      Cap<Endpoint> session;
      const Outcome o = resolve(in, g, &session);
      if (!o) {
        refused.push_back({g.name, g.describe() + ": " + o.describe()});
        break;
      }
      // The child's copy derives from ours; ours is not needed once it is given.
      const kernel::Status s = sys_.process_grant(*process, g.name, session, Rights::send());
      (void)sys_.delete_cap(session);
      if (!s) {
        refused.push_back({g.name, std::string(kernel::to_string(s.error()))});
        break;
      }
      granted.push_back(g.name);
    }
    if (refused.empty()) refused = watch_and_start(in, *process);
    if (!refused.empty()) {
      // Nothing half-done: the child never ran; its grants and sessions go.
      (void)sys_.kill(*process);
      (void)sys_.delete_cap(*process);
      client_gone(in.client);
      refuse(in, std::move(refused));
      return;
    }
    in.process = *process;
    in.phase = Phase::running;
    event(in, SupervisorEventKind::started, name);
    if (in.record) {
      in.record->time_ns = sys_.now_ns();
      in.record->incarnation = in.incarnation;
      in.record->regranted = std::move(granted);
      host_.restarts.push_back(std::move(*in.record));
      in.record.reset();
    }
  }

  std::vector<Refusal> watch_and_start(Instance& in, Cap<Process> process) {
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
  Outcome resolve(const Instance& in, const GrantSpec& g, Cap<Endpoint>* session) {
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

  // The start failed: log it, then treat it as a failed run (restart policy).
  void refuse(Instance& in, std::vector<Refusal> refused) {
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

  void schedule_restart(Instance& in, bool failed) {
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
    in.phase = Phase::backoff;
    in.due_ns = sys_.now_ns() + in.backoff_ns;
    event(in, SupervisorEventKind::restart_scheduled, "in " + std::to_string(in.backoff_ns) + " ns");
    in.backoff_ns = std::min(in.backoff_ns * 2, m.backoff_ns_max);
  }

  // The instance will not run again. If it provided a service, whoever waits
  // for that service is told now rather than left waiting.
  void finish_instance(Instance& in) {
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

  void handle_exits(std::uint64_t word) {
    for (Instance& in : instances_) {
      if (in.phase != Phase::running || (word & (std::uint64_t{1} << (in.index % 64))) == 0) continue;
      const kernel::Result<Sys::ProcessStatus> status = sys_.process_status(in.process);
      if (status && status->alive) continue;
      on_exit(in, status ? status.value() : Sys::ProcessStatus{});
    }
  }

  void on_exit(Instance& in, const Sys::ProcessStatus& status) {
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
  }

  void client_gone(std::uint64_t client) {
    for (auto& [name, svc] : services_)
      if (svc.up) send_gone(name, svc, client);
  }

  void send_gone(const std::string& name, const Service& svc, std::uint64_t client) {
    Message request{}, reply{};
    request.label = static_cast<std::uint64_t>(RootOp::client_gone);
    wire::Writer(request).u64(client);
    if (call_service(svc, request, reply).kernel != Error::timed_out) return;
    if (gone_retry_.empty()) gone_retry_due_ = sys_.now_ns() + host_.service_call_timeout_ns;
    gone_retry_.push_back({name, svc.root, client});
    event(instances_[*svc.provider], SupervisorEventKind::call_timed_out,
          "client_gone " + std::to_string(client) + ": sent again later");
  }

  void retry_gone() {
    std::vector<PendingGone> due;
    due.swap(gone_retry_);
    for (const PendingGone& g : due) {
      const Service& svc = service(g.service);
      if (svc.up && svc.root == g.root) send_gone(g.service, svc, g.client);
    }
  }

  // A trusted server (the standard ones) is waited on without limit; a
  // program's own service for service_call_timeout_ns at most (kernel: timed_out).
  Outcome call_service(const Service& svc, const Message& request, Message& reply) {
    if (svc.trusted) return call(sys_, svc.root, request, reply);
    const kernel::Status s = sys_.call_until(svc.root, request, reply, sys_.now_ns() + host_.service_call_timeout_ns);
    if (!s) return {s.error(), ServiceError::ok};
    return {Error{}, status_of(reply)};
  }

  // ---- requests from programs

  void handle_request(std::uint64_t badge, Message& request, Cap<kernel::Reply> reply_cap) {
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

  void finish(Cap<kernel::Reply> reply_cap, ServiceError e, Message& reply) {
    std::vector<kernel::Handle> given;
    for (std::uint32_t i = 0; i < reply.cap_count; ++i) given.push_back(reply.caps[i].handle);
    if (e != ServiceError::ok) reply = {};
    reply.label = static_cast<std::uint64_t>(e);
    (void)sys_.reply(reply_cap, reply);
    // The program's copies derive from ours; ours are not needed.
    for (const kernel::Handle h : given) (void)sys_.delete_cap(kernel::AnyCap(h));
  }

  ServiceError handle_announce(Instance& in, wire::Reader& args, Message& request) {
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
  void after_announce(const std::string& service) {
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

  const GrantSpec* find_grant(const Instance& in, std::string_view name) const {
    for (const GrantSpec& g : manifest(in).grants)
      if (g.name == name) return &g;
    return nullptr;
  }

  bool regrant_waits(const Instance& in, const std::string& grant, Cap<kernel::Reply> reply_cap) {
    const GrantSpec* g = find_grant(in, grant);
    if (g == nullptr) return false;
    const Service* svc = service_of(in, *g);
    if (svc == nullptr || svc->up || !svc->provider) return false;
    if (instances_[*svc->provider].phase == Phase::done) return false;  // it will not come back
    pending_.push_back({reply_cap, in.index, in.client, grant});
    return true;
  }

  ServiceError answer_regrant(const Instance& in, const std::string& grant, Message& reply) {
    const GrantSpec* g = find_grant(in, grant);
    if (g == nullptr) return ServiceError::not_found;
    Cap<Endpoint> session;
    const Outcome o = resolve(in, *g, &session);
    if (!o) return o.kernel != Error{} ? ServiceError::unavailable : o.service;
    reply.attach(session, Rights::send());
    return ServiceError::ok;
  }

  Sys& sys_;
  SupervisorHost& host_;
  Cap<Factory> factory_;
  Cap<Endpoint> ep_;
  Cap<Notification> exits_;
  std::vector<Instance> instances_;
  std::map<std::string, Service> services_;
  std::vector<PendingRegrant> pending_;
  std::vector<PendingGone> gone_retry_;
  std::uint64_t gone_retry_due_ = UINT64_MAX;
};

}  // namespace

void supervisor_main(Sys& sys, SupervisorHost& host) { Supervisor(sys, host).run(); }

}  // namespace persim::servers
