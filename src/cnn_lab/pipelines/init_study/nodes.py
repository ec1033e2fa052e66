"""Thin nodes of the initialisation study: they call library code and hand results to the
catalog. Six runs: NetA1/NetA2 x HF (by hand, frozen), HT (by hand, trained), DT (default,
trained), all from one shared set of initial tensors per network and seed."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from torch import Tensor, nn

from cnn_lab.data.sources import DatasetBundle, load_source
from cnn_lab.evaluation import init_plots
from cnn_lab.evaluation.findings import across_seeds, diverged, statistic_columns
from cnn_lab.evaluation.init_check import check_problems, check_summary, differences_by_seed
from cnn_lab.models import build_model, count_parameters
from cnn_lab.models.tiny import (
    SCHEMES,
    apply_first_layer_mode,
    apply_init,
    share_first_layer,
    should_share,
)
from cnn_lab.pipelines.init_study.findings import init_findings
from cnn_lab.runtime.tracking import log_figures, log_table
from cnn_lab.study import reporting
from cnn_lab.study.spec import Variant, repeat_over_seeds
from cnn_lab.study.summary import summarise as study_summary
from cnn_lab.study.train import Job, outcome, study_recipe, test_evaluation
from cnn_lab.study.train import train_variant as train_variant_in_run
from cnn_lab.training.device import seed_everything
from cnn_lab.training.recipe import SplitData, TrainedModel

STUDY = "init_study"
NETWORKS = {"net_a1": "NetA1", "net_a2": "NetA2"}  # registry family -> the report's name
KERNEL_SCHEMES = ("HT", "DT")  # trained first layers: the kernels are shown before and after
ANALYSIS_RUN = ("net_a1", "DT")  # the default-init network: its features beside the pixels
FIGURES = ("inset_comparison", "architecture_comparison", "recovery_comparison", "time_per_batch")
METRICS = (
    "max_test_accuracy",
    "final_test_accuracy",
    "seconds_per_batch",
    "train_seconds",
    "wall_seconds",
)
SEED_STATISTICS = ("max_test_accuracy", "final_test_accuracy", "seconds_per_batch")
logger = logging.getLogger(__name__)


def variants(config: dict[str, Any]) -> list[Variant]:
    """Every (network, scheme) run, once per training seed: ``init_study.net_a1.hf``."""
    entries = [
        (network, scheme.lower(), {"scheme": scheme}) for network in NETWORKS for scheme in SCHEMES
    ]
    return repeat_over_seeds(STUDY, config, entries)


def run_label(network: str, scheme: str) -> str:
    return f"{NETWORKS[network]}-{scheme}"


def run_of(variant: Variant) -> str:
    """The variant's run in tables and figures: ``NetA1-HF``."""
    return run_label(variant.group, variant["scheme"])


def prepare_dataset(config: dict[str, Any]) -> DatasetBundle:
    """The source (digits or MNIST) at ``data.image_size`` (28: the report's networks)."""
    bundle = load_source(config["data"], key=f"{STUDY}.data")
    return bundle.resized(config["data"]["image_size"])


def _build(network: str, bundle: DatasetBundle) -> nn.Module:
    return build_model(
        network, in_shape=bundle.train.image_shape, num_classes=bundle.train.num_classes
    )


def shared_initial_networks(bundle: DatasetBundle, *, seed: int) -> tuple[nn.Module, ...]:
    """One default draw per network for the training ``seed``, with NetA1's first layer
    copied into NetA2, so the schemes of a network and the two networks differ only where
    the study says."""
    networks = []
    for network in NETWORKS:
        seed_everything(seed)
        networks.append(_build(network, bundle))
    share_first_layer(networks[0], *networks[1:])
    return tuple(networks)


def initialise_run(
    shared: dict[str, Tensor], bundle: DatasetBundle, *, variant: Variant
) -> nn.Module:
    """The run's starting network: its network's shared draw, then the scheme's first layer."""
    model = _build(variant.group, bundle)
    model.load_state_dict(shared)
    return apply_init(model, SCHEMES[variant["scheme"]])


