#include "servers/kv/kv.hpp"

#include <cassert>

#include "servers/wire.hpp"

namespace persim::servers {

using kernel::Cap;
using kernel::Endpoint;
using kernel::Message;
using kernel::Sys;

namespace {

constexpr std::string_view record_prefix = "kv:";

// "kv:" table NUL key: tables and keys never contain NUL.
std::string record_key(std::string_view table, std::string_view key) {
  std::string k(record_prefix);
  k.append(table).push_back('\0');
  k.append(key);
  return k;
}

bool valid_name(std::string_view s) {
  return !s.empty() && s.size() <= name_bytes_max && s.find('\0') == std::string_view::npos;
}

std::span<const std::byte> as_bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

class KvStore {
 public:
  KvStore(Sys& sys, Cap<Endpoint> ep, KvHost& host) : sys_(sys), ep_(ep), host_(host) {
    for (const auto& [k, v] : host_.store.records()) {
      if (!k.starts_with(record_prefix)) continue;
      const std::string_view rest = std::string_view(k).substr(record_prefix.size());
      const std::size_t nul = rest.find('\0');
      state_.tables[std::string(rest.substr(0, nul))][std::string(rest.substr(nul + 1))] =
          std::string(reinterpret_cast<const char*>(v.data()), v.size());
    }
    host_.live = &state_;
  }
  ~KvStore() { host_.live = nullptr; }
  KvStore(const KvStore&) = delete;
  KvStore& operator=(const KvStore&) = delete;

  Sessions<KvSession>& sessions() { return state_.sessions; }

  // A session on the grant's table, by default the client's instance's.
  ServiceError open(const OpenRequest& r, Message& reply) {
    const std::string_view table = r.argument_or_instance();
    if (!r.mode.empty() || !valid_name(table)) return ServiceError::malformed;
    return state_.sessions.open(sys_, ep_, r.instance, KvSession{r.client, std::string(table)}, reply, for_supervisor);
  }

  ServiceError handle(KvSession& s, Request& r, Message& reply) {
    wire::Reader& in = r.args;
    auto& table = state_.tables[s.table];
    switch (static_cast<KvOp>(r.op)) {
      case KvOp::get: {
        const std::string_view key = in.str();
        if (!in.done() || !valid_name(key)) return ServiceError::malformed;
        const auto it = table.find(std::string(key));
        if (it == table.end()) return ServiceError::not_found;
        wire::Writer(reply).str(it->second);
        return ServiceError::ok;
      }
      case KvOp::put: {
        const std::string key(in.str());
        const std::string_view value = in.str();
        if (!in.done() || !valid_name(key) || value.size() > kv_value_bytes_max) return ServiceError::malformed;
        if (!table.contains(key) && keys() >= kv_keys_max) return ServiceError::quota_exceeded;
        write(s.table, key, value);
        return ServiceError::ok;
      }
      case KvOp::del: {
        const std::string key(in.str());
        if (!in.done() || !valid_name(key)) return ServiceError::malformed;
        if (!table.contains(key)) return ServiceError::not_found;
        erase(s.table, key);
        return ServiceError::ok;
      }
      case KvOp::cas: return cas(s, in);
      case KvOp::txn: return txn(s, in, reply);
    }
    return ServiceError::unknown_operation;
  }

 private:
  ServiceError cas(const KvSession& s, wire::Reader& in) {
    const std::string key(in.str());
    const bool has_expected = in.u8() != 0;
    const std::string expected(has_expected ? in.str() : std::string_view());
    const bool has_new = in.u8() != 0;
    const std::string desired(has_new ? in.str() : std::string_view());
    if (!in.done() || !valid_name(key) || desired.size() > kv_value_bytes_max) return ServiceError::malformed;
    auto& table = state_.tables[s.table];
    const auto it = table.find(key);
    const bool matches = has_expected ? it != table.end() && it->second == expected : it == table.end();
    if (!matches) return ServiceError::conflict;
    if (has_new) {
      if (it == table.end() && keys() >= kv_keys_max) return ServiceError::quota_exceeded;
      write(s.table, key, desired);
    } else if (it != table.end()) {
      erase(s.table, key);
    }
    return ServiceError::ok;
  }

