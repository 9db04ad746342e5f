// The checkpoint store's entry: its backend opened, its images and group
// epochs loaded, then served (the server is ckpt_store.hpp).
#include "servers/ckpt/ckpt.hpp"

#include <memory>
#include <stdexcept>

#include "servers/ckpt/backends.hpp"
#include "servers/ckpt/ckpt_store.hpp"

namespace persim::servers {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Sys;

std::vector<std::byte> CkptState::encode() const {
  std::vector<std::byte> out;
  auto put = [&out](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
  };
  auto put_bytes = [&](std::span<const std::byte> b) {
    put(b.size());
    out.insert(out.end(), b.begin(), b.end());
  };
  for (const auto& [name, slot] : slots) {
    put_bytes(std::as_bytes(std::span(name.data(), name.size())));
    put(slot.quota);
    put(slot.next_version);
    for (const auto& [version, image] : slot.images) {
      put(version);
      put(slot.base_of(version));
      put(slot.epoch_of(version));
      put_bytes(image);
    }
  }
  put(sessions.size());
  sessions.for_each([&](std::uint64_t badge, const CkptSession& s) {
    put(badge);
    put(s.client);
    put_bytes(std::as_bytes(std::span(s.slot.data(), s.slot.size())));
    put(s.staging.has_value());
    if (s.staging) put_bytes(*s.staging);
  });
  return out;
}

namespace {

// The groups' epochs are what the storage holds: after a power loss, an
// epoch whose transaction was lost is not committed, whatever was answered
// before the power went.
void set_committed_epochs(CkptHost& host, const std::map<std::string, std::uint64_t>& epochs) {
  for (auto& [name, group] : host.groups) {
    const auto it = epochs.find(name);
    group.committed_epoch = it != epochs.end() ? it->second : 0;
  }
  for (const auto& [name, epoch] : epochs) host.groups[name].committed_epoch = epoch;
}

}  // namespace

void ckpt_main(Sys& sys, CkptHost& host) {
  const std::unique_ptr<ckpt::Storage> storage = ckpt::open_storage(host);
  std::vector<StoredImage> images;
  std::map<std::string, std::uint64_t> epochs;
  std::optional<std::string> e = storage->load(&images);
  if (!e) e = storage->load_epochs(&epochs);
  if (e) {
    host.failure = *e;
    throw std::runtime_error("checkpoint store: " + *e);
  }
  set_committed_epochs(host, epochs);
  const kernel::Result<Cap<Endpoint>> ep = sys.endpoint_create();
  if (!ep) return;
  ckpt::CkptStore store(sys, *ep, host, *storage, std::move(images));
  announce_and_serve(sys, CkptHost::service, *ep, store, host.audit);
}

}  // namespace persim::servers
