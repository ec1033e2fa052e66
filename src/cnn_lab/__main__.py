"""Run the project as ``cnn-lab`` or ``python -m cnn_lab`` (same as ``kedro run``)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from kedro.framework.cli.utils import find_run_command
from kedro.framework.project import configure_project

PIPELINES = Path(__file__).parent / "pipelines"


def studies() -> dict[str, str]:
    """Each study's one-line question: the first line of its package docstring, read
    without importing the study (that would load torch for ``--help``)."""
    found = {}
    for init in sorted(PIPELINES.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        found[init.parent.name] = " ".join(doc.split("\n\n")[0].split())
    return found


def envs(project: Path) -> list[str]:
    """The config envs a run can take with ``--env`` (conf/ folders besides base/local)."""
    conf = project / "conf"
    names = [p.name for p in conf.iterdir() if p.is_dir()] if conf.is_dir() else []
    return sorted(n for n in names if n not in ("base", "local"))


def studies_help(project: Path) -> str:
    table = [f"  {name:<11} {question}" for name, question in studies().items()]
    listed = ", ".join(envs(project)) or "none"
    # "\b" keeps click from rewrapping the paragraph after it.
    return "\n\n".join(
        [
            "\b\nStudies (--pipelines=NAME; a bare run is cnn_depth):\n" + "\n".join(table),
            f"\b\nEnvs (--env=NAME; default: local over base): {listed}",
        ]
    )


def main(*args, **kwargs) -> None:
    package_name = Path(__file__).parent.name
    configure_project(package_name)
    interactive = hasattr(sys, "ps1")
    kwargs["standalone_mode"] = not interactive
    run = find_run_command(package_name)
    from cnn_lab.runtime.project import find_project_root

    run.help = "Run a cnn-lab study: train its variants, track them in MLflow, write a report."
    run.epilog = studies_help(find_project_root())
    run(*args, **kwargs)


if __name__ == "__main__":
    main()
