// Example programs, each run under the supervisor with a manifest (the .toml
// files beside this one): a counter that prints to its console, a logger that
// appends to a file, a bank that moves money between key-value accounts, an
// echo that numbers the lines of its console input (interactive mode).
#pragma once

#include "servers/system.hpp"

namespace persim::examples {

// Registers "counter", "logger", "bank" and "echo" on the system's node.
void register_examples(servers::System& system);

}  // namespace persim::examples
