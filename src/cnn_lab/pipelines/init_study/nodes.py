"""Thin nodes of the initialisation study: they call library code and hand results to the
catalog. Six runs: NetA1/NetA2 x HF (by hand, frozen), HT (by hand, trained), DT (default,
trained), all from one shared set of initial tensors per network."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from torch import Tensor, nn

from cnn_lab.data.sources import (
    DatasetBundle,
    LabelledImages,
    load_digits_images,
    load_torchvision_images,
)
from cnn_lab.data.transforms import resize_images
from cnn_lab.evaluation import init_plots
from cnn_lab.evaluation.findings import diverged
from cnn_lab.evaluation.init_check import pairwise_differences
from cnn_lab.evaluation.study_findings import init_findings, init_problems, initial_check
from cnn_lab.models import build_model, count_parameters
from cnn_lab.models.tiny import (
    SCHEMES,
    apply_first_layer_mode,
    apply_init,
    share_first_layer,
    should_share,
)
from cnn_lab.pipelines.init_study.schema import InitStudyParams
from cnn_lab.runtime.tracking import log_figures, log_table
from cnn_lab.study import reporting
from cnn_lab.study.params import validate_parameters
from cnn_lab.study.shared_nodes import training_seeds
from cnn_lab.study.training_params import check_precision
from cnn_lab.study.variant_run import checkpoint_store, log_status, variant_run
from cnn_lab.training.batching import DeviceBatches
from cnn_lab.training.callbacks import SplitEvaluation
from cnn_lab.training.device import resolve_device, seed_everything
from cnn_lab.training.performance import PerformanceOptions
from cnn_lab.training.recipe import Recipe, SplitData, train_model
from cnn_lab.training.threads import use_threads

STUDY = "init_study"
NETWORKS = {"net_a1": "NetA1", "net_a2": "NetA2"}  # registry family -> the report's name
RUNS = [(network, scheme) for network in NETWORKS for scheme in SCHEMES]
KERNEL_SCHEMES = ("HT", "DT")  # trained first layers: the kernels are shown before and after
FIGURES = ("inset_comparison", "architecture_comparison", "recovery_comparison", "time_per_batch")
logger = logging.getLogger(__name__)


def run_label(network: str, scheme: str) -> str:
    return f"{NETWORKS[network]}-{scheme}"


def validate_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Fail before any data is read if a parameter is wrong; pass on the full config."""
    config = validate_parameters(InitStudyParams, raw, STUDY).model_dump()
    check_precision(config, STUDY)
    return config


def _resized(images: LabelledImages | None, size: int) -> LabelledImages | None:
    if images is None:
        return None
    return LabelledImages(resize_images(images.images, size), images.labels, images.class_names)


def prepare_dataset(config: dict[str, Any]) -> DatasetBundle:
    """The source (digits or MNIST) at ``data.image_size`` (28: the report's networks)."""
    data = config["data"]
    if data["source"] == "digits":
        bundle = load_digits_images()
    else:
        bundle = load_torchvision_images(
            data["source"], data["root"], download=data["download"], key=f"{STUDY}.data"
        )
    size = data["image_size"]
    return DatasetBundle(bundle.name, _resized(bundle.train, size), _resized(bundle.test, size))


def _build(network: str, bundle: DatasetBundle) -> nn.Module:
    return build_model(
        network, in_shape=bundle.train.image_shape, num_classes=bundle.train.num_classes
    )


def shared_initial_networks(bundle: DatasetBundle, config: dict[str, Any]) -> tuple[nn.Module, ...]:
    """One default draw per network, with NetA1's first layer copied into NetA2, so the
    schemes of a network and the two networks differ only where the study says."""
    networks = []
    for network in NETWORKS:
        seed_everything(config["seed"])
        networks.append(_build(network, bundle))
    share_first_layer(networks[0], *networks[1:])
    return tuple(networks)


def initialise_run(
    shared: dict[str, Tensor], bundle: DatasetBundle, *, network: str, scheme: str
) -> nn.Module:
    """The run's starting network: the shared draw, then the scheme's first layer."""
    model = _build(network, bundle)
    model.load_state_dict(shared)
    return apply_init(model, SCHEMES[scheme])


def _recipe(config: dict[str, Any]) -> Recipe:
    return Recipe(
        **config["training"],
        seed=config["seed"],
        device=config["device"],
        probe_batch_size=config["probe_batch_size"],
        performance=PerformanceOptions(**config["performance"]),
    )


def _result_row(
    network: str, scheme: str, trained: Any, trainable: int, total: int
) -> dict[str, Any]:
    history = trained.history
    table = pd.DataFrame(history.epochs).assign(epoch=range(1, len(history.epochs) + 1))
    test_acc = history.column("test_accuracy")
    best = max(range(len(test_acc)), key=test_acc.__getitem__)
    return {
        "run": run_label(network, scheme),
        "network": network,
        "scheme": scheme,
        "init": SCHEMES[scheme].init,
        "first_layer": SCHEMES[scheme].first_layer,
        "trainable_parameters": trainable,
        "parameters": total,
        "status": "diverged" if history.diverged else "ok",
        "diverged_epoch": history.diverged_epoch,
        "precision": trained.performance.get("perf_precision"),
        "epochs_run": len(history.epochs),
        "max_test_accuracy": test_acc[best],
        "max_test_accuracy_epoch": best + 1,
        "final_test_accuracy": test_acc[-1],
        "final_train_loss": history.column("train_loss")[-1],
        # Median over epochs: the first epoch carries one-off warm-up costs.
        "seconds_per_batch": statistics.median(history.column("batch_time")),
        "train_seconds": sum(history.column("train_time")),
        "wall_seconds": history.train_seconds,
        "history": table.to_dict(orient="records"),
    }


