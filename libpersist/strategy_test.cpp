// The strategy seam: restore's reauthorize and rebuild steps, a session
// obtained again mid-run and what a checkpoint adds to the image all go
// through the strategy a program is given, and nowhere else. Shown with a
// sixth strategy written here, as a researcher would add one.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "libpersist/regrant.hpp"
#include "support/persist_harness.hpp"

namespace persim::persist {
namespace {

using namespace persim::testing;

// What the test's strategy saw, in order; and the grant whose sessions it
// refuses to rebuild ("" for none).
struct Journal {
  std::vector<std::string> lines;
  std::string refuse;
};
Journal journal;

const char* kind_name(SessionKind k) {
  switch (k) {
    case SessionKind::file: return "file";
    case SessionKind::console: return "console";
    case SessionKind::kv: return "kv";
    case SessionKind::checkpoint: return "checkpoint";
  }
  return "?";
}

// regrant's behaviour, with every call journaled, the number of images it
// has saved kept in the image, and a refusal when asked to.
class Journaled final : public Strategy {
 public:
  kernel::Result<Cap<Endpoint>> reauthorize(Sys& sys, std::string_view grant) override {
    journal.lines.push_back("reauthorize " + std::string(grant));
    return inner_.reauthorize(sys, grant);
  }
  PersistStatus rebuild(Sys& sys, const SessionPlan& plan, Cap<Endpoint> via, Cap<Endpoint>* session) override {
    std::string line = std::string("rebuild ") + kind_name(plan.kind) + " " + std::string(plan.via);
    if (!plan.path.empty()) line += ":" + std::string(plan.path);
    if (plan.resume_at) line += " at " + std::to_string(*plan.resume_at);
    journal.lines.push_back(line);
    if (plan.via == journal.refuse) return fail(PersistError::session_refused, "refused by the journaled strategy");
    return inner_.rebuild(sys, plan, via, session);
  }
  bool reobtain(Sys& sys, std::string_view grant, Cap<Endpoint>* fresh) override {
    journal.lines.push_back("reobtain " + std::string(grant));
    return inner_.reobtain(sys, grant, fresh);
  }
  void save(Image& image) override {
    Entry e;
    e.name = ".strategy:saved";
    e.number = ++saved_;
    image.entries.push_back(e);
  }
  void load(const Image& image) override {
    if (const Entry* e = image.find(".strategy:saved"); e != nullptr && e->kind == EntryKind::u64) saved_ = e->number;
    journal.lines.push_back("load saved " + std::to_string(saved_));
  }

 private:
  Regrant inner_;
  std::uint64_t saved_ = 0;
};

const StrategyKind journaled{"journaled", "regrant, with every step journaled (a test's sixth strategy)",
                             []() -> std::unique_ptr<Strategy> { return std::make_unique<Journaled>(); }};

// An app holding a grant, a console, a key-value table and a file, under the journaled strategy.
struct App {
  Driven d;
  std::unique_ptr<Persistent> p;
  std::uint64_t count = 0;
  File* file = nullptr;
  Kv* kv = nullptr;
  std::unique_ptr<System> system;

