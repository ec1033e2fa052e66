"""How far a 2-process DDP run (torchrun, gloo, CPU) lands from one process with the same
global batch: the largest differences over the runs of tests/training/test_distributed.py.

Launches tests/training/ddp_script.py under torchrun, reruns its scenarios in this process,
and prints, per scenario, the largest relative difference of the per-epoch losses and
metrics and of the gradient-norm probes, and the largest absolute difference of the final
weights and test logits.

    python benchmarks/ddp_equivalence.py [--nproc 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "tests" / "training" / "ddp_script.py"


def _load_script():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("ddp_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _relative(got: float, want: float) -> float:
    return abs(got - want) / max(abs(want), 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    script = _load_script()
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={args.nproc}",
                str(SCRIPT),
                out,
            ],
            check=True,
            capture_output=True,
        )
        ranks = [
            torch.load(Path(out) / f"rank{r}.pt", weights_only=True) for r in range(args.nproc)
        ]
    print(f"{args.nproc} processes (gloo, CPU) vs 1 process, same global batch:")
    print("| scenario | losses/metrics (rel) | probes (rel) | weights (abs) | logits (abs) |")
    print("|---|---|---|---|---|")
    for case in ("cnn", "mlp"):
        single = script.engine_run(case, augment=case == "cnn")
        metrics = probes = weights = logits = 0.0
        for result in ranks:
            got = result[case]
            for row, want in zip(got["history"], single["history"], strict=True):
                for key, value in want.items():
                    diff = _relative(row[key], value)
                    if key.startswith("grad_norm_"):
                        probes = max(probes, diff)
                    else:
                        metrics = max(metrics, diff)
            for key, value in got["test"].items():
                metrics = max(metrics, _relative(value, single["test"][key]))
            for key, value in single["weights"].items():
                weights = max(weights, (got["weights"][key] - value).abs().max().item())
            logits = max(logits, (got["logits"] - single["logits"]).abs().max().item())
        print(f"| {case} | {metrics:.1e} | {probes:.1e} | {weights:.1e} | {logits:.1e} |")


if __name__ == "__main__":
    main()
