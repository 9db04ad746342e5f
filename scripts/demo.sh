#!/usr/bin/env bash
# Fresh machine to demo: install dependencies, build (preset `default`), run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default --target persim-demo
exec ./build/default/examples/persim-demo "$@"
