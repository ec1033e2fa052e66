"""One readable document per study run: what ran, its tables, figures and findings.

A run's folder of CSVs and PNGs is evidence; the report is the thing a person reads.
It is rendered from Jinja2 templates to a self-contained HTML file (figures embedded as
base64 PNG, so it opens offline) and a Markdown twin that diffs well in review.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib.figure import Figure

from cnn_lab.evaluation.figure_layout import PAGE_WIDTH_PX
from cnn_lab.evaluation.figure_png import png_bytes

FLOAT_FORMAT = "{:.4f}"
SMALL = 1e-3  # below this (and not 0) four decimals would hide the value: 3 significant digits


def format_number(value: float) -> str:
    """Four decimals, as findings print them; a small non-zero value (a learning rate, a
    gradient norm) in scientific notation instead of 0.0000."""
    if value != 0 and abs(value) < SMALL:
        return f"{value:.3g}"
    return FLOAT_FORMAT.format(value)


@dataclass
class Report:
    """Everything a report shows; each field is computed from the run, never typed in."""

    study: str
    env: str
    dataset: str
    split_sizes: dict[str, int]
    device: str
    precision: str
    git_commit: str | None
    mlflow_run_id: str | None
    changed_parameters: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)  # name -> base64 PNG
    findings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # diverged / skipped variants
    # Further "what ran" lines, label -> value (e.g. each variant group's effective training
    # settings when groups override the study's training block).
    settings: dict[str, str] = field(default_factory=dict)


# What each figure shows, in words; a figure without an entry is captioned by its name.
CAPTIONS = {
    "loss_curves": "Training loss by epoch (log scale): one panel per family, one line per depth",
    "accuracy_curves": "Validation accuracy by epoch: one panel per family, one line per depth",
    "gradient_norms": "Weight-gradient norm of every layer after the first and the last epoch "
    "(log scale): a vanishing gradient shows as a line that falls towards the input",
    "accuracy_vs_depth": "Test accuracy against depth, one line per family",
    "training_time": "Training time per variant",
    "class_counts": "Images per class and split",
    "samples": "Sample images of each class (training split)",
    "tsne": "t-SNE of the raw pixels beside the deepest model's features",
    "confusion_matrix": "Confusion matrix of the best variant on the test split",
    "confusion_matrix_best": "Test confusion matrix of the variant with the best test "
    "accuracy (named in its title), each row divided by its class's count: the diagonal "
    "is each class's recall, so a good mean accuracy cannot hide a class it never gets right",
}
# Columns of the headline table, first found wins: the variant's name, then its size.
NAME_COLUMNS = ("variant", "model", "name", "run", "approach")


def caption(name: str) -> str:
    """The caption of figure ``name`` (study figures may carry a prefix: ``x.loss_curves``)."""
    key = name.rsplit(".", 1)[-1]
    return CAPTIONS.get(key, key.replace("_", " ").capitalize())


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the columns that tell the reader nothing: empty ones (``std`` with
    one seed, ``diverged_epoch`` when nothing diverged) and repeats of an earlier column
    (``*_mean`` with one seed)."""
    keep: list[str] = []
    for column in frame.columns:
        values = frame[column]
        if values.isna().all() or (values.astype(str) == "").all():
            continue
        if any(values.equals(frame[kept]) for kept in keep):
            continue
        keep.append(column)
    return frame[keep]


def headline(summary: pd.DataFrame) -> pd.DataFrame | None:
    """Variant, size, test accuracy and training time, one row per variant (mean +- std
    over seeds when several ran), best first; None when ``summary`` lacks a test accuracy."""
    name = next((c for c in NAME_COLUMNS if c in summary), None)
    if name is None or "test_accuracy" not in summary:
        return None
    if "seed" in summary:  # seeded rows are named <variant>_s<seed>: one row per variant
        names = zip(summary[name].astype(str), summary["seed"], strict=True)
        summary = summary.assign(**{name: [n.removesuffix(f"_s{s}") for n, s in names]})
    groups = summary.groupby(name, sort=False)
    table = pd.DataFrame({name: list(groups.groups)})
    if "parameters" in summary:
        table["parameters"] = groups["parameters"].first().to_numpy()
    mean, std, count = (groups["test_accuracy"].agg(f).to_numpy() for f in ("mean", "std", "count"))
    table["test accuracy"] = [
        f"{m:.4f} ± {s:.4f}" if n > 1 else f"{m:.4f}"
        for m, s, n in zip(mean, std, count, strict=True)
    ]
    if count.max() > 1:
        table["seeds"] = count
    if "train_seconds" in summary:
        table["train seconds"] = [f"{t:.1f}" for t in groups["train_seconds"].mean()]
    return table.iloc[np.argsort(-mean, kind="stable")].reset_index(drop=True)


def encode_figure(figure: Figure) -> str:
    """A figure as base64 PNG text, ready for an ``<img src="data:...">``."""
    return base64.b64encode(png_bytes(figure)).decode("ascii")


def encode_figures(figures: Mapping[str, Figure]) -> dict[str, str]:
    return {name: encode_figure(figure) for name, figure in figures.items()}


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def changed_parameters(
    run: Mapping[str, Any], defaults: Mapping[str, Any], root: str = ""
) -> dict[str, tuple[Any, Any]]:
    """``key -> (default, this run)`` for every leaf that differs, by dotted key, so the
    reader sees what a run changed without diffing YAML files."""
    ran, base = _flatten(run, root), _flatten(defaults, root)
    missing = object()
    changed = {}
    for key in sorted(set(ran) | set(base)):
        old, new = base.get(key, missing), ran.get(key, missing)
        if old != new:
            changed[key] = (
                "(not set)" if old is missing else old,
                "(not set)" if new is missing else new,
            )
    return changed


def git_commit(cwd: Path | None = None) -> str | None:
    """The checked-out commit, or None outside a git checkout or without git."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _markdown_table(frame: pd.DataFrame) -> dict[str, list]:
    """Header and formatted rows; the Markdown template lays them out."""
    rows = [[_cell(value) for value in row] for row in frame.itertuples(index=False)]
    return {"columns": [str(c) for c in frame.columns], "rows": rows}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else format_number(value)
    if value is None or value is pd.NA:
        return ""
    return str(value)


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("cnn_lab.evaluation", "templates"),
        # HTML only: the Markdown twin must show ['a', 'b'], not [&#39;a&#39;, ...].
        autoescape=select_autoescape(["html.j2"], default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(report: Report) -> tuple[str, str]:
    """(HTML, Markdown) of ``report``; numbers share one format in tables and text."""
    env = _environment()
    tables = {name: tidy(frame) for name, frame in report.tables.items()}
    summary = report.tables.get("summary")
    top = headline(summary) if summary is not None else None
    html_headline = (
        top.to_html(index=False, na_rep="", border=0, classes="table headline")
        if top is not None
        else None
    )
    md_headline = _markdown_table(top) if top is not None else None
    html_tables = {
        name: frame.to_html(
            index=False,
            float_format=format_number,
            na_rep="",
            border=0,
            classes="table claims" if name == "claims" else "table",
        )
        for name, frame in tables.items()
    }
    markdown_tables = {name: _markdown_table(frame) for name, frame in tables.items()}
    captions = {name: caption(name) for name in report.figures}
    context = {"report": report, "captions": captions}
    html = env.get_template("report.html.j2").render(
        **context, tables=html_tables, headline=html_headline, page_width_px=PAGE_WIDTH_PX
    )
    markdown = env.get_template("report.md.j2").render(
        **context, tables=markdown_tables, headline=md_headline
    )
    return html, markdown
