// The `regrant` strategy (see strategy.hpp and regrant.cpp).
#pragma once

#include "libpersist/strategy.hpp"

namespace persim::persist {

class Regrant final : public Strategy {
 public:
  kernel::Result<kernel::Cap<kernel::Endpoint>> reauthorize(kernel::Sys& sys, std::string_view grant) override;
  PersistStatus rebuild(kernel::Sys& sys, const SessionPlan& plan, kernel::Cap<kernel::Endpoint> via,
                        kernel::Cap<kernel::Endpoint>* session) override;
  bool reobtain(kernel::Sys& sys, std::string_view grant, kernel::Cap<kernel::Endpoint>* fresh) override;

 private:
  static PersistStatus rebuild_file(kernel::Sys& sys, const SessionPlan& plan, kernel::Cap<kernel::Endpoint> via,
                                    kernel::Cap<kernel::Endpoint>* session);
};

}  // namespace persim::persist
