#!/usr/bin/env bash
# Fresh machine to green: install dependencies, then build and run every test
# twice: release-with-asserts (preset `default`) and ASan+UBSan (preset `asan`).
# Warnings are errors in both. Pass a preset name to run only that one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
presets=("${@:-default}")
[ $# -eq 0 ] && presets=(default asan)
for preset in "${presets[@]}"; do
  echo "== preset $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  ctest --preset "$preset"
done