  ServiceError txn(const KvSession& s, wire::Reader& in, Message& reply) {
    const std::uint8_t n = in.u8();
    if (n > txn_ops_max) return ServiceError::malformed;
    std::vector<KvTxnOp> ops;
    for (std::uint8_t i = 0; i < n; ++i) {
      KvTxnOp op{static_cast<KvTxnOp::Kind>(in.u8()), std::string(in.str()), {}};
      if (op.kind == KvTxnOp::Kind::check_equal || op.kind == KvTxnOp::Kind::put) op.value = in.str();
      if (static_cast<std::uint8_t>(op.kind) > 3 || !valid_name(op.key) || op.value.size() > kv_value_bytes_max)
        return ServiceError::malformed;
      ops.push_back(std::move(op));
    }
    if (!in.done()) return ServiceError::malformed;
    auto& table = state_.tables[s.table];
    std::size_t new_keys = 0;
    for (std::uint8_t i = 0; i < n; ++i) {
      const KvTxnOp& op = ops[i];
      const auto it = table.find(op.key);
      const bool holds = op.kind == KvTxnOp::Kind::check_equal   ? it != table.end() && it->second == op.value
                         : op.kind == KvTxnOp::Kind::check_absent ? it == table.end()
                                                                  : true;
      if (!holds) {
        wire::Writer(reply).u8(i);
        return ServiceError::conflict;
      }
      if (op.kind == KvTxnOp::Kind::put && it == table.end()) ++new_keys;
    }
    if (keys() + new_keys > kv_keys_max) return ServiceError::quota_exceeded;
    for (const KvTxnOp& op : ops) {
      if (op.kind == KvTxnOp::Kind::put) write(s.table, op.key, op.value);
      if (op.kind == KvTxnOp::Kind::del && table.contains(op.key)) erase(s.table, op.key);
    }
    return ServiceError::ok;
  }

  std::size_t keys() const {
    std::size_t n = 0;
    for (const auto& [name, t] : state_.tables) n += t.size();
    return n;
  }

  // Write-through to the store's own disk before the reply goes.
  // Each leaves the state and the disk agreeing on the key.
  void write(const std::string& table, const std::string& key, std::string_view value) {
    assert(value.size() <= kv_value_bytes_max);
    state_.tables[table][key] = std::string(value);
    const std::string record = record_key(table, key);
    host_.store.put(record, as_bytes(value));
    assert(host_.store.get(record) != nullptr && host_.store.get(record)->size() == value.size());
    assert(keys() <= kv_keys_max);
  }
  void erase(const std::string& table, const std::string& key) {
    state_.tables[table].erase(key);
    const std::string record = record_key(table, key);
    host_.store.erase(record);
    assert(host_.store.get(record) == nullptr && !state_.tables[table].contains(key));
  }

  Sys& sys_;
  Cap<Endpoint> ep_;
  KvHost& host_;
  KvState state_;
};


}  // namespace

std::vector<std::byte> KvState::encode() const {
  wire::Encoder e;
  // Empty tables are an artefact of lookups: leave them out.
  for (const auto& [name, table] : tables) {
    if (table.empty()) continue;
    e.str(name).u64(table.size());
    for (const auto& [k, v] : table) e.str(k).str(v);
  }
  e.u64(sessions.size());
  sessions.for_each([&](std::uint64_t badge, const KvSession& s) { e.u64(badge).u64(s.client).str(s.table); });
  return e.take();
}

void kv_main(Sys& sys, KvHost& host) { run_server<KvStore>(sys, host); }

Outcome KvClient::get(Sys& sys, std::string_view key, std::string* value) const {
  Message request = wire::request(KvOp::get), reply{};
  if (!wire::Writer(request).str(key).ok()) return {kernel::Error{}, ServiceError::malformed};
  const Outcome o = call(sys, session_, request, reply);
  if (o) value->assign(wire::Reader(reply).str());
  return o;
}

Outcome KvClient::put(Sys& sys, std::string_view key, std::string_view value) const {
  Message request = wire::request(KvOp::put), reply{};
  if (!wire::Writer(request).str(key).str(value).ok()) return {kernel::Error{}, ServiceError::malformed};
  return call(sys, session_, request, reply);
}

Outcome KvClient::del(Sys& sys, std::string_view key) const {
  Message request = wire::request(KvOp::del), reply{};
  if (!wire::Writer(request).str(key).ok()) return {kernel::Error{}, ServiceError::malformed};
  return call(sys, session_, request, reply);
}

Outcome KvClient::cas(Sys& sys, std::string_view key, std::optional<std::string_view> expected,
                      std::optional<std::string_view> desired) const {
  Message request = wire::request(KvOp::cas), reply{};
  wire::Writer w(request);
  w.str(key).u8(expected.has_value());
  if (expected) w.str(*expected);
  w.u8(desired.has_value());
  if (desired) w.str(*desired);
  if (!w.ok()) return {kernel::Error{}, ServiceError::malformed};
  return call(sys, session_, request, reply);
}

Outcome KvClient::txn(Sys& sys, const std::vector<KvTxnOp>& ops, std::uint8_t* failed) const {
  Message request = wire::request(KvOp::txn), reply{};
  wire::Writer w(request);
  w.u8(static_cast<std::uint8_t>(ops.size()));
  for (const KvTxnOp& op : ops) {
    w.u8(static_cast<std::uint8_t>(op.kind)).str(op.key);
    if (op.kind == KvTxnOp::Kind::check_equal || op.kind == KvTxnOp::Kind::put) w.str(op.value);
  }
  if (!w.ok()) return {kernel::Error{}, ServiceError::malformed};
  const Outcome o = call(sys, session_, request, reply);
  if (o.service == ServiceError::conflict && failed != nullptr) *failed = wire::Reader(reply).u8();
  return o;
}

}  // namespace persim::servers
