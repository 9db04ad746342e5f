#include "bench/restart_rig.hpp"

#include <limits>
#include <tuple>

#include "libpersist/persist.hpp"

namespace persim::bench {

bool RestartRig::boot() {
  system_.add_standard_servers();
  system_.on_supervisor_event([this](const servers::SupervisorEvent& e) {
    if (e.kind == servers::SupervisorEventKind::restart_scheduled && e.instance == "app") scheduled_();
  });
  const kernel::Status added = system_.add_program("app", [this](kernel::Sys& sys) { program(sys); });
  servers::Manifest m;
  m.instance = "app";
  m.program = "app";
  for (const auto& [name, source, mode] : {std::tuple{"data", "fs:/data/", "rwcd"},
                                           std::tuple{"console", "console", ""}, std::tuple{"ckpt", "ckpt", ""}})
    m.grants.push_back(servers::parse_grant(name, source, mode).value());
  m.restart = servers::RestartPolicy::always;
  m.backoff_ns_initial = 0;
  m.backoff_ns_max = 0;
  m.restarts_max = std::numeric_limits<std::uint32_t>::max();
  system_.add(std::move(m));
  if (!added || !system_.boot()) return failed("cannot set up the system");
  system_.node().run();
  if (!failure_.empty()) return false;
  if (incarnations_ != 1) return failed("the first incarnation did not run");
  return true;
}

bool RestartRig::restart(std::optional<kernel::ProcessId> pid) {
  const std::uint64_t expected = incarnations_ + 1;
  if (!pid || !system_.node().kill(*pid)) return failed("no program to kill");
  system_.node().run();
  if (!failure_.empty()) return false;
  if (incarnations_ != expected) return failed("the program did not run again");
  return true;
}

void RestartRig::program(kernel::Sys& sys) {
  persist::Persistent p(sys, {.program = "app"});
  std::uint64_t count = 0;
  p.field("count", count);
  persist::File& log = p.file("log", "data", "log",
                              servers::fs_mode::read | servers::fs_mode::write | servers::fs_mode::create);
  persist::Console& out = p.console("out", "console");
  persist::Restored found;
  const persist::PersistStatus restored = p.restore(&found);
  running_again_();
  ++incarnations_;
  if (!restored) {
    failure_ = "restore: " + restored.what;
    return;
  }
  if (!found.from_image) {
    count = 1;
    if (!log.write(sys, "twelve bytes") || !out.write(sys, "started\n") || !p.checkpoint()) {
      failure_ = "first incarnation: write or checkpoint failed";
      return;
    }
  } else {
    std::uint64_t offset = 0, size = 0;
    if (count != 1 || !log.client().stat(sys, &offset, &size) || offset != 12 || size != 12) {
      failure_ = "restored state or file offset is wrong";
      return;
    }
  }
  // Runs again: now wait for ever (no timer: the node goes quiescent).
  const kernel::Result<kernel::Cap<kernel::Endpoint>> idle = sys.endpoint_create();
  kernel::Message m{};
  if (idle) (void)sys.receive(*idle, m);
}

}  // namespace persim::bench
