// The supervisor: starts programs from manifests, grants each exactly what its
// manifest names (resolved afresh at every start), watches them, restarts them
// by policy with backoff, and keeps a restart log of what each death severed
// and each start re-granted or refused. Servers are programs too: a server
// announces its service to the supervisor, which alone holds its root.
//
// Every program is also granted "supervisor": a send-only capability badged
// with its client id, through which it can announce (servers) or ask for one of
// its manifest grants again (after a server it used has crashed).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kernel/handle.hpp"
#include "kernel/limits.hpp"
#include "kernel/sys.hpp"
#include "servers/client.hpp"
#include "servers/session.hpp"
#include "servers/supervisor/client.hpp"

namespace persim::servers {

enum class RestartPolicy : std::uint8_t { never, always, on_failure };
std::string_view to_string(RestartPolicy p) noexcept;

// One named grant of a manifest: `name = "service:argument"` with a mode. The
// supervisor resolves it by asking the service for a session (an OpenRequest:
// the argument and mode as written, and who the client is); what they mean is
// the server's to decide. The standard servers':
//   console            a console session; argument: stream name (default: the instance)
//   fs:/path           a file session on /path; mode letters r w a c t (read,
//                      write, append, create, truncate); fs:/dir/ with d opens a directory
//   kv:table           a key-value session on `table` (default: the instance)
//   ckpt               the instance's checkpoint slot; argument: slot (default: the instance)
struct GrantSpec {
  std::string name;
  std::string service;
  std::string argument;
  std::string mode;
  // "fs:/var/log/app (a)"
  std::string describe() const;
};
// Splits "service:argument". Errors: an empty name or service.
kernel::Result<GrantSpec> parse_grant(std::string_view name, std::string_view source, std::string_view mode);

// The longest instance name: "instance#incarnation" must fit a process name.
inline constexpr std::size_t instance_bytes_max = kernel::program_name_bytes_max - 11;

struct Manifest {
  std::string instance;  // unique; names its processes "instance#incarnation"
  std::string program;   // a program registered on the node
  std::vector<GrantSpec> grants;
  std::string provides;  // the service this instance announces, if it is a server
  // A checkpoint group: its members' ckpt slots commit together (group
  // checkpoints), and when one member dies the supervisor kills the others, so
  // that all restart from the group's last committed epoch.
  std::string group;
  RestartPolicy restart = RestartPolicy::never;
  std::uint64_t backoff_ns_initial = 1'000'000;  // before the first restart; doubles each time
  std::uint64_t backoff_ns_max = 1'000'000'000;
  std::uint32_t restarts_max = 1000;  // then the supervisor gives up on it
  // A server the supervisor trusts to answer (the standard servers): it waits
  // on it without limit. Any other service is waited on for
  // SupervisorHost::service_call_timeout_ns at most.
  bool trusted = false;
  // Parameters for the program ([program.params] in TOML), as text. The
  // supervisor does not read them; whoever registers the program does.
  std::map<std::string, std::string> params;
};

// What the supervisor reports to the host: a timeline and the restart log.
enum class SupervisorEventKind : std::uint8_t {
  started,        // a process of the instance started
  exited,         // it died (detail: how)
  announced,      // it announced its service
  start_refused,  // a grant could not be provided (detail names it and why)
  waiting,        // a grant's service is not up yet (detail names it)
  restart_scheduled,
  gave_up,        // restarts_max reached: never restarted again
  call_timed_out,  // its service did not answer the supervisor in time (detail: what; retried or refused)
};
std::string_view to_string(SupervisorEventKind k) noexcept;

struct SupervisorEvent {
  std::uint64_t time_ns;
  std::string instance;
  std::uint32_t incarnation;
  SupervisorEventKind kind;
  std::string detail;
};

// One restart: what the dead incarnation lost and what the new one was given.
struct RestartRecord {
  std::uint64_t time_ns;
  std::string instance;
  std::uint32_t incarnation;  // the new one
  kernel::ExitReason cause;
  std::vector<std::string> severed;    // the dead incarnation's manifest grants
  std::uint32_t severed_other;       // the other capabilities it held: created, or obtained by requests
  std::vector<std::string> regranted;  // manifest grants given to the new incarnation
  std::vector<std::pair<std::string, std::string>> refused;  // grant, why
};

// The supervisor's state the host may read (it is the host's trusted agent).
struct SupervisorHost {
  std::vector<Manifest> manifests;
  ServerAudit audit;  // requests it refused (restores of client state among them)
  // Both only grow, by a few entries per restart: deques, so that a long run's
  // log is never copied to grow.
  std::deque<SupervisorEvent> events;
  std::deque<RestartRecord> restarts;
  // The supervisor has started every instance it could, at least once.
  bool booted = false;
  // The last incarnation of each instance: a supervisor started after a power
  // loss numbers on from there, so process names stay unique.
  std::map<std::string, std::uint32_t> incarnations;
  // How long (virtual ns) the supervisor waits on a program's own service (an
  // open, a client_gone) before giving up on that call: such a service may be
  // blocked on the supervisor itself (a regrant waiting for a restart), and
  // the supervisor must never wait for ever on a program it does not trust.
  // A trusted server (Manifest::trusted: the standard ones) has no limit.
  std::uint64_t service_call_timeout_ns = 1'000'000;
  // Called with each event just after the supervisor logs it, on the
  // supervisor's own fiber: for a host that watches a run as it happens (a live
  // timeline; a benchmark's clock). It must not call into the node, change this
  // SupervisorHost (the supervisor holds references into it) or throw. It sees
  // what `events` records, nothing more, and changes nothing in the simulated
  // world (the trace hash is the same with or without it).
  std::function<void(const SupervisorEvent&)> on_event;
};

// The supervisor's entry: its grants are "factory" (to create processes).
void supervisor_main(kernel::Sys& sys, SupervisorHost& host);

}  // namespace persim::servers
