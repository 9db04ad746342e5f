#include "servers/system.hpp"

#include <cassert>
#include <cstdio>

namespace persim::servers {

using kernel::Error;
using kernel::ProcessId;
using kernel::Sys;

System::System(kernel::NodeConfig config, kernel::World* world) : node_(config, world) {
  bool registered = true;
  for (const StandardService& service : standard_services()) {
    ServerHost& host = *hosts_.emplace_back(service.make_host());
    registered = registered && node_.register_program(std::string(service.name), [&host, main = service.main](Sys& sys) {
      main(sys, host);
    });
  }
  registered = registered && node_.register_program("supervisor", [s = &supervisor_](Sys& sys) { supervisor_main(sys, *s); });
  assert(registered && "the standard programs register on a fresh node");
  (void)registered;
}

kernel::Status System::add_program(std::string name, kernel::Entry entry) {
  return node_.register_program(std::move(name), std::move(entry));
}

void System::add_standard_servers(RestartPolicy policy) {
  for (const StandardService& service : standard_services()) {
    Manifest m;
    m.instance = service.name;
    m.program = service.name;
    m.provides = service.name;
    m.restart = policy;
    m.trusted = true;
    add(std::move(m));
  }
}

kernel::Status System::boot() {
  if (supervisor_pid_) return Error::invalid_argument;
  const kernel::Result<ProcessId> pid = node_.create_process("supervisor");
  if (!pid) return pid.error();
  const kernel::Result<kernel::Handle> factory = node_.create_factory(*pid);
  if (!factory) return factory.error();
  if (const kernel::Status s = node_.name_grant(*pid, "factory", *factory); !s) return s;
  if (const kernel::Status s = node_.start_program(*pid, "supervisor"); !s) return s;
  supervisor_pid_ = *pid;
  return {};
}

void System::console_input(const std::string& stream, std::string_view text, bool end) {
  ConsoleHost& host = console();
  host.input[stream] += text;
  if (end) host.closed[stream] = true;
  const std::optional<ProcessId> process = process_of(ConsoleHost::service);
  if (process && !host.wake.is_null()) (void)node_.signal(*process, host.wake);
}

void System::use_durable_checkpoints(std::uint64_t group_commit_window_ns) {
  // SQLite's VFS names are process-wide: one per system, named by its address
  // (a name only; nothing in a run depends on it).
  char name[48];
  std::snprintf(name, sizeof name, "persim-disk-%p", static_cast<void*>(this));
  disk_ = std::make_unique<SimDisk>(name);
  ckpt().disk = disk_.get();
  ckpt().group_commit_window_ns = group_commit_window_ns;
}

kernel::Status System::power_loss(PowerLoss mode, std::uint64_t seed) {
  // The disk first: nothing the dying processes write reaches it (SQLite
  // closing its connection would otherwise checkpoint its log into the
  // database, which a real power cut never lets it do).
  if (disk_) disk_->cut();
  // The supervisor first, so that it does not see the others die.
  if (supervisor_pid_ && node_.alive(*supervisor_pid_)) (void)node_.kill(*supervisor_pid_);
  for (const ProcessId p : node_.process_ids())
    if (node_.alive(p)) (void)node_.kill(p);
  supervisor_pid_.reset();
  if (disk_) disk_->power_loss(mode, seed);
  return boot();
}

std::optional<ProcessId> System::process_of(std::string_view instance) const {
  std::optional<ProcessId> newest;
  std::uint64_t newest_incarnation = 0;
  const std::string prefix = std::string(instance) + "#";
  for (const ProcessId p : node_.process_ids()) {
    const std::string name = node_.name(p);
    if (!name.starts_with(prefix) || !node_.alive(p)) continue;
    const std::uint64_t incarnation = std::stoull(name.substr(prefix.size()));
    if (!newest || incarnation > newest_incarnation) {
      newest = p;
      newest_incarnation = incarnation;
    }
  }
  return newest;
}

}  // namespace persim::servers
