// libstdc++ keeps one record per OS thread of the C++ exceptions being handled
// (`__cxa_eh_globals`, Itanium C++ ABI section 2.4.2: the innermost handler's
// exception, and the count std::uncaught_exceptions() returns). Fibers share
// the thread, so without help a process suspended inside a catch block would
// share that record with every other process: a handler finishing in one could
// end the exception another is still handling. Each execution context keeps its
// own instead: Node::switch_to saves the running context's record and installs
// the next one's.
#pragma once

#include <cxxabi.h>

namespace persim::kernel {

// The layout the ABI specifies for __cxa_eh_globals.
struct EhState {
  void* caught = nullptr;         // the innermost handler's exception, or null
  unsigned int uncaught = 0;      // std::uncaught_exceptions()
};

// This thread's record, found once per thread.
inline EhState& thread_eh() {
  static thread_local EhState* record = nullptr;
  if (record == nullptr) [[unlikely]] record = reinterpret_cast<EhState*>(abi::__cxa_get_globals());
  return *record;
}

}  // namespace persim::kernel
