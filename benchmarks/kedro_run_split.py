"""Wall time of a ``kedro run`` split into start-up, training and the rest.

Runs the command as a child process and timestamps every log line as it arrives:
start-up is process start to the first ``Running node`` line (Python, Kedro, MLflow,
torch imports, catalog); training is the sum of the per-variant times the study logs
(``test accuracy ... (ok, 12.3 s)``); the rest is the pipeline's other work.

Start-up is then split, in the same run, into what a plain PyTorch script doing the same
work pays too (a child process that only imports the libraries the study computes with:
torch, scikit-learn, matplotlib, pandas) and what Kedro and MLflow add on top (CLI and
plugins, config, catalog, the tracking store, the parent run). Rounds alternate the two.

    python benchmarks/kedro_run_split.py [--pipelines cnn_depth] [--rounds 2] [-- extra kedro args]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time

VARIANT = re.compile(r"test accuracy [0-9.]+ \(\w+, ([0-9.]+) s\)")
# What the study's own code needs whatever runs it (a plain script would import these).
LIBRARIES = "import torch, sklearn.model_selection, sklearn.metrics, matplotlib.pyplot, pandas"


def plain_imports() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", LIBRARIES], check=True)
    return time.perf_counter() - start


def kedro_run(command: list[str]) -> dict[str, float]:
    start = time.perf_counter()
    first_node = None
    training = 0.0
    variants = 0
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            now = time.perf_counter() - start
            if first_node is None and "Running node" in line:
                first_node = now
                print(f"start-up (to first node) {now:.1f} s", flush=True)
            match = VARIANT.search(line)
            if match:
                training += float(match.group(1))
                variants += 1
                print(f"{now:7.1f} s  {line.strip()[-90:]}", flush=True)
        code = child.wait()
    total = time.perf_counter() - start
    if code:
        sys.exit(f"{' '.join(command)} failed with exit code {code}")
    return {
        "wall": total,
        "startup": first_node if first_node is not None else float("nan"),
        "training": training,
        "variants": variants,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", default="cnn_depth")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    command = ["kedro", "run", f"--pipelines={args.pipelines}", *args.extra]
    print(f"command: {' '.join(command)}")
    runs, imports = [], []
    for round_ in range(1, args.rounds + 1):
        imports.append(plain_imports())
        runs.append(kedro_run(command))
        run = runs[-1]
        print(
            f"round {round_}: wall {run['wall']:.1f} s, start-up {run['startup']:.1f} s "
            f"(plain library imports {imports[-1]:.1f} s), training ({run['variants']:.0f} "
            f"variants, engine time) {run['training']:.1f} s, rest "
            f"{run['wall'] - run['startup'] - run['training']:.1f} s",
            flush=True,
        )
    wall = statistics.median(r["wall"] for r in runs)
    startup = statistics.median(r["startup"] for r in runs)
    training = statistics.median(r["training"] for r in runs)
    libraries = statistics.median(imports)
    # Paired per round: both halves of a round saw the same machine load.
    overhead = statistics.median(r["startup"] - i for r, i in zip(runs, imports, strict=True))
    print(f"median of {args.rounds} round(s):")
    print(f"  wall {wall:.1f} s")
    print(f"  start-up (to first node) {startup:.1f} s")
    print(f"    of which the libraries' own imports ({LIBRARIES[7:]}) {libraries:.1f} s")
    print(f"    of which Kedro + MLflow (the rest of start-up, paired per round) {overhead:.1f} s")
    print(f"  training (engine time) {training:.1f} s")
    rest = wall - startup - training
    print(f"  rest (data, evaluation, MLflow logging, figures, exit) {rest:.1f} s")


if __name__ == "__main__":
    main()
