// The standard services: the servers every node runs under its supervisor,
// in the order it starts them. This table is the one place they are listed:
// System boots them from it, the manifest reader checks their grants with it,
// the scenario checker reserves their names and the run's summary sums their
// audits by looping over it. Each server names its own service once, as its
// host's `service` (ConsoleHost::service, ...).
//
// A service of a program's own is not here: its manifest `provides` it.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kernel/sys.hpp"
#include "servers/session.hpp"

namespace persim::servers {

struct StandardService {
  std::string_view name;     // the service, its program and its instance
  std::string_view summary;  // one line: what it is for
  std::unique_ptr<ServerHost> (*make_host)();
  // The server's entry: `host` is what make_host made.
  void (*main)(kernel::Sys& sys, ServerHost& host);
  // Checks a grant's argument and mode letters as a manifest gives them.
  std::optional<GrantProblem> (*check_grant)(std::string_view argument, std::string_view mode);
};

// In start order: console, fs, kv, ckpt.
std::span<const StandardService> standard_services();
// Null if `name` is not a standard service.
const StandardService* find_standard_service(std::string_view name);
// "console, fs, kv, ckpt": for messages.
std::string standard_service_names();

}  // namespace persim::servers
