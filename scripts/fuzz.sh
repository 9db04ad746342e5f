#!/usr/bin/env bash
# Builds the libFuzzer targets (preset `fuzz`: clang, ASan+UBSan) and runs each
# for SECONDS (default 20) from a seed corpus made of the examples; a crash,
# a sanitizer report or a broken property fails the run and leaves the input
# under build/fuzz/crashes/TARGET/. The long run: `bash scripts/fuzz.sh 3600`.
# The corpora grow under build/fuzz/corpus/TARGET/ and are reused next time.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
targets=(image scenario manifest)
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target persim-fuzz-image-seeds $(printf 'persim-fuzz-%s ' "${targets[@]}")
bin=build/fuzz/fuzz
corpus=build/fuzz/corpus
mkdir -p "$corpus"/{image,scenario,manifest}
"$bin"/persim-fuzz-image-seeds "$corpus/image"
for f in examples/scenarios/*.toml; do cp "$f" "$corpus/scenario/"; done
printf '%s\n#--set\nscenario.seed=3\nprogram.c.params.every=2\nscenario.strategy=sturdyref\n' \
  "$(cat examples/scenarios/incremental.toml)" > "$corpus/scenario/with-overrides"
for f in examples/*.toml; do cp "$f" "$corpus/manifest/"; done
status=0
for t in "${targets[@]}"; do
  mkdir -p "build/fuzz/crashes/$t"
  echo "== fuzz $t for ${seconds}s"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$bin/persim-fuzz-$t" -max_total_time="$seconds" -max_len=8192 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="build/fuzz/crashes/$t/" "$corpus/$t" 2> "build/fuzz/$t.log"; then
    echo "fuzz $t: FAILED (see build/fuzz/$t.log and build/fuzz/crashes/$t/)" >&2
    tail -40 "build/fuzz/$t.log" >&2
    status=1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|cov:" "build/fuzz/$t.log" | tail -3 || true
done
exit $status
