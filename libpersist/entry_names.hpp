// Internal to libpersist: the names of the entries libpersist itself writes
// into an image (program fields may not start with '.').
#pragma once

#include <string>
#include <string_view>

namespace persim::persist::entries {

inline const std::string random = ".random";
inline const std::string group_epoch = ".group_epoch";
inline constexpr std::string_view file = ".file:";                  // + file name
inline constexpr std::string_view file_token = ".token:file:";        // + file name
inline constexpr std::string_view console_token = ".token:console:";  // + console name
inline constexpr std::string_view kv_token = ".token:kv:";            // + kv session name
inline constexpr std::string_view grant = ".grant:";                  // + grant name
inline constexpr std::string_view console_input = ".console_in:";     // + console name

// Builds such names (prefix + name) in one buffer, reused: no allocation once
// it is long enough. Each name is used before the next is built.
class Name {
 public:
  const std::string& operator()(std::string_view prefix, const std::string& name) {
    buffer_.assign(prefix);
    buffer_.append(name);
    return buffer_;
  }

 private:
  std::string buffer_;
};

}  // namespace persim::persist::entries
