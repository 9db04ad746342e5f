// AddressSanitizer must be told when the stack changes under it. These wrap its
// fiber-switch interface and compile to nothing in other builds.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace persim::kernel::sanitizer {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool enabled = true;
inline void start_switch(void** fake_stack_save, const void* bottom, std::size_t size) {
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
}
inline void finish_switch(void* fake_stack_save, const void** old_bottom, std::size_t* old_size) {
  __sanitizer_finish_switch_fiber(fake_stack_save, old_bottom, old_size);
}
// The stack below is about to be abandoned without returning (a kill's
// unwinding): unpoison it, as AddressSanitizer does for a throw.
inline void handle_no_return() { __asan_handle_no_return(); }
#else
inline constexpr bool enabled = false;
inline void start_switch(void**, const void*, std::size_t) {}
inline void finish_switch(void*, const void**, std::size_t*) {}
inline void handle_no_return() {}
#endif

}  // namespace persim::kernel::sanitizer
