// The checkpoint store's client side: CkptClient (ckpt.hpp).
#include <algorithm>

#include "servers/ckpt/ckpt.hpp"
#include "servers/wire.hpp"

namespace persim::servers {

using kernel::Cap;
using kernel::Message;
using kernel::Sys;

namespace {

Message request_for(CkptOp op) {
  Message m{};
  m.label = static_cast<std::uint64_t>(op);
  return m;
}

}  // namespace

Outcome CkptClient::bulk(Sys& sys, std::uint64_t size) {
  if (!buffer_.is_null() && buffer_size_ >= size) return {};
  if (!buffer_.is_null()) (void)sys.delete_cap(kernel::AnyCap(buffer_.handle()));
  buffer_ = {};
  buffer_size_ = 0;
  // Room to grow: images of one process change size a little between checkpoints.
  const std::uint64_t want = std::min<std::uint64_t>(kernel::buffer_bytes_max, std::max<std::uint64_t>(size + size / 4, 1024));
  const kernel::Result<Cap<kernel::Buffer>> b = sys.buffer_create(want);
  if (!b) return {b.error(), ServiceError::ok};
  buffer_ = *b;
  buffer_size_ = want;
  return {};
}

// The image in progress: lent in the buffer in one call, or sent in chunks
// (begin, chunks). The caller then commits or prepares it.
Outcome CkptClient::stage(Sys& sys, std::span<const std::byte> image, std::uint64_t base) {
  Message request, reply;  // only `length` bytes are used: no zeroing
  if (transfer_ == Transfer::buffer && image.size() <= kernel::buffer_bytes_max) {
    if (const Outcome o = bulk(sys, image.size()); !o) return o;
    if (const kernel::Status s = sys.buffer_write(buffer_, 0, image); !s) return {s.error(), ServiceError::ok};
    request = wire::request(CkptOp::stage);
    wire::Writer(request).u64(image.size()).u64(base);
    request.caps[0] = {buffer_.handle(), kernel::Rights::receive()};  // the store reads; it cannot write
    request.cap_count = 1;
    return call(sys, session_, request, reply);
  }
  request = wire::request(CkptOp::begin);
  wire::Writer(request).u64(image.size()).u64(base);
  Outcome o = call(sys, session_, request, reply);
  // One request message for every chunk: only the label and the payload change
  // (it carries no capabilities; only `length` bytes are sent).
  request.label = static_cast<std::uint64_t>(CkptOp::chunk);
  for (std::size_t at = 0; o && at < image.size(); at += chunk_bytes_max) {
    wire::Writer(request).u64(at).bytes(image.subspan(at, std::min(chunk_bytes_max, image.size() - at)));
    o = call(sys, session_, request, reply);
  }
  return o;
}

Outcome CkptClient::write(Sys& sys, std::span<const std::byte> image, std::uint64_t* version, std::uint64_t base) {
  Outcome o = stage(sys, image, base);
  if (!o) return o;
  Message request = wire::request(CkptOp::commit), reply;
  o = call(sys, session_, request, reply);
  if (o && version != nullptr) *version = wire::Reader(reply).u64();
  return o;
}

Outcome CkptClient::prepare(Sys& sys, std::span<const std::byte> image, std::uint64_t epoch,
                            std::uint64_t* version, std::uint64_t base) {
  Outcome o = stage(sys, image, base);
  if (!o) return o;
  Message request = wire::request(CkptOp::prepare), reply{};
  wire::Writer(request).u64(epoch);
  o = call(sys, session_, request, reply);
  if (o && version != nullptr) *version = wire::Reader(reply).u64();
  return o;
}

Outcome CkptClient::group_rollback(Sys& sys, std::uint64_t from, std::uint64_t to, std::uint64_t* went_to) const {
  Message request = wire::request(CkptOp::group_rollback), reply{};
  wire::Writer(request).u64(from).u64(to);
  const Outcome o = call(sys, session_, request, reply);
  if (o && went_to != nullptr) *went_to = wire::Reader(reply).u64();
  return o;
}

Outcome CkptClient::group_epoch(Sys& sys, std::uint64_t* epoch) const {
  Message request = wire::request(CkptOp::group_epoch), reply{};
  const Outcome o = call(sys, session_, request, reply);
  if (o) *epoch = wire::Reader(reply).u64();
  return o;
}

Outcome CkptClient::read_newest(Sys& sys, std::vector<std::byte>* image, std::uint64_t* version) {
  Message request = request_for(CkptOp::info), reply{};
  const Outcome o = call(sys, session_, request, reply);
  if (!o) return o;
  wire::Reader info(reply);
  const std::uint64_t v = info.u64();
  const std::uint64_t size = info.u64();
  if (version != nullptr) *version = v;
  return read(sys, v, size, image);
}

Outcome CkptClient::read(Sys& sys, std::uint64_t version, std::uint64_t size, std::vector<std::byte>* image) {
  image->clear();
  if (transfer_ == Transfer::buffer && size <= kernel::buffer_bytes_max) {
    if (const Outcome o = bulk(sys, size); !o) return o;
    Message request = request_for(CkptOp::fetch), reply{};
    wire::Writer(request).u64(version).u64(0);
    request.caps[0] = {buffer_.handle(), kernel::Rights::send()};  // the store writes; it cannot read
    request.cap_count = 1;
    if (const Outcome o = call(sys, session_, request, reply); !o) return o;
    if (wire::Reader(reply).u64() != size) return {kernel::Error{}, ServiceError::failed};  // not the image listed
    image->resize(size);
    if (const kernel::Status s = sys.buffer_read(buffer_, 0, *image); !s) return {s.error(), ServiceError::ok};
    return {};
  }
  image->reserve(size);
  Message request = request_for(CkptOp::read), reply{};
  while (image->size() < size) {
    wire::Writer(request).u64(version).u64(image->size()).u32(static_cast<std::uint32_t>(chunk_bytes_max));
    const Outcome o = call(sys, session_, request, reply);
    if (!o) return o;
    wire::Reader in(reply);
    const std::span<const std::byte> part = in.bytes();
    if (part.empty()) return {kernel::Error{}, ServiceError::failed};  // the image went while we read it
    image->insert(image->end(), part.begin(), part.end());
  }
  return {};
}

Outcome CkptClient::list(Sys& sys, std::vector<CkptKept>* versions) const {
  Message request = request_for(CkptOp::list), reply{};
  const Outcome o = call(sys, session_, request, reply);
  if (!o) return o;
  wire::Reader in(reply);
  versions->clear();
  for (std::uint8_t n = in.u8(); n > 0 && in.ok(); --n) {
    CkptKept& k = versions->emplace_back();
    k.version = in.u64();
    k.size = in.u64();
    k.base = in.u64();
  }
  return o;
}

}  // namespace persim::servers
