"""``threads: auto`` against fixed thread counts while other multi-threaded jobs compete.

The workload is the default depth study in miniature: its two groups' middle variants on
the bundled digits, trained with the study's engine and performance defaults (an MLP of
depth 8, width 128, and the depth-8 CNN with 16 filters on 16x16 inputs). Each setting
trains it in a fresh child process, beside 0, 1, 2 and 4 competing jobs (child processes
multiplying 256x256 matrices on 2 torch threads with OpenMP's default wait policy, as
another user's torch job would). Settings:

* ``auto``: the new default (cnn_lab sets OMP_WAIT_POLICY=PASSIVE before torch loads);
* ``0-before``: torch's default thread count with OpenMP's default wait policy: the old
  default (``threads: 0``, no policy set);
* ``0``: torch's default thread count with the passive wait policy;
* ``1``: one thread.

Printed per competitor count: wall seconds of each setting's training (imports
excluded), the threads ``auto`` chose, auto / best fixed setting (target <= 1.25) and
auto / its fair share of the machine (target <= 1.5). The fair share is the work (CPU
seconds of the one-thread run beside the fewest competitors: its wall time on a quiet
machine) times max(1, L / cores), L the 1-minute load average as the auto run ends: the
time a job takes when every runnable task gets an equal part of the cores. Other users'
jobs are part of the load, and of every figure.

    python benchmarks/threads_under_load.py [--competitors 0 1 2 4] [--settle 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("auto", "0-before", "0", "1")
COMPETITOR = (
    "import torch\ntorch.set_num_threads(2)\na = torch.randn(256, 256)\nwhile True:\n    a @ a\n"
)


def worker(setting: str, epochs_mlp: int, epochs_cnn: int) -> None:
    """Train the miniature study once with ``setting``; print a JSON line of results."""
    import importlib

    if setting == "0-before":
        importlib.import_module("torch")  # OpenMP loads before cnn_lab can set a wait policy
    importlib.import_module("cnn_lab")  # sets OMP_WAIT_POLICY=PASSIVE unless torch came first

    from cnn_lab.data.sources import load_digits_images
    from cnn_lab.data.splits import stratified_split
    from cnn_lab.models import build_model
    from cnn_lab.training.performance import PerformanceOptions
    from cnn_lab.training.recipe import Recipe, SplitData, train_model

    bundle = load_digits_images()
    split = stratified_split(bundle.train.labels, val_ratio=0.2, test_ratio=0.2, seed=0)
    data = SplitData.from_bundle(bundle, split)
    threads: int | str = "auto" if setting == "auto" else int(setting.split("-")[0])
    variants = [
        ("mlp", 8, {"width": 128}, None, epochs_mlp),
        ("cnn", 8, {"width": 16, "kernel_size": 3, "padding": 1}, 16, epochs_cnn),
    ]
    chosen, start, cpu = [], time.perf_counter(), time.process_time()
    for family, depth, options, size, epochs in variants:
        recipe = Recipe(
            epochs=epochs,
            batch_size=64,
            lr=1e-3,
            step_size=max(1, epochs // 2),
            device="cpu",
            performance=PerformanceOptions(),
        )
        in_shape = (1, size or 8, size or 8)

        def build(family=family, depth=depth, options=options, in_shape=in_shape):
            return build_model(family, in_shape=in_shape, num_classes=10, depth=depth, **options)

        trained = train_model(
            build, data, recipe, label=f"{family}_d{depth}", input_size=size, threads=threads
        )
        chosen.append(trained.performance["perf_threads"])
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu, "threads": chosen}))


def run_setting(setting: str, args: argparse.Namespace, cache: str) -> dict:
    env = {**os.environ, "CNN_LAB_CACHE_DIR": cache, "PYTHONPATH": str(ROOT / "src")}
    env.pop("OMP_WAIT_POLICY", None)
    command = [
        sys.executable,
        __file__,
        "--worker",
        setting,
        "--epochs-mlp",
        str(args.epochs_mlp),
        "--epochs-cnn",
        str(args.epochs_cnn),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        sys.exit(f"{setting} failed:\n{result.stderr[-3000:]}")
    # The 1-minute load average as the run ends: how many tasks shared the cores with it.
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "load": os.getloadavg()[0]}


def start_competitors(count: int) -> list[subprocess.Popen]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    return [
        subprocess.Popen(
            [sys.executable, "-c", COMPETITOR], env=env, start_new_session=True, cwd=ROOT
        )
        for _ in range(count)
    ]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)  # our own child's process group only
    for process in processes:
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--competitors", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--epochs-mlp", type=int, default=10)
    parser.add_argument("--epochs-cnn", type=int, default=2)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds competitors run first")
    parser.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.epochs_mlp, args.epochs_cnn)
        return

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cache = tempfile.mkdtemp(prefix="threads_bench_")  # auto probes afresh, once per class
    print(f"{cores} cores; load average {os.getloadavg()[0]:.1f} before starting", flush=True)
    print("jobs  " + "  ".join(f"{s:>9}" for s in args.settings) + "  auto chose  load", flush=True)
    results: dict[int, dict[str, dict]] = {}
    for k in args.competitors:
        competitors = start_competitors(k)
        try:
            time.sleep(args.settle if k else 0)
            shift = k % len(args.settings)  # a different setting goes first at each level
            order = args.settings[shift:] + args.settings[:shift]
            results[k] = {s: run_setting(s, args, cache) for s in order}
        finally:
            stop(competitors)
        row = results[k]
        chose = row["auto"]["threads"] if "auto" in row else "-"
        print(
            f"{k:4d}  "
            + "  ".join(f"{row[s]['seconds']:9.1f}" for s in args.settings)
            + f"  {chose!s:>10}  {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    if "auto" not in args.settings or "1" not in args.settings:
        return
    # The work: CPU seconds of the one-thread run with the fewest competitors (a single
    # thread's CPU time is its wall time on a quiet machine). Its fair share of a machine
    # at load L on C cores is C / L cores: fair time = work * max(1, L / C).
    work = results[min(results)]["1"]["cpu"]
    print(f"\nwork (1 thread, CPU seconds): {work:.2f}")
    print("jobs  best fixed  auto/best  load  fair s  auto/fair  0-before/fair")
    for k, row in results.items():
        fixed = {s: r["seconds"] for s, r in row.items() if s != "auto"}
        best = min(fixed, key=fixed.get)
        load = row["auto"]["load"]
        fair = work * max(1.0, load / cores)
        before = f"{row['0-before']['seconds'] / fair:13.2f}" if "0-before" in row else ""
        print(
            f"{k:4d}  {best:>10}  {row['auto']['seconds'] / fixed[best]:9.2f}  {load:4.1f}  "
            f"{fair:6.1f}  {row['auto']['seconds'] / fair:9.2f}  {before}"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
