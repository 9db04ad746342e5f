// The checkpoint store's group checkpoints: a member's prepare waits for the
// rest of its group, the epoch then commits in one transaction; a member's
// death aborts the epoch in progress; a rollback takes the group back to an
// epoch every member keeps. Paired assertions on the epoch's commit and on the
// rollback.
#include <algorithm>
#include <cassert>

#include "servers/ckpt/ckpt_store.hpp"

namespace persim::servers::ckpt {

using kernel::Message;

// A member's prepare: the group's next epoch, and a complete image.
ServiceError CkptStore::check_prepare(std::uint64_t badge, CkptSession& s, CkptSlot& slot, wire::Reader& in,
                                      std::uint64_t* epoch) {
  *epoch = in.u64();
  if (s.group.empty()) return ServiceError::wrong_session;
  if (*epoch != host_.groups[s.group].committed_epoch + 1) return ServiceError::conflict;
  if (prepared_[s.group].contains(s.slot)) return ServiceError::conflict;  // prepared already
  return check_commit(badge, s, slot, in);
}

bool CkptStore::defer_prepare(std::uint64_t badge, Message& request, kernel::Cap<kernel::Reply> reply) {
  CkptSession* s = state_.sessions.find(badge);
  if (s == nullptr) return false;
  CkptSlot& slot = state_.slots[s->slot];
  wire::Reader in(request);
  std::uint64_t epoch = 0;
  if (check_prepare(badge, *s, slot, in, &epoch) != ServiceError::ok) return false;  // answered now, with the error
  Pending p = take(badge, *s, slot);
  p.reply = reply;
  std::map<std::string, Pending>& waiting = prepared_[s->group];
  waiting.emplace(s->slot, std::move(p));
  const CkptGroup& group = host_.groups[s->group];
  assert(waiting.size() <= std::max<std::size_t>(group.size, group.members.size()));
  if (waiting.size() == std::max<std::size_t>(group.size, group.members.size())) commit_group(s->group);
  return true;
}

// Every member has prepared: their images commit in one transaction.
void CkptStore::commit_group(const std::string& name) {
  std::vector<Pending> batch;
  CkptGroup& group = host_.groups[name];
  [[maybe_unused]] const std::uint64_t committed_before = group.committed_epoch;
  const GroupEpoch epoch{name, group.committed_epoch + 1};
  for (auto& [slot, p] : prepared_[name]) {
    assert(group.members.contains(slot));
    p.epoch = epoch.second;
    batch.push_back(std::move(p));
  }
  prepared_.erase(name);
  const bool ok = apply(batch, &epoch);
  if (ok) {
    group.committed_epoch = epoch.second;
    ++host_.group_commits;
  } else {
    ++host_.group_aborts;  // the backend refused: the members are told the epoch failed
  }
  // The group's epoch advanced by exactly one, or not at all; no member's image of it waits.
  assert(group.committed_epoch == committed_before + (ok ? 1 : 0) && !prepared_.contains(name));
  answer_all(batch, ok);
}

// The newest epoch at most `to` of which every member of `group` keeps an
// image (0, a fresh start, if there is none).
std::uint64_t CkptStore::common_epoch(const CkptGroup& group, std::uint64_t to) {
  std::set<std::uint64_t> common;
  bool first = true;
  for (const std::string& member : group.members) {
    std::set<std::uint64_t> has;
    for (const auto& [version, epoch] : state_.slots[member].epochs)
      if (epoch <= to && (first || common.contains(epoch))) has.insert(epoch);
    common = std::move(has);
    first = false;
  }
  return common.empty() ? 0 : *common.rbegin();
}

// The group goes back from its committed epoch `from` to `to`: every
// member's images of the epochs after `to` are erased with the new epoch, in
// one transaction, and an epoch in progress is aborted. Epochs after `to`
// are then prepared afresh (their numbers reused: no image of the old ones
// is left).
ServiceError CkptStore::rollback(const std::string& name, std::uint64_t from, std::uint64_t to, Message& reply) {
  CkptGroup& group = host_.groups[name];
  if (from != group.committed_epoch || to >= from) return ServiceError::conflict;
  // No further back than asked, and to an epoch every member keeps an image of.
  to = common_epoch(group, to);
  assert(to < from);
  abort_group(name);
  DurableImages::Batch& batch = batch_;
  batch.puts.clear();
  batch.erases.clear();
  batch.epochs.assign(1, {name, to});
  // Every member's images of later epochs go, and any of an epoch not known
  // (0: a database from before epochs were recorded).
  for (const std::string& member : group.members) {
    const CkptSlot& slot = state_.slots[member];
    for (const auto& [version, image] : slot.images)
      if (const std::uint64_t epoch = slot.epoch_of(version); epoch == 0 || epoch > to)
        batch.erases.emplace_back(member, version);
  }
  if (const std::optional<std::string> e = storage_.commit(batch)) {
    host_.failure = *e;
    return ServiceError::failed;
  }
  ++host_.stats.transactions;
  for (const auto& [member, version] : batch.erases) drop(member, version);
  group.committed_epoch = to;
  ++host_.group_rollbacks;
  assert(rolled_back(group, to) && !prepared_.contains(name));
  wire::Writer(reply).u64(to);
  return ServiceError::ok;
}

// After a rollback to `to`: the group's committed epoch is `to`, no member
// keeps an image of a later epoch (or of none), and each keeps one of `to`
// itself unless it is 0 (the images of a commit and of its rollback agree).
bool CkptStore::rolled_back(const CkptGroup& group, std::uint64_t to) const {
  if (group.committed_epoch != to) return false;
  return std::all_of(group.members.begin(), group.members.end(), [&](const std::string& member) {
    const auto found = state_.slots.find(member);
    if (found == state_.slots.end()) return to == 0;
    const CkptSlot& slot = found->second;
    bool has_to = to == 0;
    for (const auto& [version, image] : slot.images) {
      const std::uint64_t epoch = slot.epoch_of(version);
      if (epoch == 0 || epoch > to) return false;
      has_to = has_to || epoch == to;
    }
    return has_to && slot_consistent(slot);
  });
}

// A member is gone: the epoch in progress is dropped and its waiting members told.
void CkptStore::abort_group(const std::string& name) {
  const auto it = prepared_.find(name);
  if (it == prepared_.end()) return;
  std::vector<Pending> dropped;
  for (auto& [slot, p] : it->second) dropped.push_back(std::move(p));
  prepared_.erase(it);
  ++host_.group_aborts;
  answer_all(dropped, false);
}

}  // namespace persim::servers::ckpt
