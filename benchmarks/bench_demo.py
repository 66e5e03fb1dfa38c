"""Wall time of `bsm demo` with its defaults, per stage, against the 10-minute budget of issue 8
(2 CPU cores). Runs the demo in a fresh output directory, in a subprocess, and prints the
stage times the demo records (OUT/timings.json) and the total.

Run:  .venv/bin/python benchmarks/bench_demo.py [--output DIR] [--keep] [-- extra bsm demo args]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 600


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", help="demo output directory (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the output directory")
    p.add_argument("extra", nargs="*", help="extra `bsm demo` arguments (after --)")
    args = p.parse_args()
    out = Path(args.output or tempfile.mkdtemp(prefix="bench-demo-")) / "demo"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "bsm_data.cli", "demo", "--output", str(out), *args.extra]
    print(f"$ {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    total = time.perf_counter() - t0
    if r.returncode:
        print(r.stdout[-3000:], r.stderr[-3000:], sep="\n")
        print(f"demo failed with exit code {r.returncode}")
        return 1
    timings = json.loads((out / "timings.json").read_text())
    report_line = next((line for line in r.stdout.splitlines() if line.startswith("wall time per stage")), "")
    print(f"cpu cores: {os.cpu_count()}; torch threads: default")
    print(f"{'stage':<16}{'wall s':>9}")
    for stage, s in timings.items():
        print(f"{stage:<16}{s:>9.1f}")
    print(f"{'(demo says)':<16} {report_line}")
    print(f"{'total':<16}{total:>9.1f}   budget {BUDGET_S} s -> {'met' if total <= BUDGET_S else 'NOT met'} ({total / BUDGET_S:.0%} of budget)")
    if not args.keep and not args.output:
        shutil.rmtree(out.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