  App() {
    journal = {};
    system = boot_app(d,
                      {{"data", "fs:/data/", "rwcd"}, {"console", "console", ""}, {"kv", "kv:accounts", ""},
                       {"ckpt", "ckpt", ""}},
                      [this](Sys& sys, Driven& dd) {
                        p = std::make_unique<Persistent>(sys, Options{.program = "app", .strategy = &journaled});
                        p->field("count", count);
                        p->grant("data");
                        p->console("out");
                        kv = &p->kv("accounts", "kv");
                        file = &p->file("log", "data", "log", servers::fs_mode::write | servers::fs_mode::create);
                        dd.restored = p->restore(&dd.found);
                      });
  }
};

TEST(Strategy, RegistryNamesRegrantFirst) {
  ASSERT_FALSE(strategies().empty());
  EXPECT_EQ(strategies().front().name, "regrant");
  EXPECT_FALSE(strategies().front().summary.empty());
  EXPECT_EQ(&regrant_strategy(), find_strategy("regrant"));
  EXPECT_EQ(find_strategy("journaled"), nullptr);  // the test's own is not built in
  EXPECT_EQ(find_strategy(""), nullptr);
}

// Property: a restore asks the strategy, in order: the checkpoint store's
// grant (step 1), each held grant (step 2), then each session's grant and
// its rebuild (step 3); a restart also hands it the image it saved into.
TEST(Strategy, RestoreReauthorizesAndRebuildsThroughTheStrategy) {
  App app;
  ASSERT_TRUE(run_until(*app.system, [&] { return app.d.program.incarnations() == 1; }));
  ASSERT_TRUE(app.d.restored.ok()) << app.d.restored.what;
  EXPECT_EQ(journal.lines, (std::vector<std::string>{"reauthorize ckpt", "reauthorize data", "reauthorize console",
                                                     "rebuild console console at 0", "reauthorize kv", "rebuild kv kv",
                                                     "reauthorize data", "rebuild file data:log"}));
  ASSERT_TRUE(app.d.program.run(*app.system, [&](Sys& sys) {
    ++app.count;
    ASSERT_TRUE(app.file->write(sys, "one;").ok());
    ASSERT_TRUE(app.p->checkpoint().ok());
    ASSERT_TRUE(app.p->checkpoint().ok());
  }));
  journal.lines.clear();
  ASSERT_TRUE(app.system->node().kill(*app.system->process_of("app")).ok());
  ASSERT_TRUE(run_until(*app.system, [&] { return app.d.program.incarnations() == 2; }));
  ASSERT_TRUE(app.d.restored.ok()) << app.d.restored.what;
  EXPECT_TRUE(app.d.found.from_image);
  EXPECT_EQ(app.count, 1u);
  // The image held what the strategy saved (two checkpoints), and the file's offset.
  EXPECT_EQ(journal.lines, (std::vector<std::string>{"reauthorize ckpt", "load saved 2", "reauthorize data",
                                                     "reauthorize console", "rebuild console console at 0",
                                                     "reauthorize kv", "rebuild kv kv", "reauthorize data",
                                                     "rebuild file data:log at 4"}));
}

// Property: a session whose server died mid-run is obtained again by the
// strategy (reobtain, then rebuild), and the request goes through.
TEST(Strategy, ASessionWhoseServerDiedIsObtainedAgainByTheStrategy) {
  App app;
  ASSERT_TRUE(run_until(*app.system, [&] { return app.d.program.incarnations() == 1; }));
  ASSERT_TRUE(app.d.restored.ok()) << app.d.restored.what;
  journal.lines.clear();
  ASSERT_TRUE(app.system->node().kill(*app.system->process_of("kv")).ok());
  ASSERT_TRUE(app.d.program.run(*app.system, [&](Sys& sys) { ASSERT_TRUE(app.kv->put(sys, "alice", "100").ok()); }));
  EXPECT_EQ(journal.lines, (std::vector<std::string>{"reobtain kv", "rebuild kv kv"}));
  std::string value;
  ASSERT_TRUE(app.d.program.run(*app.system, [&](Sys& sys) { ASSERT_TRUE(app.kv->get(sys, "alice", &value).ok()); }));
  EXPECT_EQ(value, "100");
}

// Property: a rebuild the strategy refuses fails the restore, naming the
// session and passing the strategy's reason on; nothing after it is rebuilt.
TEST(Strategy, ARefusedRebuildFailsTheRestoreNamingTheSession) {
  journal = {};
  journal.refuse = "kv";
  Driven d;
  auto system = boot_app(d, {{"console", "console", ""}, {"kv", "kv:accounts", ""}, {"ckpt", "ckpt", ""}},
                         [](Sys& sys, Driven& dd) {
                           Persistent p(sys, {.program = "app", .strategy = &journaled});
                           p.console("out");
                           p.kv("accounts", "kv");
                           dd.restored = p.restore();
                         });
  ASSERT_TRUE(run_until(*system, [&] { return d.program.incarnations() == 1; }));
  EXPECT_EQ(d.restored.error, PersistError::session_refused);
  EXPECT_EQ(d.restored.what, "kv 'accounts': refused by the journaled strategy");
  EXPECT_EQ(journal.lines.back(), "rebuild kv kv");
}

}  // namespace
}  // namespace persim::persist