def train_run(
    bundle: DatasetBundle,
    split: dict[str, Any],
    config: dict[str, Any],
    initial: dict[str, Tensor],
    *,
    variant: Variant,
) -> tuple[dict[str, Any], nn.Module]:
    """Train one (network, scheme) run from its saved initial tensors, in its own MLflow run,
    scoring the test split after every epoch."""
    network, scheme = variant.group, SCHEMES[variant["scheme"]]
    name = run_of(variant) + (f"_s{variant.seed}" if variant.seeded else "")
    data, probe_batch = SplitData.from_bundle(bundle, split), config["probe_batch_size"]
    recipe = study_recipe(config, config["training"], variant.seed, probe_batch_size=probe_batch)

    def build() -> nn.Module:
        model = _build(network, bundle)
        model.load_state_dict(initial)
        return apply_first_layer_mode(model, scheme)

    probe = build()
    trainable, total = count_parameters(probe, trainable_only=True), count_parameters(probe)
    params = {
        "study": STUDY,
        "network": network,
        "scheme": scheme.name,
        "init": scheme.init,
        "first_layer": scheme.first_layer,
        "dataset": bundle.name,
        "image_size": config["data"]["image_size"],
        "trainable_parameters": trainable,
        **config["training"],
        "seed": variant.seed,
    }
    tags = {"variant": run_of(variant), "network": network, "scheme": scheme.name}
    callbacks = [test_evaluation(data, recipe)]
    job = Job(build, data, recipe, params, (split,), tags, callbacks=callbacks, run_name=name)

    def kernels(trained: TrainedModel, result: dict[str, Any]) -> dict[str, Figure]:
        pair = {"before": initial["conv1.weight"], "after": trained.model.conv1.weight}
        return {f"{name}_kernels": init_plots.kernel_grid(pair, name)}

    def describe(trained: TrainedModel) -> dict[str, Any]:
        return result_row(variant, trained, trainable, total)

    return train_variant_in_run(variant, job, config, describe, metrics=METRICS, figures=kernels)


def result_row(
    variant: Variant, trained: TrainedModel, trainable: int, total: int
) -> dict[str, Any]:
    """The run's summary row: its scheme, what it trains, and its test accuracy over epochs."""
    history, scheme, common = trained.history, SCHEMES[variant["scheme"]], outcome(trained)
    test_acc = history.column("test_accuracy")
    best = max(range(len(test_acc)), key=test_acc.__getitem__)
    return {
        "run": run_of(variant),
        "network": variant.group,
        "scheme": scheme.name,
        "init": scheme.init,
        "first_layer": scheme.first_layer,
        "trainable_parameters": trainable,
        "parameters": total,
        **{k: common[k] for k in ("status", "diverged_epoch", "precision", "epochs_run")},
        "max_test_accuracy": test_acc[best],
        "max_test_accuracy_epoch": best + 1,
        "final_test_accuracy": test_acc[-1],
        "final_train_loss": history.column("train_loss")[-1],
        # Median over epochs: the first epoch carries one-off warm-up costs.
        "seconds_per_batch": statistics.median(history.column("batch_time")),
        "train_seconds": sum(history.column("train_time")),
        "wall_seconds": common["train_seconds"],
        "seed": variant.seed,
    }


def compare_initial_states(*states: dict[str, Tensor], variants: Sequence[Variant]) -> pd.DataFrame:
    """Norm of the difference of every pair of initial tensors the runs must share
    (``states`` of ``variants``); all exactly 0 in a controlled comparison. Runs of
    different seeds start from different draws by design: only runs of one seed are
    compared, and with several seeds the table gains a ``seed`` column."""
    schemes = {run_of(v): (v.group, SCHEMES[v["scheme"]]) for v in variants}

    def rule(a: str, b: str, tensor: str) -> str | None:
        return should_share(*schemes[a], *schemes[b], tensor)

    runs = [(v.seed, run_of(v), state) for v, state in zip(variants, states, strict=True)]
    table = differences_by_seed(runs, rule)
    differing = table[~table["identical"]]
    if len(differing):
        logger.warning(
            "[%s] %d initial tensors that should be shared differ:\n%s",
            STUDY,
            len(differing),
            differing.to_string(index=False),
        )
    log_table(table, "tables/initial_differences.csv")
    return table


