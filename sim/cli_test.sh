#!/usr/bin/env bash
# The persim command end to end: exit statuses, bad input, check, sweep, merge,
# the GNU parallel path, inspect, the trace and events files.
# Usage: cli_test.sh PERSIM_BINARY SOURCE_DIR
set -uo pipefail
persim="$1"
src="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
expect_status() {  # expected-status description command...
  local want="$1" what="$2"; shift 2
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  [ "$got" -eq "$want" ] || fail "$what: exit $got, expected $want; stderr: $(head -c 400 "$work/err")"
}
scenario="$src/examples/scenarios/stdin-restart.toml"

# run: the reproduce line comes first; expectations held: 0.
expect_status 0 "run" "$persim" run "$scenario"
head -1 "$work/out" | grep -q "^persim .* seed 1  reproduce: persim run .*stdin-restart.toml --seed 1$" ||
  fail "run: first line is not the reproduce line: $(head -1 "$work/out")"

# An expectation that does not hold: 1, and it says which.
sed 's/restarts = { echo = 1 }/restarts = { echo = 7 }/' "$scenario" >"$work/wrong.toml"
expect_status 1 "failed expectation" "$persim" run "$work/wrong.toml"
grep -q "FAILED restarts.echo: expected 7, got 1" "$work/out" || fail "failed expectation not named"

# Bad input: 2, with file:line:column.
printf '[scenario]\nseed = "x"\n[[program]]\nprogram = "counter"\n' >"$work/bad.toml"
expect_status 2 "bad scenario" "$persim" run "$work/bad.toml"
grep -q "bad.toml:2:8: scenario.seed: expected an integer, got a string" "$work/err" || fail "bad scenario message: $(cat "$work/err")"
expect_status 2 "missing scenario" "$persim" run "$work/none.toml"
grep -q "none.toml: cannot open the file" "$work/err" || fail "missing scenario message: $(cat "$work/err")"
expect_status 2 "bad --set" "$persim" run "$scenario" --set nonsense=1
grep -q "nonsense: unknown key" "$work/err" || fail "bad --set message: $(cat "$work/err")"
"$persim" run "$scenario" --seed banana >/dev/null 2>&1 && fail "a non-numeric --seed was accepted"
"$persim" frobnicate >/dev/null 2>&1 && fail "an unknown subcommand was accepted"
"$persim" --help | grep -q "sweep" || fail "--help does not list sweep"
"$persim" run --help | grep -q -- "--trace" || fail "run --help does not list --trace"

# check: determinism self-check.
expect_status 0 "check" "$persim" check "$scenario"
grep -q "deterministic: the same seed gave the same trace" "$work/out" || fail "check did not say deterministic"

# Outputs: Chrome trace JSON, JSON Lines events, metrics.
expect_status 0 "outputs" "$persim" run "$scenario" --trace "$work/t.json" --events "$work/e.jsonl" --metrics "$work/m.json"
python3 -c "import json,sys; d=json.load(open('$work/t.json')); assert any(e.get('ph')=='s' for e in d['traceEvents'])" ||
  fail "trace has no IPC flow events"
python3 -c "import json; [json.loads(l) for l in open('$work/e.jsonl')]" || fail "events are not JSON Lines"
python3 -c "import json; m=json.load(open('$work/m.json')); assert m['ok'] and m['restarts']==1" || fail "metrics JSON"

# sweep: a few hundred seeds, one process each, merged CSV.
expect_status 0 "sweep" "$persim" sweep "$src/examples/scenarios/bank-kills.toml" --seeds 1..300 --jobs 2 --out "$work/sweep.csv"
[ "$(wc -l <"$work/sweep.csv")" -eq 301 ] || fail "sweep CSV has $(wc -l <"$work/sweep.csv") lines, expected 301"
expect_status 2 "bad --seeds" "$persim" sweep "$scenario" --seeds 9..1
grep -q "expected A..B with A <= B" "$work/err" || fail "bad --seeds message"

# The same sweep under GNU parallel, merged with persim merge.
if command -v parallel >/dev/null; then
  mkdir -p "$work/par"
  parallel --will-cite -j 2 "$persim" run "$src/examples/scenarios/bank-kills.toml" --quiet --seed {} --metrics "$work/par/{}.csv" ::: $(seq 1 40) ||
    fail "GNU parallel runs failed"
  "$persim" merge "$work"/par/*.csv >"$work/par.csv" || fail "merge failed"
  [ "$(wc -l <"$work/par.csv")" -eq 41 ] || fail "merged CSV has $(wc -l <"$work/par.csv") lines, expected 41"
  expect_status 2 "merge of a non-CSV" "$persim" merge "$scenario"
else
  fail "GNU parallel is not installed (scripts/setup.sh installs it)"
fi

# inspect of a store's database reads a copy: the file is left as it was
# (no journal mode set, no log created), and a damaged image is named.
python3 - "$work/store.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE images (slot TEXT NOT NULL, version INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (slot, version))")
db.execute("INSERT INTO images VALUES ('app', 1, x'00')")
db.commit()
db.close()
PY
before=$(sha256sum "$work/store.db")
expect_status 1 "inspect store database" "$persim" inspect "$work/store.db"
grep -q "store.db: slot app version 1: byte 0: truncated header" "$work/err" || fail "inspect db message: $(cat "$work/err")"
[ "$(sha256sum "$work/store.db")" = "$before" ] || fail "inspect changed the database it read"
[ ! -e "$work/store.db-wal" ] || fail "inspect created a write-ahead log beside the database"
# ... and each image's line says what the store knows of it: a delta's base, a group epoch.
python3 - "$work/store2.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE images (slot TEXT NOT NULL, version INTEGER NOT NULL, bytes BLOB NOT NULL, base INTEGER NOT NULL DEFAULT 0, epoch INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (slot, version))")
db.execute("INSERT INTO images VALUES ('app', 2, x'00', 1, 3)")
db.commit()
db.close()
PY
"$persim" inspect "$work/store2.db" >"$work/out" 2>"$work/err" || true
grep -qx "# slot app version 2 (1 bytes, a delta on version 1, group epoch 3)" "$work/out" || fail "inspect db line: $(cat "$work/out")"

# inspect: a bad file is named with what is wrong.
printf 'not an image' >"$work/x.img"
expect_status 1 "inspect bad image" "$persim" inspect "$work/x.img"
grep -q "x.img: byte 0: truncated header" "$work/err" || fail "inspect message: $(cat "$work/err")"

[ "$failures" -eq 0 ] && echo "cli_test: all passed"
exit "$failures"
