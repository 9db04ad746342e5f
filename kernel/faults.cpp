// The fault hooks' rules (kernel/faults.hpp); the hooks themselves fire in
// Sys::enter (kill at a call) and Node::maybe_delay_call (message delay).
#include "kernel/faults.hpp"

#include "kernel/node.hpp"

namespace persim::kernel {

Status FaultHooks::kill_at_call(ProcessId pid, std::uint64_t n) {
  Process* p = node_.find_live(pid);
  if (p == nullptr) return Error::bad_handle;
  p->kill_at_call = n;
  return {};
}

void FaultHooks::kill_at_call(std::string name, std::uint64_t n) { named_kills_.emplace_back(std::move(name), n); }

void FaultHooks::delay_calls(std::string prefix, std::uint64_t delay_ns_max, std::uint32_t per_million) {
  for (std::size_t i = 1; i < node_.table_.size(); ++i) {
    Process* p = node_.table_[i];
    if (p == nullptr || !p->name.starts_with(prefix)) continue;
    p->delay_ns_max = delay_ns_max;
    p->delay_per_million = per_million;
  }
  delay_rules_.push_back({std::move(prefix), delay_ns_max, per_million});
}

void FaultHooks::on_create(Process& p) {
  for (const DelayRule& rule : delay_rules_) {
    if (!p.name.starts_with(rule.prefix)) continue;
    p.delay_ns_max = rule.ns_max;
    p.delay_per_million = rule.per_million;
  }
  for (auto it = named_kills_.begin(); it != named_kills_.end(); ++it) {
    if (it->first != p.name) continue;
    p.kill_at_call = it->second;
    named_kills_.erase(it);
    break;
  }
}

std::uint64_t FaultHooks::draw_delay_ns(const Process& self) {
  if (draws_.below(1'000'000) >= self.delay_per_million) return 0;
  ++calls_delayed_;
  return 1 + draws_.below(self.delay_ns_max);
}

}  // namespace persim::kernel