def summarise(*results: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One summary row per run and seed, with the mean and standard deviation across
    seeds of each run beside it, and one long per-epoch history table."""
    return study_summary(
        results,
        by=("run",),
        statistics=SEED_STATISTICS,
        history_keys=("run", "network", "scheme", "seed"),
        history_leading=("train_loss", "test_accuracy", "test_loss"),
    )


def plot_study(summary: pd.DataFrame, history: pd.DataFrame) -> tuple[Figure, ...]:
    """The report's three comparisons plus time per batch."""
    by_network = {  # inset: the three schemes of each network
        NETWORKS[n]: [run_label(n, s) for s in SCHEMES] for n in NETWORKS
    }
    by_scheme = {s: [run_label(n, s) for n in NETWORKS] for s in SCHEMES}
    recovery = {"NetA2-HF vs NetA1": [run_label("net_a2", "HF")] + by_network["NetA1"]}
    compare = init_plots.compare_runs
    figures = {
        "inset_comparison": compare(history, by_network, title="inset comparison"),
        "architecture_comparison": compare(history, by_scheme, title="architecture comparison"),
        "recovery_comparison": compare(history, recovery, title="recovery comparison"),
        "time_per_batch": init_plots.time_per_batch(summary),
    }
    log_figures(figures)
    return tuple(figures[name] for name in FIGURES)


def plot_kernels(*states: dict[str, Tensor], variants: Sequence[Variant]) -> Figure:
    """First-layer kernels before and after training of ``variants`` (the trained first
    layers); ``states`` alternate each variant's initial and trained state dicts."""
    rows: dict[str, Tensor] = {}
    for variant, before, after in zip(variants, states[::2], states[1::2], strict=True):
        rows[f"{run_of(variant)} before"] = before["conv1.weight"]
        rows[f"{run_of(variant)} after"] = after["conv1.weight"]
    figure = init_plots.kernel_grid(rows, "first-layer kernels before and after training")
    log_figures({"kernels": figure})
    return figure


def analysis_model(bundle: DatasetBundle, state: dict[str, Tensor]) -> dict[str, Any]:
    """The trained default-init NetA1 (first seed), whose penultimate features the dataset
    analysis maps beside the raw pixels."""
    network, scheme = ANALYSIS_RUN
    model = _build(network, bundle)
    model.load_state_dict(state)
    return {"model": model, "input_size": None, "label": run_label(network, scheme)}


@reporting.report_node
def write_report(
    run: reporting.RunInputs, differences: pd.DataFrame, kernels: str, *figures: str
) -> tuple[str, str]:
    """The run's report (HTML and Markdown), also logged to MLflow; ``kernels`` and
    ``figures`` are the saved study figures (base64 PNG), the latter in the order of
    :data:`FIGURES`."""
    summary = run.summary
    tables = {"summary": summary.drop(columns=statistic_columns(SEED_STATISTICS))}
    if summary["seeds"].max() > 1:
        tables["mean and std across seeds"] = across_seeds(summary, ["run"], SEED_STATISTICS)
    check = "initial tensors the runs must share (initial_differences.csv, by tensor)"
    return reporting.report_of(
        STUDY,
        run,
        tables={**tables, check: check_summary(differences)},
        figures={**dict(zip(FIGURES, figures, strict=True)), "kernels": kernels},
        findings=init_findings(summary, differences),
        problems=diverged(summary, "run") + check_problems(differences),
    )
