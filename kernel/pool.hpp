// Object pool: stable addresses, chunked storage, LIFO reuse (deterministic).
#pragma once

#include <cassert>
#include <cstddef>
#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace persim::kernel {

template <class T, std::size_t ChunkObjects = 1024>
class Pool {
 public:
  Pool() = default;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool() { assert(live_ == 0 && "objects outlived their pool"); }

  template <class... Args>
  T* create(Args&&... args) {
    if (free_.empty()) grow();
    void* mem = free_.back();
    free_.pop_back();
    ++live_;
    return ::new (mem) T(std::forward<Args>(args)...);
  }

  void destroy(T* object) noexcept {
    assert(live_ > 0);
    object->~T();
    free_.push_back(object);
    --live_;
  }

  std::size_t live() const { return live_; }

 private:
  struct alignas(T) Storage {
    std::byte bytes[sizeof(T)];
  };

  void grow() {
    chunks_.push_back(std::make_unique<Storage[]>(ChunkObjects));
    Storage* chunk = chunks_.back().get();
    for (std::size_t i = ChunkObjects; i-- > 0;) free_.push_back(&chunk[i]);
  }

  std::vector<std::unique_ptr<Storage[]>> chunks_;
  std::vector<void*> free_;
  std::size_t live_ = 0;
};

}  // namespace persim::kernel
