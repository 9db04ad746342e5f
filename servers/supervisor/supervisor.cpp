// The supervisor: the manifests' types, and its setting up (run). Its
// members by concern are in grants.cpp, restart.cpp and serving.cpp; the
// class is supervisor_server.hpp.
#include "servers/supervisor/supervisor.hpp"

#include <algorithm>
#include <cassert>

#include "servers/supervisor/supervisor_server.hpp"

namespace persim::servers {

using kernel::Error;

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

namespace supervision {

using kernel::Factory;

void Supervisor::run() {
  const auto factory = sys_.granted<Factory>("factory");
  const auto ep = sys_.endpoint_create();
  const auto exits = sys_.notification_create();
  if (!factory || !ep || !exits || !sys_.notification_bind(*exits)) return;
  factory_ = *factory;
  ep_ = *ep;
  exits_ = *exits;
  add_instances();
  for (Instance& in : instances_) try_start(in);
  update_booted();
  loop();
}

// An instance for each manifest, the services they provide, and for each
// grant the service it needs (null: none provides it).
void Supervisor::add_instances() {
  assert(instances_.empty() && services_.empty());
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
    assert(in.grant_services.size() == manifest(in).grants.size());
  }
}

const GrantSpec* Supervisor::find_grant(const Instance& in, std::string_view name) const {
  for (const GrantSpec& g : manifest(in).grants)
    if (g.name == name) return &g;
  return nullptr;
}

void Supervisor::event(const Instance& in, SupervisorEventKind kind, std::string detail) {
  host_.events.push_back({sys_.now_ns(), manifest(in).instance, in.incarnation, kind, std::move(detail)});
  if (host_.on_event) host_.on_event(host_.events.back());
}

void Supervisor::update_booted() {
  host_.booted = host_.booted || std::none_of(instances_.begin(), instances_.end(), [](const Instance& in) {
                   return in.phase == Phase::idle || in.phase == Phase::waiting;
                 });
}

}  // namespace supervision

void supervisor_main(kernel::Sys& sys, SupervisorHost& host) { supervision::Supervisor(sys, host).run(); }

}  // namespace persim::servers
