// What libpersist's calls answer: a closed set of errors, each with a message
// naming the grant, session, image or field concerned.
#pragma once

#include <cstdint>
#include <string>

namespace persim::persist {

enum class PersistError : std::uint8_t {
  none = 0,
  no_store,         // the checkpoint grant is missing, or the store refused
  no_valid_image,   // images exist, none decodes (each one's damage is in `what`)
  wrong_program,    // the image belongs to another program
  version_refused,  // the image's program version is newer than this one, or too old
  wrong_type,       // a field's type differs from the image's entry of that name
  wrong_size,       // a region's size differs from the image's
  grant_missing,    // a grant the image names was not granted to this incarnation
  session_refused,  // a server refused to rebuild a recorded session
  group_aborted,    // a group checkpoint did not complete: a member died (the group restarts)
  bad_declaration,  // a name or path declared is longer than an image can hold
  group_rolled_back,  // a group member's image of the committed epoch was damaged: the group
                      // went back to an older epoch, and must restart (the program crashes)
};

const char* to_string(PersistError e) noexcept;

// Not to be ignored: a failed restore or checkpoint is the program's to act on.
struct [[nodiscard]] PersistStatus {
  PersistError error = PersistError::none;
  std::string what;  // "grant 'log': kernel: not_found"
  bool ok() const { return error == PersistError::none; }
  explicit operator bool() const { return ok(); }
};

inline PersistStatus fail(PersistError e, std::string what) { return {e, std::move(what)}; }

}  // namespace persim::persist
