"""Wall time of a ``kedro run`` split into start-up, training and the rest.

Runs the command as a child process and timestamps every log line as it arrives:
start-up is process start to the first ``Running node`` line (Python, Kedro, MLflow,
torch imports, catalog); training is the sum of the per-variant times the study logs
(``test accuracy ... (ok, 12.3 s)``); the rest is the pipeline's other work.

    python benchmarks/kedro_run_split.py [--pipelines cnn_depth] [-- extra kedro args]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

VARIANT = re.compile(r"test accuracy [0-9.]+ \(\w+, ([0-9.]+) s\)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", default="cnn_depth")
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    command = ["kedro", "run", f"--pipelines={args.pipelines}", *args.extra]
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
    startup = first_node if first_node is not None else float("nan")
    print(f"command: {' '.join(command)}")
    print(f"wall {total:.1f} s")
    print(f"start-up (to first node) {startup:.1f} s")
    print(f"training ({variants} variants, engine time) {training:.1f} s")
    print(
        f"rest (data, evaluation, MLflow logging, figures, exit) {total - startup - training:.1f} s"
    )


if __name__ == "__main__":
    main()