def train_run(
    bundle: DatasetBundle,
    split: dict[str, Any],
    config: dict[str, Any],
    initial: dict[str, Tensor],
    *,
    network: str,
    scheme: str,
) -> tuple[dict[str, Any], nn.Module]:
    """Train one (network, scheme) run from its saved initial tensors, in its own MLflow run,
    scoring the test split after every epoch."""
    use_threads(config["threads"])  # by load; train_model refines it for the model
    name = run_label(network, scheme)
    data = SplitData.from_bundle(bundle, split)
    recipe = _recipe(config)

    def build() -> nn.Module:
        model = _build(network, bundle)
        model.load_state_dict(initial)
        return apply_first_layer_mode(model, SCHEMES[scheme])

    probe = build()
    trainable, total = count_parameters(probe, trainable_only=True), count_parameters(probe)
    test_batches = DeviceBatches(
        data.test.images,
        data.test.labels,
        batch_size=recipe.eval_batch_size,
        device=resolve_device(recipe.device),
        normalisation=data.normalisation,
    )
    run_params = {
        "study": STUDY,
        "network": network,
        "scheme": scheme,
        "init": SCHEMES[scheme].init,
        "first_layer": SCHEMES[scheme].first_layer,
        "dataset": bundle.name,
        "image_size": config["data"]["image_size"],
        "trainable_parameters": trainable,
        **config["training"],
        "seed": config["seed"],
    }
    tags = {"study": STUDY, "variant": name, "network": network, "scheme": scheme}
    store = checkpoint_store(STUDY, name, config, run_params, recipe, split)
    with variant_run(store, name, run_params, tags) as run:
        trained = train_model(
            build,
            data,
            recipe,
            label=f"{STUDY}.{name}",
            extra_callbacks=[SplitEvaluation(test_batches, "test"), *run.callbacks],
            checkpoint=store,
            threads=config["threads"],
        )
        result = {
            **_result_row(network, scheme, trained, trainable, total),
            "mlflow_run_id": run.run_id,
        }
        if run.logging:
            import mlflow

            mlflow.log_metrics(
                {
                    k: float(result[k])
                    for k in (
                        "max_test_accuracy",
                        "final_test_accuracy",
                        "seconds_per_batch",
                        "train_seconds",
                        "wall_seconds",
                    )
                }
            )
            mlflow.log_params(trained.performance)
            log_status(result)
            kernels = {"before": initial["conv1.weight"], "after": trained.model.conv1.weight}
            log_figures({f"{name}_kernels": init_plots.kernel_grid(kernels, name)})
    logger.info(
        "[%s.%s] test accuracy max %.4f final %.4f, %.2f ms/batch",
        STUDY,
        name,
        result["max_test_accuracy"],
        result["final_test_accuracy"],
        1e3 * result["seconds_per_batch"],
    )
    return result, trained.model.cpu()


def compare_initial_states(
    *states: dict[str, Tensor], seeds: Sequence[int] | None = None
) -> pd.DataFrame:
    """Norm of the difference of every pair of initial tensors the runs must share
    (``states`` in the order of :data:`RUNS`, once per seed of ``seeds``); all exactly 0 in
    a controlled comparison. Runs of different seeds start from different draws by design:
    only runs of one seed are compared, and with several seeds the table gains a ``seed``
    column."""
    keys = {run_label(n, s): (n, s) for n, s in RUNS}

    def rule(a: str, b: str, tensor: str) -> str | None:
        (net_a, scheme_a), (net_b, scheme_b) = keys[a], keys[b]
        return should_share(net_a, SCHEMES[scheme_a], net_b, SCHEMES[scheme_b], tensor)

    tables = []
    for index, seed in enumerate(seeds or [None]):
        chunk = states[index * len(RUNS) : (index + 1) * len(RUNS)]
        table = pairwise_differences(dict(zip(keys, chunk, strict=True)), rule)
        tables.append(table if seed is None else table.assign(seed=seed))
    table = pd.concat(tables, ignore_index=True)
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


def compare_initial_states_by_seed(
    config: dict[str, Any], *states: dict[str, Tensor]
) -> pd.DataFrame:
    """:func:`compare_initial_states` for the runs of every training seed of ``config``."""
    seeds = training_seeds(config)
    return compare_initial_states(*states, seeds=seeds if len(seeds) > 1 else None)


SEED_STATISTICS = ("max_test_accuracy", "final_test_accuracy", "seconds_per_batch")


