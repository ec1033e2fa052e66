"""Wall time of ``kedro run`` with the SequentialRunner against ParallelRunner workers.

Each round runs the study once with each runner (order alternated between rounds), every
run training afresh (``resume=false``: no variant is reused from a checkpoint) with the
same torch threads per process. Prints wall time, Kedro's own pipeline time and the load
average (1 min) before and after each run: on a shared machine the neighbours' load is
part of the figure.

    python benchmarks/parallel_runner.py [--pipelines cnn_depth] [--workers 2] [--threads 1]
        [--rounds 1] [-- extra kedro args]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

PIPELINE_TIME = re.compile(r"Pipeline execution completed successfully in ([0-9.]+) sec")


def _run(command: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    match = PIPELINE_TIME.search(done.stdout + done.stderr)
    return wall, float(match.group(1)) if match else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", default="cnn_depth")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    study = args.pipelines
    params = f"{study}.resume=false,{study}.threads={args.threads}"
    base = ["kedro", "run", f"--pipelines={study}", "--params", params, *args.extra]
    runners = {
        "sequential": base,
        f"parallel ({args.workers} workers)": [
            *base,
            "--runner=ParallelRunner",
            f"--runner-params=max_workers={args.workers}",
        ],
    }
    walls: dict[str, list[float]] = {name: [] for name in runners}
    print(f"{os.cpu_count()} CPUs; {args.threads} torch thread(s) per process")
    for round_ in range(args.rounds):
        order = list(runners) if round_ % 2 == 0 else list(reversed(runners))
        for name in order:
            before = os.getloadavg()[0]
            wall, pipeline = _run(runners[name])
            after = os.getloadavg()[0]
            walls[name].append(wall)
            print(
                f"round {round_ + 1} {name:24s} wall {wall:6.1f} s  pipeline {pipeline:6.1f} s  "
                f"load {before:.1f} -> {after:.1f}",
                flush=True,
            )
    sequential, parallel = (statistics.median(w) for w in walls.values())
    print(f"median wall: sequential {sequential:.1f} s, parallel {parallel:.1f} s")
    print(f"speed-up (sequential / parallel) {sequential / parallel:.2f}")


if __name__ == "__main__":
    main()
