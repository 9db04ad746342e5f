// Fiber stacks from a pool: mapped in chunks, reused LIFO, never unmapped while
// the node lives. Only touched pages become resident.
#pragma once

#include <boost/context/stack_context.hpp>
#include <cstddef>
#include <vector>

#include "kernel/limits.hpp"

namespace persim::kernel {

class StackPool {
 public:
  StackPool(std::size_t stack_bytes, std::size_t guarded_stacks_max);
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  // Aborts if the system refuses memory: a simulator cannot go on without it.
  boost::context::stack_context allocate();
  void deallocate(boost::context::stack_context& sctx) noexcept;

  std::size_t stack_bytes() const { return stack_bytes_; }
  std::size_t in_use() const { return in_use_; }
  std::size_t mapped() const { return chunks_.size() * stacks_per_chunk; }
  std::size_t guarded() const { return guarded_; }

 private:
  void map_chunk();

  std::size_t stack_bytes_;
  std::size_t guarded_stacks_max_;
  std::size_t guarded_ = 0;
  std::size_t in_use_ = 0;
  std::vector<void*> chunks_;
  std::vector<char*> free_;  // stack bottoms (lowest address)
};

// The allocator Boost.Context's fiber holds a copy of. Reports the bounds of
// the stack it hands out to `*bounds` (for sanitizer annotations).
class PooledStackAllocator {
 public:
  struct Bounds {
    const void* bottom = nullptr;
    std::size_t size = 0;
  };
  PooledStackAllocator(StackPool& pool, Bounds* bounds) : pool_(&pool), bounds_(bounds) {}
  boost::context::stack_context allocate() {
    boost::context::stack_context sctx = pool_->allocate();
    bounds_->bottom = static_cast<char*>(sctx.sp) - sctx.size;
    bounds_->size = sctx.size;
    return sctx;
  }
  void deallocate(boost::context::stack_context& sctx) noexcept { pool_->deallocate(sctx); }

 private:
  StackPool* pool_;
  Bounds* bounds_;
};

}  // namespace persim::kernel
