// The supervisor's server: the instances it runs, the services they provide,
// and the requests and restarts it answers. Internal to the supervisor
// (servers/supervisor/); what the host sees is supervisor.hpp.
//
// Its members by concern:
//   supervisor.cpp  setting up (run) and the manifests' types
//   grants.cpp      starting an instance: its manifest's grants resolved at the
//                   services, the process started and watched
//   restart.cpp     deaths and the restart policy: backoff, giving up, a dead
//                   client's sessions closed at every service
//   serving.cpp     the loop and the requests of programs: announce, regrant
#pragma once

#include <cassert>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/sys.hpp"
#include "servers/supervisor/supervisor.hpp"
#include "servers/wire.hpp"

namespace persim::servers::supervision {

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
  kernel::Cap<kernel::Process> process;
  kernel::Cap<kernel::Notification> watch;
  std::uint64_t due_ns = 0;
  std::uint64_t backoff_ns = 0;
  std::uint32_t restarts = 0;
  std::string waiting_for;
  // Set at a death, completed and logged at the next start attempt.
  std::optional<RestartRecord> record;
};

struct Service {
  std::optional<std::size_t> provider;  // the instance whose manifest provides it
  kernel::Cap<kernel::Endpoint> root;
  bool up = false;
  bool trusted = false;  // its provider's manifest says so: waited on without limit
};

// A client_gone a program's service did not take in time: sent again later,
// unless the service has restarted meanwhile (its sessions went with it).
struct PendingGone {
  std::string service;
  kernel::Cap<kernel::Endpoint> root;  // the incarnation it was meant for
  std::uint64_t client;
};

// A regrant that waits for its service to come back.
struct PendingRegrant {
  kernel::Cap<kernel::Reply> reply;
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
  Supervisor(kernel::Sys& sys, SupervisorHost& host) : sys_(sys), host_(host) {}

  // Sets up, starts every instance it can, then serves until its endpoint goes. May suspend.
  void run();

 private:
  // ---- setting up (supervisor.cpp)
  void add_instances();
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
  const GrantSpec* find_grant(const Instance& in, std::string_view name) const;
  void event(const Instance& in, SupervisorEventKind kind, std::string detail = {});
  void update_booted();

  // ---- starting (grants.cpp)
  void try_start(Instance& in);
  void start(Instance& in);
  std::vector<Refusal> grant_manifest(const Instance& in, kernel::Cap<kernel::Process> process,
                                      std::vector<std::string>* granted);
  void started(Instance& in, kernel::Cap<kernel::Process> process, std::vector<std::string> granted);
  std::vector<Refusal> watch_and_start(Instance& in, kernel::Cap<kernel::Process> process);
  Outcome resolve(const Instance& in, const GrantSpec& g, kernel::Cap<kernel::Endpoint>* session);
  std::uint64_t group_size(const std::string& group, const std::string& service) const;

  // ---- deaths and restarts (restart.cpp)
  void refuse(Instance& in, std::vector<Refusal> refused);
  void schedule_restart(Instance& in, bool failed);
  void finish_instance(Instance& in);
  void handle_exits(std::uint64_t word);
  void on_exit(Instance& in, const kernel::Sys::ProcessStatus& status);
  void client_gone(std::uint64_t client);
  void send_gone(const std::string& name, const Service& svc, std::uint64_t client);
  void retry_gone();
  Outcome call_service(const Service& svc, const kernel::Message& request, kernel::Message& reply);

  // ---- serving (serving.cpp)
  void loop();
  void on_timeout();
  void handle_request(std::uint64_t badge, kernel::Message& request, kernel::Cap<kernel::Reply> reply_cap);
  void finish(kernel::Cap<kernel::Reply> reply_cap, ServiceError e, kernel::Message& reply);
  ServiceError handle_announce(Instance& in, wire::Reader& args, kernel::Message& request);
  void after_announce(const std::string& service);
  bool regrant_waits(const Instance& in, const std::string& grant, kernel::Cap<kernel::Reply> reply_cap);
  ServiceError answer_regrant(const Instance& in, const std::string& grant, kernel::Message& reply);

  kernel::Sys& sys_;
  SupervisorHost& host_;
  kernel::Cap<kernel::Factory> factory_;
  kernel::Cap<kernel::Endpoint> ep_;
  kernel::Cap<kernel::Notification> exits_;
  std::vector<Instance> instances_;
  std::map<std::string, Service> services_;
  std::vector<PendingRegrant> pending_;
  std::vector<PendingGone> gone_retry_;
  std::uint64_t gone_retry_due_ = UINT64_MAX;
};

}  // namespace persim::servers::supervision
