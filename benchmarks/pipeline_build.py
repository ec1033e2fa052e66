"""Pipeline building time against the number of variants, with the fitted growth exponent.

``cnn_depth`` grids of tiny MLPs (three families x N/3 depths, width 8; the CNN group off)
of 10, 100, 1,000 and 3,000 variants, measured two ways:

* build, in this process: ``register_pipelines()`` (every study, the grid's ``cnn_depth``
  among them) and ``filter(to_nodes=validate_parameters)`` (pipeline s), then every
  dataset of the whole ``cnn_depth`` pipeline resolved from the catalog's factories, as
  the runner does before a full run starts (catalog s). Imports are paid before the
  first size, so the figures are the part that grows with the grid.
* command: the whole ``kedro run --pipelines=cnn_depth --to-nodes=cnn_depth.validate_parameters``
  in a child process, wall clock (start-up included), as a user starts a sweep.

The exponent b of time ~ a * n^b is a least-squares fit in log-log space over the sizes
after the smallest; for the command, of the time above the smallest grid's (the start-up is a
constant that would flatten the fit). Linear building gives b close to 1; the old
``sum(pipelines, Pipeline([]))`` gave about 2.

    python benchmarks/pipeline_build.py [--sizes 10 100 1000 3000] [--no-command]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("mlp", "mlp_bn", "resmlp")


def depths(n: int) -> list[int]:
    """Depths for about ``n`` variants over the three MLP families."""
    return list(range(1, max(1, round(n / len(FAMILIES))) + 1))


def grid_overrides(n: int) -> dict[str, object]:
    return {
        "cnn_depth.groups.cnn.enabled": False,
        "cnn_depth.groups.mlp.families": list(FAMILIES),
        "cnn_depth.groups.mlp.depths": depths(n),
        "cnn_depth.groups.mlp.model.width": 8,
    }


def fit_exponent(sizes: list[int], seconds: list[float]) -> float:
    points = [(math.log(n), math.log(t)) for n, t in zip(sizes, seconds, strict=True) if t > 0]
    if len(points) < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def build_seconds(n: int, catalog: object) -> tuple[int, float, float]:
    """(variants, pipeline seconds, catalog seconds) for an n-variant grid built in this
    process: every study's pipeline as ``kedro run`` registers them, filtered to the
    validation node; then every dataset of the whole pipeline resolved from the catalog's
    factories, as the runner does before a full run starts."""
    from kedro.framework.project import pipelines

    from cnn_lab.pipeline_registry import register_pipelines
    from cnn_lab.runtime import hooks

    params = hooks.run_parameters()
    study = dict(params["cnn_depth"])
    groups = {**study["groups"]}
    groups["cnn"] = {**groups["cnn"], "enabled": False}
    groups["mlp"] = {
        **groups["mlp"],
        "families": list(FAMILIES),
        "depths": depths(n),
        "model": {"width": 8},
    }
    hooks._run_parameters = {**params, "cnn_depth": {**study, "groups": groups}}
    start = time.perf_counter()
    built = register_pipelines()["cnn_depth"]
    runnable = built.filter(to_nodes=["cnn_depth.validate_parameters"])
    middle = time.perf_counter()
    for name in sorted(built.datasets()):
        catalog.get(name, fallback_to_runtime_pattern=True)  # type: ignore[attr-defined]
    end = time.perf_counter()
    pipelines.configure(None)  # nothing cached between sizes
    variants = sum("training" in n.tags for n in built.nodes)
    assert len(runnable.nodes) == 1
    return variants, middle - start, end - middle


def project_catalog() -> object:
    """The project's catalog (its session's hooks read the run parameters, which
    ``build_seconds`` then replaces with each grid)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(ROOT)
    session = KedroSession.create(project_path=ROOT, env="local")
    return session.load_context().catalog


def command_seconds(n: int) -> float:
    params = ",".join(
        f"{key}={';'.join(map(str, value)) if isinstance(value, list) else value}"
        for key, value in grid_overrides(n).items()
    )
    command = [
        sys.executable,
        "-m",
        "kedro",
        "run",
        "--pipelines=cnn_depth",
        "--to-nodes=cnn_depth.validate_parameters",
        f"--params={params}",
    ]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"kedro run failed for {n} variants:\n{result.stdout[-3000:]}{result.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 3000])
    parser.add_argument("--no-command", action="store_true", help="skip the kedro run timings")
    args = parser.parse_args()
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.chdir(ROOT)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)

    catalog = project_catalog()
    build_seconds(10, catalog)  # the studies' imports, paid once before the first size
    header = "variants  pipeline s  catalog s  build s"
    print(header + ("  command s" if not args.no_command else ""), flush=True)
    sizes, builds, commands = [], [], []
    for n in args.sizes:
        variants, pipeline_s, catalog_s = build_seconds(n, catalog)
        sizes.append(variants)
        builds.append(pipeline_s + catalog_s)
        line = f"{variants:8d}  {pipeline_s:10.2f}  {catalog_s:9.2f}  {builds[-1]:7.2f}"
        if not args.no_command:
            commands.append(command_seconds(variants))
            line += f"  {commands[-1]:9.1f}"
        print(line, flush=True)
    # The smallest grid is mostly fixed costs: fit the growth over the larger ones.
    exponent = fit_exponent(sizes[1:], builds[1:])
    print(f"build: time ~ n^{exponent:.2f} (fitted over {', '.join(map(str, sizes[1:]))})")
    if commands:
        above = [seconds - commands[0] for seconds in commands[1:]]
        exponent = fit_exponent(sizes[1:], above)
        print(f"command: (time - time at {sizes[0]} variants) ~ n^{exponent:.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
