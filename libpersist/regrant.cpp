// The `regrant` strategy: the supervisor re-grants by manifest, and sessions
// are rebuilt by ordinary requests to their servers (re-opened, sought to
// where they were). Nothing the client kept is trusted: its image records
// names and offsets, never capability bits.
#include "libpersist/regrant.hpp"

#include <string>

#include "servers/console/console.hpp"
#include "servers/fs/fs.hpp"
#include "servers/supervisor/client.hpp"

namespace persim::persist {

using kernel::Cap;
using kernel::Endpoint;
using servers::Outcome;

kernel::Result<Cap<Endpoint>> Regrant::reauthorize(kernel::Sys& sys, std::string_view grant) {
  return sys.granted<Endpoint>(grant);
}

bool Regrant::reobtain(kernel::Sys& sys, std::string_view grant, Cap<Endpoint>* fresh) {
  return static_cast<bool>(servers::regrant(sys, grant, fresh));
}

PersistStatus Regrant::rebuild(kernel::Sys& sys, const SessionPlan& plan, Cap<Endpoint> via, Cap<Endpoint>* session) {
  switch (plan.kind) {
    case SessionKind::file: return rebuild_file(sys, plan, via, session);
    case SessionKind::console:
      if (plan.resume_at)
        if (const Outcome o = servers::ConsoleClient(servers::Session<servers::ConsoleOp>(via)).seek_input(sys, *plan.resume_at); !o)
          return fail(PersistError::session_refused,
                      "seek input to " + std::to_string(*plan.resume_at) + ": " + o.describe());
      *session = via;
      return {};
    case SessionKind::kv:
    case SessionKind::checkpoint: *session = via; return {};
  }
  return fail(PersistError::session_refused, "unknown session kind");
}

PersistStatus Regrant::rebuild_file(kernel::Sys& sys, const SessionPlan& plan, Cap<Endpoint> via,
                                    Cap<Endpoint>* session) {
  servers::Session<servers::FsOp> s(via);
  if (!plan.path.empty()) {
    servers::FsClient opened;
    if (const Outcome o = servers::FsClient(s).open(sys, plan.path, plan.mode, &opened); !o)
      return fail(PersistError::session_refused, "open: " + o.describe());
    s = opened.session();
  }
  // Writes in append mode go to the end; every other session resumes at its offset.
  if (plan.resume_at && *plan.resume_at != 0 && (plan.mode & servers::fs_mode::append) == 0)
    if (const Outcome o = servers::FsClient(s).seek(sys, *plan.resume_at); !o)
      return fail(PersistError::session_refused, "seek to " + std::to_string(*plan.resume_at) + ": " + o.describe());
  *session = s.cap();
  return {};
}

}  // namespace persim::persist
