#!/usr/bin/env python3
"""Run a Google Benchmark binary with repetitions; print each benchmark's median
and its ratio to the floor benchmark of the same run.

Benchmarks are grouped by the part of their name before the first '/'; in each
group the floor is the benchmark whose name contains 'floor_'. Ratios are taken
between medians of the same run, so they compare like with like on a noisy
machine.

Example:
  python3 bench/ratios.py build/bench/bench/persim-bench-ipc --filter 'ipc_call_reply' --repetitions 10

Arguments after `--` go to the benchmark binary unchanged.
"""
import argparse
import json
import os
import subprocess
import sys

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def main() -> int:
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", help="Google Benchmark executable")
    ap.add_argument("--filter", default=".", help="--benchmark_filter regex (default: all)")
    ap.add_argument("--repetitions", type=int, default=10, help="--benchmark_repetitions (default 10)")
    ap.add_argument("--time", choices=("real", "cpu"), default="real",
                    help="which median the ratio uses (default real)")
    ap.add_argument("--json-out", help="also save the raw benchmark JSON here")
    args = ap.parse_args(argv)

    cmd = [
        args.binary,
        f"--benchmark_filter={args.filter}",
        f"--benchmark_repetitions={args.repetitions}",
        "--benchmark_report_aggregates_only=true",
        "--benchmark_format=json",
    ] + extra
    print("$ " + " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        print(f"benchmark exited with status {proc.returncode}", file=sys.stderr)
        return proc.returncode
    data = json.loads(proc.stdout)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(proc.stdout)

    # name -> {aggregate -> entry}, in the order the binary ran them
    runs = {}
    for b in data.get("benchmarks", []):
        if b.get("run_type") != "aggregate":
            continue
        if b.get("error_occurred"):
            print(f"{b['run_name']}: error: {b.get('error_message')}", file=sys.stderr)
            continue
        runs.setdefault(b["run_name"], {})[b["aggregate_name"]] = b

    def ns(entry, key):
        return entry[key] * UNIT_NS[entry.get("time_unit", "ns")]

    groups = {}
    for name in runs:
        groups.setdefault(name.split("/", 1)[0], []).append(name)

    ctx = data.get("context", {})
    print(f"# {os.path.basename(args.binary)}  {ctx.get('date', '')}  host={ctx.get('host_name', '')}  "
          f"cpus={ctx.get('num_cpus', '?')}  mhz={ctx.get('mhz_per_cpu', '?')}  "
          f"load_avg={ctx.get('load_avg', '?')}  repetitions={args.repetitions}")
    key = f"{args.time}_time"
    width = max((len(n) for n in runs), default=10)
    print(f"{'benchmark':<{width}}  {'median real ns':>14}  {'median cpu ns':>13}  {'cv real':>7}  "
          f"{'ratio vs floor (' + args.time + ')':>22}")
    for group, names in groups.items():
        floors = [n for n in names if "floor_" in n and "median" in runs[n]]
        floor = ns(runs[floors[0]]["median"], key) if floors else None
        for n in names:
            med = runs[n].get("median")
            if med is None:
                continue
            cv = runs[n].get("cv")
            cv_text = f"{100 * cv['real_time']:.1f}%" if cv else "-"
            ratio = f"{ns(med, key) / floor:.2f}x" if floor else "-"
            print(f"{n:<{width}}  {ns(med, 'real_time'):>14.2f}  {ns(med, 'cpu_time'):>13.2f}  {cv_text:>7}  "
                  f"{ratio:>22}")
        if not floors:
            print(f"# group {group}: no benchmark named *floor_*; no ratios")
    return 0


if __name__ == "__main__":
    sys.exit(main())
