#!/usr/bin/env python3
"""Where an IPC round trip's time goes: the persim round trip built as it is and
with parts of the work taken out, beside the raw fiber round trip (the floor).

An experiment, not a benchmark of something shippable: the variants break the
semantics (no trace hash, shared exception records, no kill_at_call hook) and
exist only in a scratch copy of the tree. Each variant is the committed source
(`git archive HEAD`) with one or more of these edits, applied at exact anchors
(the script stops with the anchor's text if the source has moved on):

  no_trace  Node::trace returns at once: no fold into the trace hash, no sink
  no_eh     Node::switch_to leaves the C++ exception record of the thread alone
  no_enter  Sys::enter does nothing: no liveness check, no call counts, no
            virtual time for the call, no kill_at_call hook
  bare      all three

For each, instructions per round trip (callgrind, the difference of two runs of
persim-ipc-rounds divided by the difference of their counts) and the time per
round trip of interleaved runs (the median over the runs), with the floor
(persim-fiber-rounds) counted and timed the same way.

  python3 bench/ipc_budget.py                  # about 7 minutes on 2 cores
  python3 bench/ipc_budget.py --runs 5 --rounds 1000000

Needs valgrind, cmake, ninja and what the project's build needs. Measures the
committed HEAD (it says so if the working tree has changes it leaves out).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (file, anchor, replacement): the replacement keeps the anchor, so a variant
# is the committed code plus a preprocessor switch.
EDITS = [
    ("kernel/node.hpp",
     "  const ProcessId who = p != nullptr ? p->id : ProcessId{};\n",
     "#ifdef BUDGET_NO_TRACE\n  return;\n#endif\n"
     "  const ProcessId who = p != nullptr ? p->id : ProcessId{};\n"),
    ("kernel/node.hpp",
     "  from.eh = eh;\n  eh = to.eh;\n",
     "  (void)eh;\n#ifndef BUDGET_NO_EH\n  from.eh = eh;\n  eh = to.eh;\n#endif\n"),
    ("kernel/node.hpp",
     "inline bool Sys::enter() {\n",
     "inline bool Sys::enter() {\n#ifdef BUDGET_NO_ENTER\n  return true;\n#endif\n"),
]

# (build directory, label, defines)
VARIANTS = [
    ("base", "as committed", []),
    ("no_trace", "no_trace", ["BUDGET_NO_TRACE"]),
    ("no_eh", "no_eh", ["BUDGET_NO_EH"]),
    ("no_enter", "no_enter", ["BUDGET_NO_ENTER"]),
    ("bare", "bare (all three)", ["BUDGET_NO_TRACE", "BUDGET_NO_EH", "BUDGET_NO_ENTER"]),
]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


MARK = ".persim-ipc-budget"  # names a scratch directory this script made


def prepare(work):
    src = os.path.join(work, "src")
    if os.path.exists(src):
        if not os.path.exists(os.path.join(work, MARK)):
            sys.exit(f"ipc_budget: {work} has a src/ this script did not make; give another --work")
        shutil.rmtree(src)
    open(os.path.join(work, MARK), "w").close()
    os.makedirs(src)
    archive = subprocess.run(["git", "-C", ROOT, "archive", "HEAD"], check=True, capture_output=True).stdout
    run(["tar", "-x", "-C", src], input=archive)
    for path, anchor, replacement in EDITS:
        full = os.path.join(src, path)
        text = open(full).read()
        if text.count(anchor) != 1:
            sys.exit(f"ipc_budget: {path}: expected exactly one of\n{anchor}\n(found {text.count(anchor)}); "
                     "update EDITS in bench/ipc_budget.py to the source")
        open(full, "w").write(text.replace(anchor, replacement))
    return src


def build(src, work, directory, defines):
    out = os.path.join(work, directory)
    flags = "-O3 -DNDEBUG " + " ".join(f"-D{d}" for d in defines)
    run(["cmake", "-S", src, "-B", out, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
         f"-DCMAKE_CXX_FLAGS_RELEASE={flags}", "-DPERSIM_BUILD_TESTS=OFF", "-DPERSIM_BUILD_BENCH=ON"],
        stdout=subprocess.DEVNULL)
    run(["cmake", "--build", out, "--target", "persim-ipc-rounds", "persim-fiber-rounds"], stdout=subprocess.DEVNULL)
    return os.path.join(out, "bench")


def instructions(binary, a=10000, b=20000):
    counts = []
    for n in (a, b):
        r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", binary, str(n)],
                           check=True, capture_output=True, text=True)
        m = re.search(r"Collected : (\d+)", r.stderr)
        if not m or not r.stdout.startswith(f"{n} round trips"):
            sys.exit(f"ipc_budget: {binary} {n}: unexpected output\n{r.stdout}{r.stderr}")
        counts.append(int(m.group(1)))
    return (counts[1] - counts[0]) / (b - a)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/persim-ipc-budget", help="scratch directory (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3_000_000, help="round trips per timed run (default %(default)s)")
    ap.add_argument("--runs", type=int, default=15, help="timed runs of each binary, interleaved (default %(default)s)")
    args = ap.parse_args()
    if args.rounds <= 0 or args.runs <= 0:
        ap.error("--rounds and --runs must be > 0")

    missing = [tool for tool in ("git", "cmake", "ninja", "valgrind") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"ipc_budget: needs {', '.join(missing)} on PATH")
    work = os.path.abspath(args.work)
    if work == ROOT or work.startswith(ROOT + os.sep):
        sys.exit(f"ipc_budget: --work {work} is inside the repository; give a scratch directory outside it")
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], check=True,
                           capture_output=True, text=True).stdout
    if dirty:
        print("ipc_budget: the working tree has uncommitted changes; measuring HEAD without them", file=sys.stderr)
    args.work = work
    os.makedirs(args.work, exist_ok=True)
    src = prepare(args.work)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    binaries = []
    for directory, name, defines in VARIANTS:
        print(f"building {name} ...", file=sys.stderr)
        binaries.append((name, os.path.join(build(src, args.work, directory, defines), "persim-ipc-rounds")))
    floor = os.path.join(args.work, "base", "bench", "persim-fiber-rounds")
    binaries.append(("floor: raw fiber round trip", floor))

    print("counting instructions (callgrind) ...", file=sys.stderr)
    instr = {name: instructions(path) for name, path in binaries}

    times = {name: [] for name, _ in binaries}
    for i in range(args.runs):
        print(f"timing, run {i + 1} of {args.runs} ...", file=sys.stderr)
        for name, path in binaries:
            start = time.perf_counter()
            run([path, str(args.rounds)], stdout=subprocess.DEVNULL)
            times[name].append((time.perf_counter() - start) / args.rounds * 1e9)

    floor_name = binaries[-1][0]
    floor_med = statistics.median(times[floor_name])
    print(f"IPC budget at {commit}: {args.runs} interleaved runs of {args.rounds:,} round trips each")
    print()
    print("| variant | instructions per round trip | median ns per round trip | ratio to the floor's median |")
    print("|---|---|---|---|")
    for name, _ in binaries:
        med = statistics.median(times[name])
        print(f"| {name} | {instr[name]:.0f} | {med:.1f} | {med / floor_med:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
