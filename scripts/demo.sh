#!/usr/bin/env bash
# Fresh machine to demo: install dependencies, build (preset `default`), and
# run the 2006 discussion's case: a stdin/stdout program killed and restarted,
# continuing where it left off. Extra arguments go to `persim run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default --target persim
exec ./build/default/sim/persim run examples/scenarios/stdin-restart.toml "$@"
