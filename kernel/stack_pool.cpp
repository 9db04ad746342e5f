#include "kernel/stack_pool.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cassert>
#include <cstdio>
#include <cstdlib>

namespace persim::kernel {

namespace {
std::size_t page_bytes() { return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)); }
}  // namespace

StackPool::StackPool(std::size_t stack_bytes, std::size_t guarded_stacks_max)
    : stack_bytes_((stack_bytes + page_bytes() - 1) / page_bytes() * page_bytes()),
      guarded_stacks_max_(guarded_stacks_max) {
  assert(stack_bytes_ >= stack_bytes_min);
}

StackPool::~StackPool() {
  assert(in_use_ == 0 && "a fiber outlived its node");
  for (void* chunk : chunks_) ::munmap(chunk, stack_bytes_ * stacks_per_chunk);
}

void StackPool::map_chunk() {
  const std::size_t bytes = stack_bytes_ * stacks_per_chunk;
  void* chunk = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (chunk == MAP_FAILED) {
    std::fprintf(stderr, "persim: cannot map %zu bytes of fiber stacks\n", bytes);
    std::abort();
  }
  chunks_.push_back(chunk);
  // Guard the lowest page of each new stack while the VMA budget lasts; a stack
  // keeps its guard through reuse. Overflow then faults instead of corrupting
  // the neighbour.
  for (std::size_t i = 0; i < stacks_per_chunk && guarded_ < guarded_stacks_max_; ++i, ++guarded_) {
    if (::mprotect(static_cast<char*>(chunk) + i * stack_bytes_, page_bytes(), PROT_NONE) != 0) break;
  }
  // Push in reverse so the lowest stack is handed out first.
  for (std::size_t i = stacks_per_chunk; i-- > 0;) free_.push_back(static_cast<char*>(chunk) + i * stack_bytes_);
}

boost::context::stack_context StackPool::allocate() {
  if (free_.empty()) map_chunk();
  char* bottom = free_.back();
  free_.pop_back();
  ++in_use_;
  boost::context::stack_context sctx;
  sctx.size = stack_bytes_;
  sctx.sp = bottom + stack_bytes_;
  return sctx;
}

void StackPool::deallocate(boost::context::stack_context& sctx) noexcept {
  assert(in_use_ > 0);
  --in_use_;
  free_.push_back(static_cast<char*>(sctx.sp) - sctx.size);
}

}  // namespace persim::kernel