def summarise(
    config: dict[str, Any], *results: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One summary row per run and seed (``results`` in the order of :data:`RUNS`, once per
    training seed), with the mean and standard deviation across seeds of each run beside
    it, and one long per-epoch history table."""
    seeds = [seed for seed in training_seeds(config) for _ in RUNS]
    rows = [{k: v for k, v in r.items() if k != "history"} for r in results]
    summary = pd.DataFrame(rows).assign(seed=seeds)
    by_run = summary.groupby("run", sort=False)
    for metric in SEED_STATISTICS:
        summary[f"{metric}_mean"] = by_run[metric].transform("mean")
        summary[f"{metric}_std"] = by_run[metric].transform("std")
    summary["seeds"] = by_run["seed"].transform("count")
    history = pd.concat(
        [
            pd.DataFrame(r["history"]).assign(
                run=r["run"], network=r["network"], scheme=r["scheme"], seed=seed
            )
            for r, seed in zip(results, seeds, strict=True)
        ],
        ignore_index=True,
    )
    leading = [
        "run",
        "network",
        "scheme",
        "seed",
        "epoch",
        "train_loss",
        "test_accuracy",
        "test_loss",
    ]
    history = history[leading + sorted(c for c in history if c not in leading)]
    log_table(summary, "tables/summary.csv")
    log_table(history, "tables/history.csv")
    return summary, history


def plot_study(summary: pd.DataFrame, history: pd.DataFrame) -> tuple[Figure, ...]:
    """The report's three comparisons plus time per batch."""
    by_network = {
        NETWORKS[n]: [run_label(n, s) for s in SCHEMES] for n in NETWORKS
    }  # inset: the three schemes of each network
    by_scheme = {s: [run_label(n, s) for n in NETWORKS] for s in SCHEMES}
    recovery = {"NetA2-HF vs NetA1": [run_label("net_a2", "HF")] + by_network["NetA1"]}
    figures = {
        "inset_comparison": init_plots.compare_runs(history, by_network, title="inset comparison"),
        "architecture_comparison": init_plots.compare_runs(
            history, by_scheme, title="architecture comparison"
        ),
        "recovery_comparison": init_plots.compare_runs(
            history, recovery, title="recovery comparison"
        ),
        "time_per_batch": init_plots.time_per_batch(summary),
    }
    log_figures(figures)
    return tuple(figures[name] for name in FIGURES)


def plot_kernels(*states: dict[str, Tensor]) -> Figure:
    """First-layer kernels before and after training for the trained-first-layer runs;
    ``states`` alternate initial and trained state dicts in the order of those runs."""
    runs = [(n, s) for n, s in RUNS if s in KERNEL_SCHEMES]
    rows: dict[str, Tensor] = {}
    for (network, scheme), before, after in zip(runs, states[::2], states[1::2], strict=True):
        rows[f"{run_label(network, scheme)} before"] = before["conv1.weight"]
        rows[f"{run_label(network, scheme)} after"] = after["conv1.weight"]
    figure = init_plots.kernel_grid(rows, "first-layer kernels before and after training")
    log_figures({"kernels": figure})
    return figure


# --- what people read: the dataset analysis's model and the report ------------------------

ANALYSIS_RUN = ("net_a1", "DT")  # the default-init network: its features beside the pixels


def analysis_model(bundle: DatasetBundle, state: dict[str, Tensor]) -> dict[str, Any]:
    """The trained default-init NetA1 (first seed), whose penultimate features the dataset
    analysis maps beside the raw pixels."""
    network, scheme = ANALYSIS_RUN
    model = _build(network, bundle)
    model.load_state_dict(state)
    return {"model": model, "input_size": None, "label": run_label(network, scheme)}


def write_report(
    raw_params: dict[str, Any],
    config: dict[str, Any],
    bundle: DatasetBundle,
    split: dict[str, Any],
    summary: pd.DataFrame,
    differences: pd.DataFrame,
    analysis: dict[str, Any],
    *figures: str,
) -> tuple[str, str]:
    """The run's report (HTML and Markdown), also logged to MLflow; ``figures`` are the
    saved study figures (base64 PNG) in the order of :data:`FIGURES` then the kernels."""
    statistics = [f"{m}_{k}" for m in SEED_STATISTICS for k in ("mean", "std")] + ["seeds"]
    tables = {"summary": summary.drop(columns=statistics)}
    if summary["seeds"].max() > 1:
        across = summary.drop_duplicates("run")[["run", *statistics]]
        tables["mean and std across seeds"] = across.reset_index(drop=True)
    tables["initial tensors the runs must share (initial_differences.csv, by tensor)"] = (
        initial_check(differences)
    )
    return reporting.write_report(
        STUDY,
        raw_params,
        dataset=bundle.name,
        split_sizes=reporting.split_sizes(bundle, split),
        device=str(resolve_device(config["device"])),
        precision=reporting.precision_that_ran(summary),
        tables=tables,
        figures=dict(zip((*FIGURES, "kernels"), figures, strict=True)),
        findings=init_findings(summary, differences),
        problems=diverged(summary, "run") + init_problems(differences),
        sections=(analysis,),
    )
