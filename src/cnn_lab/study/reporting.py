"""Kedro side of the results people read, shared by every study: the dataset-analysis
node (one factory, reused by each pipeline) and the run context a report states.

The work itself is library code in ``cnn_lab.evaluation`` (dataset_analysis, report);
these functions only read parameters, hand results to the catalog and log to MLflow.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import partial, update_wrapper, wraps
from typing import Any

import pandas as pd
from kedro.pipeline import Pipeline, node, pipeline
from pydantic import Field

from cnn_lab.study.params import StrictModel, validate_parameters
from cnn_lab.study.shared_nodes import wide_node

ANALYSIS_FIGURES = ("class_counts", "samples", "tsne")


class AnalysisParams(StrictModel):
    """``params:dataset_analysis``; the defaults keep the analysis to seconds on a CPU."""

    subsample: int = Field(300, ge=10, description="images in the t-SNE, stratified by class")
    perplexity: float = Field(30.0, gt=0)
    samples_per_class: int = Field(8, ge=1)
    seed: int = 0


def _normalisation(value: Any) -> Any:
    """A Normalisation, or a {"mean", "std"} mapping as studies store it, or None."""
    from cnn_lab.training.batching import Normalisation

    if value is None or isinstance(value, Normalisation):
        return value
    return Normalisation(tuple(value["mean"]), tuple(value["std"]))


def analyse(
    dataset: Any,
    split: dict[str, Any] | None,
    options: dict[str, Any],
    model: Any = None,
    *,
    part: str | None = None,
) -> tuple[Any, ...]:
    """Run the dataset analysis, log it to MLflow and return tables, figures and the
    section the study's report embeds. ``dataset``: a DatasetBundle (under ``split``) or
    an ImageSplits view; ``model``: None or {"model", "input_size"[, "normalisation",
    "label"]}; ``part`` names one of several datasets of a study (transfer: source, target)."""
    from cnn_lab.evaluation.dataset_analysis import analyse_dataset
    from cnn_lab.evaluation.report import encode_figures
    from cnn_lab.runtime.tracking import log_figures, log_table

    params = validate_parameters(AnalysisParams, options or {}, "dataset_analysis")
    trained = model or {}
    result = analyse_dataset(
        dataset,
        split,
        subsample=params.subsample,
        perplexity=params.perplexity,
        samples_per_class=params.samples_per_class,
        seed=params.seed,
        model=trained.get("model"),
        input_size=trained.get("input_size"),
        normalisation=_normalisation(trained.get("normalisation")),
        model_label=trained.get("label") or "trained model",
    )
    folder = f"analysis/{part}" if part else "analysis"
    log_table(result.counts, f"{folder}/class_counts.csv")
    log_table(result.channel_stats, f"{folder}/channel_stats.csv")
    log_figures(result.figures, folder=folder)
    prefix = f"{part} data: " if part else ""
    section = {
        "tables": {
            f"{prefix}images per class and split": result.counts,
            f"{prefix}channel mean and std (training split, [0, 1] scale)": result.channel_stats,
        },
        "figures": {
            f"{prefix or 'dataset analysis: '}{name}": png
            for name, png in encode_figures(result.figures).items()
        },
    }
    figures = [result.figures[name] for name in ANALYSIS_FIGURES]
    return (result.counts, result.channel_stats, *figures, section)


def analysis_pipeline(
    study: str,
    model: str | None = None,
    *,
    dataset: str | None = None,
    split: str | None = None,
    part: str | None = None,
) -> Pipeline:
    """The analysis node of ``study``, reading ``dataset`` (default ``<study>.dataset``: a
    DatasetBundle or an ImageSplits view) and ``split`` (default ``<study>.split``);
    ``model`` names a dataset of {"model": nn.Module, "input_size": int | None, ...}.
    ``part`` tells apart several analysed datasets of one study: outputs become
    ``<study>.analysis.<part>.*`` and files go to ``analysis/<part>/``."""
    inputs = [dataset or f"{study}.dataset", split or f"{study}.split", "params:dataset_analysis"]
    if model is not None:
        inputs.append(model)
    tables, figures = f"{study}.analysis", f"{study}.analysis_figures"
    if part:
        tables, figures = f"{tables}.{part}", f"{figures}.{part}"
    function = update_wrapper(partial(analyse, part=part), analyse) if part else analyse
    return pipeline(
        [
            node(
                function,
                inputs,
                [
                    f"{tables}.counts",
                    f"{tables}.channel_stats",
                    *(f"{figures}.{name}" for name in ANALYSIS_FIGURES),
                    f"{tables}.section",
                ],
                name=f"analyse_{part}_dataset" if part else "analyse_dataset",
                namespace=study,
            )
        ],
        tags=["analysis"],
    )


def model_analysis(
    study: str,
    pick: Callable[..., dict[str, Any]],
    inputs: Sequence[str],
    *,
    part: str | None = None,
    dataset: str | None = None,
    split: str | None = None,
) -> Pipeline:
    """The dataset analysis with a trained model's penultimate features mapped beside the
    raw pixels: ``pick(*inputs)`` returns that model (``<study>.[<part>_]analysis_model``),
    then :func:`analysis_pipeline` analyses ``dataset`` and ``split`` with it."""
    model = f"{study}.{part}_analysis_model" if part else f"{study}.analysis_model"
    short = model.removeprefix(f"{study}.")
    chooser = wide_node(pick, list(inputs), model, name=short, namespace=study, tags=["analysis"])
    return pipeline([chooser]) + analysis_pipeline(
        study, model, dataset=dataset, split=split, part=part
    )


def first_finite(
    *inputs: Any, pick: Callable[..., dict[str, Any]], candidates: Sequence[Any], fixed: int
) -> dict[str, Any]:
    """``pick(*inputs[:fixed], weights, variant=v)`` for the first of ``candidates`` (in
    order of preference; ``inputs[fixed:]`` holds each one's state dict) whose weights are
    all finite, since a diverged model's features would map nothing; the first candidate
    when every one diverged."""
    import torch

    head, states = inputs[:fixed], inputs[fixed:]
    if len(states) != len(candidates):
        raise ValueError(f"{len(states)} weights for {len(candidates)} candidate variants")
    for variant, state in zip(candidates, states, strict=True):
        tensors = [t for t in state.values() if torch.is_tensor(t) and t.is_floating_point()]
        if all(bool(torch.isfinite(t).all()) for t in tensors):
            return pick(*head, state, variant=variant)
    return pick(*head, states[0], variant=candidates[0])


def best_trained(metric: str, *variants: Any) -> tuple[dict[str, Any], Any] | None:
    """The (result, weights) pair with the best finite ``metric`` among ``variants``, given
    as a model-analysis node reads them: each variant's result, then its weights; None when
    no variant has a finite score (every one diverged)."""
    pairs = zip(variants[::2], variants[1::2], strict=True)
    scored = [(r, w) for r, w in pairs if math.isfinite(r.get(metric, math.nan))]
    return max(scored, key=lambda pair: pair[0][metric]) if scored else None


@dataclass(frozen=True)
class ClaimSource:
    """A table the study's claims may query (``table:`` in a claim): the dataset holding
    it, the columns naming a variant (rows sharing them are its seeds) and how a
    variant's name is written from them (``"{family}_d{depth}"``)."""

    dataset: str
    by: tuple[str, ...]
    label: str | None = None


def check_claims(
    config: dict[str, Any],
    *inputs: Any,
    sources: Mapping[str, ClaimSource],
    data: bool,
) -> pd.DataFrame:
    """The claims table of ``config["claims"]`` against the run's tables (``inputs``: the
    data bundle first when ``data``, then one frame per source), judged for the run's env
    and logged to the study's run."""
    from cnn_lab.evaluation.claims import Table, claims_table, parse_claims
    from cnn_lab.runtime.hooks import run_env
    from cnn_lab.runtime.tracking import log_table

    bundle, frames = (inputs[0], inputs[1:]) if data else (None, inputs)
    tables = {
        name: Table(frame, source.by, source.label)
        for (name, source), frame in zip(sources.items(), frames, strict=True)
    }
    classes = getattr(getattr(bundle, "train", None), "num_classes", None)
    table = claims_table(
        parse_claims(config.get("claims")),
        tables,
        env=run_env(),
        chance=1.0 / classes if classes else None,
        on=getattr(bundle, "name", None),
    )
    log_table(table, "tables/claims.csv")
    return table


def claims_pipeline(
    study: str, sources: Mapping[str, ClaimSource], data: str | None = None
) -> Pipeline:
    """The node that checks the study's claims (``<study>.claims``, read by its report and
    the run's closing lines); ``data`` names the data bundle whose class count sets chance
    and whose name starts each measurement."""
    inputs = [f"{study}.config", *([f"{study}.{data}"] if data else [])]
    inputs += [f"{study}.{source.dataset}" for source in sources.values()]
    function = update_wrapper(
        partial(check_claims, sources=dict(sources), data=data is not None), check_claims
    )
    return pipeline(
        [wide_node(function, inputs, f"{study}.claims", name="check_claims", namespace=study)],
        tags=["report"],
    )


def confusion_pipeline(study: str, variants: Sequence[Any]) -> Pipeline:
    """The node that draws the best variant's test confusion matrix from every variant's
    result (``<study>.figures.confusion_matrix_best``), for the study's run and report."""
    from cnn_lab.study.summary import BEST_CONFUSION, best_confusion_figure

    return pipeline(
        [
            wide_node(
                best_confusion_figure,
                [v.dataset("result") for v in variants],
                f"{study}.figures.{BEST_CONFUSION}",
                name="best_confusion",
                namespace=study,
            )
        ],
        tags=["report"],
    )


def run_context(study: str, raw_params: dict[str, Any]) -> dict[str, Any]:
    """What ran, as a report states it: env, git commit, MLflow run id, changed parameters."""
    from cnn_lab.evaluation.report import changed_parameters, git_commit
    from cnn_lab.runtime.hooks import default_parameters, run_env
    from cnn_lab.runtime.project import find_project_root
    from cnn_lab.runtime.tracking import active_run_id

    return {
        "study": study,
        "env": run_env(),
        "git_commit": git_commit(find_project_root()),
        "mlflow_run_id": active_run_id(),
        "changed_parameters": changed_parameters(raw_params, default_parameters(study), study),
    }


def split_sizes(bundle: Any, split: dict[str, Any], prefix: str = "") -> dict[str, int]:
    """Images per split (``test: official``: the bundle's own test set; ``bundle`` may be
    None for a split of row indices), keys prefixed for studies with several datasets."""
    sizes = {}
    for name in ("train", "val", "test"):
        part = split.get(name)
        if part == "official":
            test = getattr(bundle, "test", None)
            sizes[prefix + name] = len(test) if test is not None else 0
        elif part is not None:
            sizes[prefix + name] = len(part)
    return sizes


def precision_that_ran(summary: pd.DataFrame) -> str:
    """What the variants trained in (a summary's resolved ``precision`` column), fp32 for
    studies that always train in full precision."""
    if "precision" not in summary:
        return "fp32"
    return ", ".join(sorted({str(p) for p in summary["precision"].dropna()})) or "fp32"


def what_ran(config: dict[str, Any], summary: pd.DataFrame) -> dict[str, str]:
    """The report's device and precision: the device the study resolved and what its
    variants trained in."""
    from cnn_lab.training.device import resolve_device

    return {
        "device": str(resolve_device(config["device"])),
        "precision": precision_that_ran(summary),
    }


def publish(report: Any) -> tuple[str, str]:
    """Render ``report`` to (HTML, Markdown) and log both to the run's MLflow artifacts."""
    from cnn_lab.evaluation.report import render
    from cnn_lab.runtime.tracking import log_text

    html, markdown = render(report)
    log_text(html, "report/report.html")
    log_text(markdown, "report/report.md")
    return html, markdown


def with_integers(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` with the named count columns as nullable integers, so a count with a gap
    (a baseline has no epochs) reads 3, not 3.0000."""
    present = {c: "Int64" for c in columns if c in frame}
    return frame.astype(present) if present else frame


def section_tables(section: dict[str, Any] | None) -> dict[str, pd.DataFrame]:
    return dict((section or {}).get("tables", {}))


def section_figures(section: dict[str, Any] | None) -> dict[str, str]:
    return dict((section or {}).get("figures", {}))


def write_report(
    study: str,
    raw_params: dict[str, Any],
    *,
    dataset: str,
    split_sizes: dict[str, int],
    device: str,
    precision: str,
    tables: dict[str, pd.DataFrame],
    figures: dict[str, str],
    findings: list[str],
    problems: list[str],
    sections: tuple[dict[str, Any] | None, ...] = (),
    settings: dict[str, str] | None = None,
    claims: pd.DataFrame | None = None,
    confusion: str | None = None,
) -> tuple[str, str]:
    """Assemble a study's report (the lab's claims checked, its own tables and figures,
    the best variant's confusion matrix, then the dataset-analysis sections), render it
    and log it: what every study's report node ends with."""
    from cnn_lab.evaluation.report import Report
    from cnn_lab.study.summary import BEST_CONFUSION

    if claims is not None:
        tables = {"claims": claims, **tables}
    if confusion is not None:
        figures = {**figures, BEST_CONFUSION: confusion}

    for section in sections:
        tables = {**tables, **section_tables(section)}
        figures = {**figures, **section_figures(section)}
    report = Report(
        **run_context(study, raw_params),
        dataset=dataset,
        split_sizes=split_sizes,
        device=device,
        precision=precision,
        tables=tables,
        figures=figures,
        findings=findings,
        problems=problems,
        settings=dict(settings or {}),
    )
    return publish(report)


# What a single-dataset study's report reads first, after ``params:<study>``, in the
# order of :class:`RunInputs`; the study's own inputs follow.
REPORT_INPUTS = (
    "config",
    "dataset",
    "split",
    "summary",
    "analysis.section",
    "claims",
    "figures.confusion_matrix_best",
)


@dataclass(frozen=True)
class RunInputs:
    """What every single-dataset study's report states beside its own tables and figures:
    the raw and the validated parameters, the data bundle (None for a split of row
    indices) and its split, the summary, the dataset-analysis section, the claims table
    and the best variant's confusion matrix (base64 PNG)."""

    raw_params: dict[str, Any]
    config: dict[str, Any]
    bundle: Any
    split: dict[str, Any]
    summary: pd.DataFrame
    analysis: dict[str, Any] | None = None
    claims: pd.DataFrame | None = None
    confusion: str | None = None


def report_inputs(study: str, *own: str, part: str | None = None) -> list[str]:
    """A report node's inputs for :func:`report_node`: ``params:<study>``, then
    :data:`REPORT_INPUTS`, then the study's ``own`` (short names, as a Frame takes them).
    ``part``: the one of several datasets :class:`RunInputs` holds, named as
    :func:`analysis_pipeline` names them (``<part>_data``, ``<part>_split``)."""
    leading = list(REPORT_INPUTS)
    if part:
        named = {"dataset": f"{part}_data", "split": f"{part}_split"}
        named["analysis.section"] = f"analysis.{part}.section"
        leading = [named.get(name, name) for name in leading]
    return [f"params:{study}", *leading, *own]


def report_node(write: Callable[..., tuple[str, str]]) -> Callable[..., tuple[str, str]]:
    """``write(run, *own)`` as a node reading :func:`report_inputs`: the leading inputs
    arrive as one :class:`RunInputs`, so a study's report node names only its own. Kedro
    checks the inputs against the expanded signature; the source shown is ``write``'s."""
    leading = [
        inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_ONLY) for f in fields(RunInputs)
    ]
    own = list(inspect.signature(write).parameters.values())[1:]

    @wraps(write)
    def report(*inputs: Any) -> tuple[str, str]:
        return write(RunInputs(*inputs[: len(leading)]), *inputs[len(leading) :])

    report.__signature__ = inspect.Signature([*leading, *own])  # type: ignore[attr-defined]
    return report


def report_of(
    study: str,
    run: RunInputs,
    *,
    dataset: str | None = None,
    tables: dict[str, pd.DataFrame],
    figures: dict[str, str],
    findings: list[str],
    problems: list[str],
    settings: dict[str, str] | None = None,
    sizes: dict[str, int] | None = None,
    sections: tuple[dict[str, Any] | None, ...] = (),
) -> tuple[str, str]:
    """:func:`write_report` for a study with one dataset: the context, split sizes, device,
    precision, analysis section, claims and confusion matrix come from ``run``, the rest
    from the study; ``dataset`` describes the data (by default the bundle's name). A study
    with several datasets gives every one's split ``sizes`` and the other datasets'
    analysis ``sections`` (placed before ``run``'s)."""
    return write_report(
        study,
        run.raw_params,
        dataset=dataset or run.bundle.name,
        split_sizes=sizes if sizes is not None else split_sizes(run.bundle, run.split),
        **what_ran(run.config, run.summary),
        tables=tables,
        figures=figures,
        findings=findings,
        problems=problems,
        sections=(*sections, run.analysis),
        settings=settings,
        claims=run.claims,
        confusion=run.confusion,
    )


def group_settings(groups: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Each enabled group's effective training settings (the top-level block with the
    group's own keys on top), so a report never mixes 2- and 8-epoch groups unsaid."""
    settings = {}
    for name, spec in groups.items():
        if not spec["enabled"]:
            continue
        training = {k: v for k, v in spec["training"].items() if v not in (None, [], ())}
        settings[f"training of group {name}"] = ", ".join(f"{k} {v}" for k, v in training.items())
    return settings
