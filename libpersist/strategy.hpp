// The persistence strategy: what differs between the designs persim compares
// (../shared/brief.md, "Strategies"), as a restarting program sees it.
//
// A restart has three steps (Persistent::restore): choose the image (the same
// for every strategy: the newest valid one in the checkpoint store), then
// reauthorize (obtain this incarnation's capability for each grant the
// program holds) and rebuild sessions (turn each recorded file, console and
// key-value session back into a live one). The last two, what a checkpoint
// adds to the image for them, and how a session whose server died mid-run is
// obtained again, are the strategy's. `regrant` is one implementation: the
// supervisor re-grants by manifest and sessions are rebuilt by ordinary
// requests, so nobody trusts bits the client kept.
//
// A new strategy is one class deriving from Strategy plus one line in the
// table in strategy.cpp; docs/architecture.md walks through it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "kernel/sys.hpp"
#include "libpersist/image.hpp"
#include "libpersist/status.hpp"

namespace persim::persist {

// A session libpersist rebuilds, as the declarations and the image describe
// it: a file, a console, a key-value table, or the checkpoint store's own.
enum class SessionKind : std::uint8_t { file, console, kv, checkpoint };

struct SessionPlan {
  SessionKind kind = SessionKind::kv;
  std::string_view via;   // the grant it is reached through
  std::string_view path;  // file: relative to the directory `via` ("": `via` is the file)
  std::uint8_t mode = 0;  // file: servers::fs_mode bits
  // Where to resume: a file's offset (not in append mode, and not 0: a fresh
  // session is at 0 already), a console's input position (any). None: where
  // the server's fresh session starts.
  std::optional<std::uint64_t> resume_at;

  // A session that is not a file.
  static SessionPlan of(SessionKind kind, std::string_view via, std::optional<std::uint64_t> resume_at = {}) {
    SessionPlan plan;
    plan.kind = kind;
    plan.via = via;
    plan.resume_at = resume_at;
    return plan;
  }
};

class Strategy {
 public:
  virtual ~Strategy() = default;

  // Step 2 of a restart: this incarnation's capability for grant `grant`
  // (also the checkpoint store's, before step 1 reads the image).
  virtual kernel::Result<kernel::Cap<kernel::Endpoint>> reauthorize(kernel::Sys& sys, std::string_view grant) = 0;
  // Step 3: the live session `plan` describes, reached through `via` (what
  // reauthorize or reobtain gave). A refusal names the step ("open: ...",
  // "seek to 12: ...") with the error session_refused.
  [[nodiscard]] virtual PersistStatus rebuild(kernel::Sys& sys, const SessionPlan& plan,
                                              kernel::Cap<kernel::Endpoint> via,
                                              kernel::Cap<kernel::Endpoint>* session) = 0;
  // While running: the server behind grant `grant` died; a capability for
  // its successor. False if none can be had (the caller reports the failure).
  virtual bool reobtain(kernel::Sys& sys, std::string_view grant, kernel::Cap<kernel::Endpoint>* fresh) = 0;

  // What a checkpoint adds to the image beyond the program's declared state,
  // and reads back from it before step 2. Entries are named ".strategy:...".
  virtual void save(Image& /*image*/) {}
  virtual void load(const Image& /*image*/) {}
};

// A strategy by name, as a scenario names it. Each program's Persistent
// makes its own instance (a strategy may keep per-program state).
struct StrategyKind {
  std::string_view name;
  std::string_view summary;
  std::unique_ptr<Strategy> (*make)();
};

// The built-in strategies, in the brief's order; regrant first (the default).
const std::vector<StrategyKind>& strategies();
const StrategyKind* find_strategy(std::string_view name);
const StrategyKind& regrant_strategy();

}  // namespace persim::persist
