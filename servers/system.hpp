// A node (on a world of its own, or on one given) with the standard servers (servers/standard.hpp: console, file
// server, key-value store, checkpoint store) and a supervisor, built the way
// scenarios and tests build one: register programs, add manifests, boot.
#pragma once

#include <cassert>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/node.hpp"
#include "kernel/world.hpp"
#include "servers/ckpt/ckpt.hpp"
#include "servers/ckpt/simdisk.hpp"
#include "servers/console/console.hpp"
#include "servers/fs/fs.hpp"
#include "servers/kv/kv.hpp"
#include "servers/standard.hpp"
#include "servers/supervisor/supervisor.hpp"

namespace persim::servers {

class System {
 public:
  // The node joins `world` (which must outlive the system), or a world of its own.
  explicit System(kernel::NodeConfig config = {}, kernel::World* world = nullptr);
  System(const System&) = delete;
  System& operator=(const System&) = delete;

  kernel::Node& node() { return node_; }
  kernel::World& world() { return node_.world(); }

  // Registers a program processes can run. Errors: as Node::register_program.
  kernel::Status add_program(std::string name, kernel::Entry entry);
  // The manifests of the standard servers (trusted, each providing its
  // service), each restarted by `policy`.
  void add_standard_servers(RestartPolicy policy = RestartPolicy::always);
  void add(Manifest m) { supervisor_.manifests.push_back(std::move(m)); }

  // Creates the supervisor, grants it the factory and starts it. Once (and
  // again after a power loss).
  kernel::Status boot();

  // The checkpoint store keeps its images durably, in SQLite on the node's
  // simulated disk, committing in groups that wait up to `window_ns` (virtual).
  // Before boot().
  void use_durable_checkpoints(std::uint64_t group_commit_window_ns = 0);
  SimDisk* disk() { return disk_.get(); }

  // The node loses power: every process dies where it is (the supervisor
  // first), writes the disk had not synced are lost (or torn), and the node
  // boots again. What the servers' trusted storage held and the console's
  // output (the terminal) remain.
  kernel::Status power_loss(PowerLoss mode, std::uint64_t seed);

  // What outlives each standard server's processes, in standard_services() order.
  std::span<const std::unique_ptr<ServerHost>> hosts() const { return hosts_; }
  // The host of the standard server whose host type is H (H::service names it).
  template <class H>
  H& host() const {
    const auto& all = standard_services();
    for (std::size_t i = 0; i < all.size(); ++i)
      if (all[i].name == H::service) return static_cast<H&>(*hosts_[i]);
    assert(false && "not a standard server's host");
    std::abort();
  }
  ConsoleHost& console() { return host<ConsoleHost>(); }
  FileServerHost& fs() { return host<FileServerHost>(); }
  KvHost& kv() { return host<KvHost>(); }
  CkptHost& ckpt() { return host<CkptHost>(); }
  const SupervisorHost& supervisor() const { return supervisor_; }
  // See SupervisorHost::on_event. Null to stop.
  void on_supervisor_event(std::function<void(const SupervisorEvent&)> observer) {
    supervisor_.on_event = std::move(observer);
  }
  std::optional<kernel::ProcessId> supervisor_process() const { return supervisor_pid_; }

  // Queues input on a console stream (and closes it, if `end`), and wakes the
  // console so reads waiting on that stream are answered. Host side: between
  // runs, or from a host event or an I/O handler.
  void console_input(const std::string& stream, std::string_view text, bool end = false);

  // The live process of an instance's newest incarnation ("instance#n").
  std::optional<kernel::ProcessId> process_of(std::string_view instance) const;

 private:
  // The hosts are the servers' disks and terminal: they outlive server
  // processes. One per standard service, in standard_services() order.
  std::vector<std::unique_ptr<ServerHost>> hosts_;
  SupervisorHost supervisor_;
  std::optional<kernel::ProcessId> supervisor_pid_;
  std::unique_ptr<SimDisk> disk_;  // the durable checkpoint store's, if it has one
  kernel::Node node_;  // last: destroyed first, while the hosts its processes use still exist
};

}  // namespace persim::servers
