// Real I/O over Boost.Asio: the kernel's RealIo door (kernel/real_io.hpp)
// opened on an io_context, for the host-side parts that talk to the real
// world (the console's terminal bridge; later, node links over sockets). The
// kernel never sees Asio: a run is given an AsioIo as RunLimits::real_io.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstddef>

#include "kernel/real_io.hpp"

namespace persim::servers {

class AsioIo final : public kernel::RealIo {
 public:
  AsioIo() = default;
  AsioIo(const AsioIo&) = delete;
  AsioIo& operator=(const AsioIo&) = delete;

  // Where the host-side parts start their asynchronous operations.
  boost::asio::io_context& context() { return io_; }

  // restart(): a context that ran out of work is stopped until restarted.
  std::size_t poll() override {
    io_.restart();
    return io_.poll();
  }
  std::size_t wait_one() override {
    io_.restart();
    return io_.run_one();
  }

 private:
  boost::asio::io_context io_;
};

}  // namespace persim::servers
