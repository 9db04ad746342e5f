#include "servers/standard.hpp"

#include <array>

#include "servers/ckpt/ckpt.hpp"
#include "servers/console/console.hpp"
#include "servers/fs/fs.hpp"
#include "servers/kv/kv.hpp"

namespace persim::servers {

namespace {

// A grant that takes no mode (console, kv, ckpt): any argument is the
// server's to judge when it opens the session.
template <class Host>
std::optional<GrantProblem> no_mode(std::string_view, std::string_view mode) {
  if (mode.empty()) return std::nullopt;
  return GrantProblem{GrantProblem::Where::mode, "a " + std::string(Host::service) + " grant takes no mode"};
}

template <class Host, void (*Main)(kernel::Sys&, Host&),
          std::optional<GrantProblem> (*Check)(std::string_view, std::string_view)>
constexpr StandardService service(std::string_view summary) {
  return StandardService{
      Host::service,
      summary,
      []() -> std::unique_ptr<ServerHost> { return std::make_unique<Host>(); },
      [](kernel::Sys& sys, ServerHost& host) { Main(sys, static_cast<Host&>(host)); },
      Check,
  };
}

constexpr std::array<StandardService, 4> all = {
    service<ConsoleHost, console_main, no_mode<ConsoleHost>>(
        "per-session output and input streams; interactive terminal bridge"),
    service<FileServerHost, file_server_main, fs_check_grant>(
        "files; file and directory sessions with modes and offsets"),
    service<KvHost, kv_main, no_mode<KvHost>>("tables of keys; get, put, del, compare-and-set, transactions"),
    service<CkptHost, ckpt_main, no_mode<CkptHost>>("each process's own images, in slots, with versions and a quota"),
};

}  // namespace

std::span<const StandardService> standard_services() { return all; }

const StandardService* find_standard_service(std::string_view name) {
  for (const StandardService& s : all)
    if (s.name == name) return &s;
  return nullptr;
}

std::string standard_service_names() {
  std::string out;
  for (const StandardService& s : all) out.append(out.empty() ? "" : ", ").append(s.name);
  return out;
}

}  // namespace persim::servers
