"""What a run prints: no third-party noise before the work, no literal markup in a piped
log, this project's labels as written, and a closing block that names the results."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from kedro.logging import RichHandler
from rich.console import Console

from cnn_lab.runtime import console


def _logged(records: list[tuple[str, str, dict]]) -> str:
    """What Kedro's RichHandler writes to a non-terminal stream for ``records``."""
    console.install()
    stream = io.StringIO()
    handler = RichHandler(markup=True, show_path=False, show_time=False)
    handler.console = Console(file=stream, force_terminal=False, width=200)
    for name, message, extra in records:
        record = logging.getLogger(name).makeRecord(
            name, logging.INFO, __file__, 1, message, (), None, extra=extra or None
        )
        handler.handle(record)
    return stream.getvalue()


def test_kedro_markup_is_rendered_and_project_labels_print_as_written() -> None:
    out = _logged(
        [
            (
                "kedro.io.data_catalog",
                "Loading data from [dark_orange]cnn_depth.config[/dark_orange]",
                {},
            ),
            ("cnn_lab.training.engine", "[cnn_depth.mlp.resmlp_d2] epoch 1/1 val_accuracy 0.5", {}),
        ]
    )
    assert "Loading data from cnn_depth.config" in out
    assert "[dark_orange]" not in out
    assert "[cnn_depth.mlp.resmlp_d2] epoch 1/1" in out


def test_known_third_party_warnings_are_dropped_and_others_kept() -> None:
    """Python routes warnings to the ``py.warnings`` logger (Kedro's RichHandler turns that
    on); the filter sits on that logger, so it survives Kedro's logging reconfiguration."""
    console.install()
    console.install()  # idempotent
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    collect = Collect()
    py_warnings = logging.getLogger("py.warnings")
    py_warnings.addHandler(collect)
    try:
        for text in (
            "omegaconf.py:701: UserWarning: register_new_resolver() is deprecated and will be",
            "utils.py:187: UserWarning: Add type hints to the `predict` method to enable",
            "node.py:852: UserWarning: One or more dataset names contain '.' characters",
            "pipelines.py:12: FastAPIDeprecationWarning: ORJSONResponse is deprecated, Fast",
            "nodes.py:12: UserWarning: a warning this project must show",
        ):
            py_warnings.warning("%s", text)
    finally:
        py_warnings.removeHandler(collect)
    assert seen == ["nodes.py:12: UserWarning: a warning this project must show"]
    assert sum(isinstance(f, console.KnownNoise) for f in py_warnings.filters) == 1


def test_closing_block_names_the_report_the_best_rows_and_the_run() -> None:
    summary = pd.DataFrame(
        {"variant": ["mlp_d2", "resmlp_d2", "mlp_bn_d2"], "test_accuracy": [0.5, 0.9, 0.7]}
    )
    lines = console.closing_block("cnn_depth", "/x/report.html", summary, "abc", "1", rows=2)
    assert lines == [
        "== cnn_depth ==",
        "report: /x/report.html",
        "best of 3 by test accuracy (the report's results table):",
        "  resmlp_d2: 0.9000",
        "  mlp_bn_d2: 0.7000",
        "MLflow run abc: `kedro mlflow ui`, then http://127.0.0.1:5000/#/experiments/1/runs/abc",
    ]


def test_closing_block_ends_with_the_labs_claims_and_their_verdicts() -> None:
    summary = pd.DataFrame({"variant": ["mlp_d2"], "test_accuracy": [0.5]})
    claims = pd.DataFrame(
        {
            "claim": ["a beats b", "b reaches 90%"],
            "lab reports": ["lab 1", "lab 2"],
            "this run measured": ["...", "..."],
            "verdict": ["holds", "does not hold"],
        }
    )
    lines = console.closing_block("s", None, summary, None, None, claims=claims)
    assert lines[-3:] == [
        "the lab's claims (the report's claims table):",
        "  holds: a beats b",
        "  does not hold: b reaches 90%",
    ]


def _kedro_run(project: Path, *args: str) -> subprocess.CompletedProcess:
    """``kedro run --pipelines=cnn_depth ARGS`` in ``project``, its output piped."""
    return subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--pipelines=cnn_depth", *args],
        cwd=project,
        env={**os.environ, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_a_piped_run_shows_no_warning_and_no_markup_before_its_first_node(
    kedro_project: Path,
) -> None:
    done = _kedro_run(kedro_project, "--to-nodes=cnn_depth.validate_parameters")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    before_work = out.split("Running node:")[0]
    # Kedro-viz's notice that a partial run (--to-nodes) is not tracked is the one left.
    assert before_work.count("WARNING") <= 2, before_work
    assert "[dark_orange]" not in out and "[/dark_orange]" not in out
    assert "Loading data from params:cnn_depth" in out


def test_help_lists_every_study_with_its_question_and_the_envs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cnn_lab", "--help"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    for study, opening in [
        ("cnn_depth", "Does depth help?"),
        ("transfer", "How far does a CNN"),
        ("cam", "Where does the network look?"),
        ("init_study", "What do hand-set 0/1"),
        ("artworks", "Who painted it?"),
    ]:
        assert any(line.split()[:1] == [study] and opening in line for line in lines), study
    assert any("--env" in line and "paper_he" in line for line in lines)


def test_an_expected_error_prints_its_message_once_without_a_traceback(
    kedro_project: Path,
) -> None:
    done = _kedro_run(kedro_project, "--params=cnn_depth.training.optimizer=adamm")
    out = done.stdout + done.stderr
    assert done.returncode == 1
    assert out.count("got 'adamm'") == 1, out
    assert "Traceback" not in out
    assert len(out.splitlines()) <= 40
    assert out.rstrip().endswith(f"(set {console.TRACEBACK_ENV}=1 for the traceback)")


def test_only_the_projects_own_errors_are_shortened() -> None:
    from cnn_lab.study.params import ParameterError

    assert console.is_expected(ParameterError("cnn_depth.lr: got -1"))
    assert not console.is_expected(RuntimeError("a bug"))
    assert not console.is_expected(FileNotFoundError("not raised by a data source"))
    assert console.short_error(ParameterError("cnn_depth.lr: got -1")).startswith(
        "Stopped: ParameterError: cnn_depth.lr: got -1"
    )
