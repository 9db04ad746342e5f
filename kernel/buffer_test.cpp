// Buffers: bytes that travel by capability.
#include <gtest/gtest.h>

#include "support/harness.hpp"

namespace persim::kernel {
namespace {

using persim::testing::expect_consistent;
using persim::testing::test_config;

std::vector<std::byte> counting(std::size_t n) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>(i * 7 + 1);
  return v;
}

// Property: a process lends a buffer with `receive` only; the borrower reads
// exactly what was written, cannot write it, and cannot read or write past
// its end; a refused call changes nothing.
TEST(Buffer, RightsAndBoundsAreChecked) {
  Node node(test_config());
  const ProcessId lender = node.create_process("lender").value();
  const ProcessId borrower = node.create_process("borrower").value();
  const Handle ep = node.create_endpoint(borrower).value();
  const Handle to_borrower = node.grant(borrower, ep, lender, Rights::send() | Rights::grant()).value();
  const std::vector<std::byte> data = counting(1000);
  std::vector<std::byte> seen(1000);
  std::vector<Error> errors;
  node.start(lender, [&](Sys& sys) {
        const Cap<Buffer> b = sys.buffer_create(1000).value();
        EXPECT_EQ(sys.buffer_size(b).value(), 1000u);
        ASSERT_TRUE(sys.buffer_write(b, 0, data).ok());
        errors.push_back(sys.buffer_write(b, 999, std::span(data).first(2)).error());  // one byte past the end
        Message m{};
        m.caps[0] = {b.handle(), Rights::receive()};
        m.cap_count = 1;
        Message reply{};
        ASSERT_TRUE(sys.call(Cap<Endpoint>(to_borrower), m, reply).ok());
        // The borrower's refused write changed nothing.
        std::vector<std::byte> back(1000);
        ASSERT_TRUE(sys.buffer_read(b, 0, back).ok());
        EXPECT_EQ(back, data);
      })
      .ok();
  node.start(borrower, [&](Sys& sys) {
        Message m{};
        const Received r = sys.receive(Cap<Endpoint>(ep), m).value();
        const Cap<Buffer> b = m.received_cap<Buffer>(0);
        EXPECT_TRUE(sys.buffer_read(b, 0, seen).ok());
        errors.push_back(sys.buffer_write(b, 0, std::span(data).first(1)).error());
        std::vector<std::byte> past(2);
        errors.push_back(sys.buffer_read(b, 999, past).error());
        errors.push_back(sys.buffer_read(b, 1001, std::span<std::byte>()).error());
        ASSERT_TRUE(sys.reply(r.reply, Message{}).ok());
      })
      .ok();
  node.run();
  EXPECT_EQ(seen, data);
  EXPECT_EQ(errors, (std::vector<Error>{Error::invalid_argument, Error::insufficient_rights, Error::invalid_argument,
                                        Error::invalid_argument}));
  expect_consistent(node);
}

// Property: a lent buffer is read while its maker lives; a borrower's
// capability is derived from the maker's, so it is severed when the maker
// dies, and the buffer is freed with it (the invariants count buffers).
TEST(Buffer, LentCapabilitiesEndWithTheMaker) {
  Node node(test_config());
  const ProcessId maker = node.create_process("maker").value();
  const ProcessId keeper = node.create_process("keeper").value();
  const Handle ep = node.create_endpoint(keeper).value();
  const Handle to_keeper = node.grant(keeper, ep, maker, Rights::send() | Rights::grant()).value();
  const std::vector<std::byte> data = counting(64);
  std::vector<std::byte> during(64), after(64);
  Error after_error{};
  node.start(maker, [&](Sys& sys) {
        const Cap<Buffer> b = sys.buffer_create(64).value();
        ASSERT_TRUE(sys.buffer_write(b, 0, data).ok());
        Message m{};
        m.caps[0] = {b.handle(), Rights::all()};
        m.cap_count = 1;
        Message reply{};
        ASSERT_TRUE(sys.call(Cap<Endpoint>(to_keeper), m, reply).ok());
      })  // the maker returns: its capability goes, the keeper's stays
      .ok();
  node.start(keeper, [&](Sys& sys) {
        Message m{};
        const Received r = sys.receive(Cap<Endpoint>(ep), m).value();
        const Cap<Buffer> b = m.received_cap<Buffer>(0);
        ASSERT_TRUE(sys.buffer_read(b, 0, during).ok());
        ASSERT_TRUE(sys.reply(r.reply, Message{}).ok());
        ASSERT_TRUE(sys.sleep_for(1000).ok());  // the maker is gone by now
        after_error = sys.buffer_read(b, 0, after).error();
      })
      .ok();
  node.run();
  EXPECT_EQ(during, data);
  EXPECT_EQ(after_error, Error::severed);
  EXPECT_EQ(after, std::vector<std::byte>(64));
  expect_consistent(node);  // no buffer left allocated without a capability
}

// Property: a made-up handle, a capability of another type and an oversized
// buffer are refused precisely.
TEST(Buffer, BadHandlesAndSizesAreRefused) {
  Node node(test_config());
  const ProcessId p = node.create_process("p").value();
  std::vector<Error> errors;
  node.start(p, [&](Sys& sys) {
        std::vector<std::byte> one(1);
        errors.push_back(sys.buffer_read(Cap<Buffer>(Handle::from_raw(0x1234567)), 0, one).error());
        const Cap<Endpoint> ep = sys.endpoint_create().value();
        errors.push_back(sys.buffer_write(Cap<Buffer>(ep.handle()), 0, one).error());
        errors.push_back(sys.buffer_create(buffer_bytes_max + 1).error());
      })
      .ok();
  node.run();
  EXPECT_EQ(errors, (std::vector<Error>{Error::bad_handle, Error::wrong_type, Error::invalid_argument}));
  expect_consistent(node);
}

}  // namespace
}  // namespace persim::kernel
