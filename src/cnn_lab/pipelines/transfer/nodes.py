"""Thin nodes of the transfer study: they call library code and hand results to the catalog.

The target's test images reach exactly one node, :func:`evaluate_on_test`; every other
node sees the training and validation parts only. The source network, the baselines and
the search train with the study's ``seed``; every fine-tuning variant with its own.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.data.sources import DatasetBundle, LabelledImages, load_named_images
from cnn_lab.data.splits import split_bundle
from cnn_lab.data.tasks import class_subset
from cnn_lab.evaluation import compare
from cnn_lab.evaluation.baselines import BaselineFit, fit_on_features
from cnn_lab.evaluation.features import split_features
from cnn_lab.evaluation.findings import with_seed_statistics
from cnn_lab.evaluation.metrics import model_scores
from cnn_lab.models.resnet import feature_extractor
from cnn_lab.pipelines.transfer.findings import (
    TRANSFER_KEYS,
    TRANSFER_STATISTICS,
    transfer_findings,
    transfer_problems,
)
from cnn_lab.pipelines.transfer.schema import DATASET_CHANNELS, TaskParams
from cnn_lab.runtime import tracking
from cnn_lab.study import reporting
from cnn_lab.study.finetune import (
    TransferNetworks,
    finetune_choice,
    finetune_job,
    finetune_variants,
    searched_choice,
    source_network,
    train_finetune,
    trial_value,
)
from cnn_lab.study.params import ParameterError, check_batch_sizes
from cnn_lab.study.spec import Variant, training_seeds
from cnn_lab.study.summary import best_confusion_figure, summary_row
from cnn_lab.training.batching import DeviceBatches
from cnn_lab.training.device import resolve_device
from cnn_lab.training.recipe import SplitData
from cnn_lab.training.search import (
    PruningCallback,
    best_params,
    open_search,
    run_search,
    search_figures,
    search_line,
)
from cnn_lab.training.threads import use_threads

STUDY = "transfer"
BASELINES = ("svm", "logistic")
SEARCH_FIGURES = ("optimization_history", "intermediate_values", "param_importances")
STUDY_FIGURES = ("finetune_curves", "optimizer_curves", "accuracy_by_approach")
logger = logging.getLogger(__name__)


def variants(config: dict[str, Any]) -> list[Variant]:
    """The study's fine-tuning variants, seed by seed (see :func:`finetune_variants`)."""
    return finetune_variants(STUDY, config)


def check_config(config: dict[str, Any], raw: Any) -> None:
    """A checkpoint given as ``source.weights`` is loaded now, so a file that does not
    fit the model fails naming the keys, rather than after data preparation."""
    weights = config["source"]["weights"]
    if weights in ("train", "imagenet"):
        return
    try:
        networks(config).source(weights)
    except (FileNotFoundError, ValueError) as err:
        raise ParameterError(f"{STUDY}.source.weights: {err}") from err


def _load(task: dict[str, Any], config: dict[str, Any], cache: dict[str, DatasetBundle]):
    name = task["dataset"]
    if name not in cache:
        data = config["data"]
        key = f"{STUDY}.data"
        cache[name] = load_named_images(name, data["root"], download=data["download"], key=key)
    return class_subset(cache[name], task["classes"])


def prepare_data(config: dict[str, Any]) -> tuple[DatasetBundle, DatasetBundle]:
    """Source and target tasks (each dataset read once even when both use it)."""
    cache: dict[str, DatasetBundle] = {}
    return _load(config["source"]["task"], config, cache), _load(config["target"], config, cache)


def split_data(
    source: DatasetBundle, target: DatasetBundle, config: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], SplitData, LabelledImages]:
    """Stratified, seeded splits (indices saved). The target comes out as train/val data
    with no test part, and the test images separately, for the final evaluation only."""
    seed = config["seed"]
    source_split = _split(source, config["source"]["task"], seed)
    target_split = _split(target, config["target"], seed)
    if config["source"]["weights"] == "train":
        size = config["source"]["training"]["batch_size"]
        sizes = {f"{STUDY}.source.training.batch_size": size}
        check_batch_sizes(sizes, len(source_split["train"]), "source")
    searched = enumerate(config["search"]["batch_sizes"])
    sizes = {f"{STUDY}.search.batch_sizes[{i}]": size for i, size in searched}
    sizes = {f"{STUDY}.finetune.batch_size": config["finetune"]["batch_size"], **sizes}
    check_batch_sizes(sizes, len(target_split["train"]), "target")
    full = SplitData.from_bundle(target, target_split)
    trainval = SplitData(full.train, full.val, None, full.normalisation)
    return source_split, target_split, trainval, full.test


def _split(bundle: DatasetBundle, task: dict[str, Any], seed: int) -> dict[str, Any]:
    return split_bundle(
        bundle, val_ratio=task["val_ratio"], seed=seed, test_ratio=task["test_ratio"]
    )


def networks(config: dict[str, Any]) -> TransferNetworks:
    """The source architecture (the source task's classes) and the targets tuned from it."""
    model, task = config["model"], TaskParams(**config["source"]["task"])
    options = {"in_shape": (DATASET_CHANNELS[task.dataset], 0, 0), "num_classes": task.num_classes}
    options |= {k: model[k] for k in ("arch", "cifar_stem", "width")}
    target_classes = TaskParams(**config["target"]).num_classes
    key = f"{STUDY}.source.weights"
    return TransferNetworks("resnet", options, target_classes, model["freeze_bn_stats"], key, model)


def train_source(
    source: DatasetBundle, split: dict[str, Any], config: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """Train the source network, or load it (``imagenet`` or a checkpoint path). The
    catalog saves its state_dict; later nodes receive that state_dict."""
    source_config = config["source"]
    variant, weights = Variant(STUDY, "source", config["seed"]), source_config["weights"]
    built = networks(config)
    return source_network(variant, built, weights, source, split, config, source_config["training"])


def extract_features(
    source_state: dict[str, torch.Tensor], data: SplitData, config: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Pooled features of the frozen source network for the target's train and val."""
    use_threads(config["threads"])
    parts = {"train": data.train, "val": data.val}
    features = _features(source_state, parts, data, config)
    logger.info(
        "[%s.features] train %s, val %s", STUDY, features["train_x"].shape, features["val_x"].shape
    )
    return features


def _features(
    source_state: dict[str, torch.Tensor],
    parts: dict[str, LabelledImages],
    data: SplitData,
    config: dict[str, Any],
) -> dict[str, np.ndarray]:
    """The frozen source network's pooled features of ``parts``, normalised as ``data``."""
    model = networks(config).trained_source(source_state)
    extractor = feature_extractor(model).to(resolve_device(config["device"]))
    size = config["baselines"]["feature_batch_size"]
    return split_features(extractor, parts, data.normalisation, batch_size=size)


def fit_baselines(
    features: dict[str, np.ndarray], config: dict[str, Any]
) -> tuple[dict[str, BaselineFit], list[dict[str, Any]]]:
    """LinearSVC and logistic regression on standardised features, each timed."""
    fitted = {kind: _fit_baseline(kind, features, config) for kind in BASELINES}
    return {k: fit for k, (fit, _) in fitted.items()}, [row for _, row in fitted.values()]


def _fit_baseline(
    kind: str, features: dict[str, np.ndarray], config: dict[str, Any]
) -> tuple[BaselineFit, dict[str, Any]]:
    """One baseline fitted in its own nested MLflow run, and its summary row."""
    settings, seed = config["baselines"][kind], config["seed"]
    params = {"study": STUDY, "kind": kind, **settings}
    with tracking.child_run(kind, params, {"study": STUDY, "variant": kind}) as run_id:
        fitted, val_accuracy = fit_on_features(kind, settings, features, seed=seed)
        tracking.log_metrics({"val_accuracy": val_accuracy, "train_seconds": fitted.fit_seconds})
        tracking.tag_run(run_id, {"converged": fitted.converged})
    logger.info("[%s.%s] val accuracy %.4f (%s)", STUDY, kind, val_accuracy, fitted.fit_text())
    row = {"approach": kind, "group": "baseline", "seed": seed, "preset": "features"}
    row |= {"optimizer": settings.get("solver", "lbfgs"), "val_accuracy": val_accuracy}
    return fitted, {**row, **fitted.costs(), "mlflow_run_id": run_id}


def finetune(
    source_state: dict[str, torch.Tensor],
    data: SplitData,
    config: dict[str, Any],
    *best: dict[str, Any],
    variant: Variant,
) -> tuple[dict[str, Any], nn.Module]:
    """Train one fine-tuning variant (preset, optimizer run or the tuned model)."""
    chosen = finetune_choice(config, variant, best)
    job = finetune_job(config, variant, chosen, networks(config), data, source_state)
    return train_finetune(variant, job, config)


def search(
    source_state: dict[str, torch.Tensor],
    data: SplitData,
    config: dict[str, Any],
    *untuned: dict[str, Any],
) -> tuple[Any, ...]:
    """Optuna search over learning rate, batch size, dropout (and the optimizer when
    ``search.optimizers`` lists them), started from the best ``untuned`` run it can
    represent (enqueued as its first trial); each trial is a nested MLflow run under a
    ``search`` run. Returns the trials table, the best configuration and Optuna's figures."""
    s = config["search"]
    study, space = open_search(s, config["seed"], untuned)
    params = {"study": STUDY, **{k: v for k, v in s.items() if k != "storage"}}
    with tracking.child_run("search", params, {"study": STUDY, "variant": "search"}):

        def train(trial: Any, sampled: dict[str, Any], pruning: PruningCallback) -> float:
            """One trial: the sampled settings fine-tuned with the study's seed."""
            variant = Variant(STUDY, f"trial_{trial.number:03d}", config["seed"], "search")
            chosen, built = searched_choice(config, sampled), networks(config)
            job = finetune_job(config, variant, chosen, built, data, source_state, pruning)
            return trial_value(variant, job, config, trial, pruning)

        trials = run_search(study, space, train, n_trials=s["n_trials"])
        best, figures, table = best_params(study), search_figures(study), study.trials_dataframe()
        tracking.log_figures(figures, "figures")
        tracking.log_table(table, "tables/trials.csv")
    logger.info("[%s.search] %s", STUDY, search_line(study, trials, best))
    return (table, best, *(figures[name] for name in SEARCH_FIGURES))


def evaluate_on_test(
    test: LabelledImages,
    data: SplitData,
    source_state: dict[str, torch.Tensor],
    baselines: dict[str, BaselineFit],
    baseline_results: list[dict[str, Any]],
    config: dict[str, Any],
    *variants: Any,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Score every approach once on the test set; ``variants`` alternate a fine-tuning
    result and its weights (every training seed's). Returns the table of every approach
    and seed, with each approach's mean and std across seeds beside it, and each
    fine-tuning run's result with its test predictions (``test_labels``, as the study
    kit's results carry them), which the best run's confusion matrix is drawn from."""
    use_threads(config["threads"])
    device = resolve_device(config["device"])
    features = _features(source_state, {"test": test}, data, config)
    test_x, test_y = features["test_x"], features["test_y"]
    rows = [
        {**r, "test_accuracy": baselines[r["approach"]].accuracy(test_x, test_y)}
        for r in baseline_results
    ]
    size, seeded = config["finetune"]["eval_batch_size"], len(training_seeds(config)) > 1
    batches = DeviceBatches(
        test.images, test.labels, batch_size=size, device=device, normalisation=data.normalisation
    )
    scored, built = [], networks(config)
    for result, state in zip(variants[::2], variants[1::2], strict=True):
        model = built.trained_target(result, state)
        scores, labels = model_scores(model.to(device), batches, test.class_names)
        rows.append(summary_row(result) | {f"test_{m}": v for m, v in scores.items()})
        name = f"{result['approach']}_s{result['seed']}" if seeded else result["approach"]
        scored.append(rows[-1] | {"variant": name, "test_labels": labels})
    table = with_seed_statistics(compare.approach_table(rows), TRANSFER_KEYS, TRANSFER_STATISTICS)
    _log_test_scores(table)
    tracking.log_table(table, "tables/summary.csv")
    return table, scored


def best_confusion(scored: list[dict[str, Any]]) -> Figure:
    """The kit's confusion matrix of the fine-tuning run with the best test accuracy,
    from the runs as :func:`evaluate_on_test` scored them (the only node that sees the
    test images)."""
    return best_confusion_figure(*scored)


def _log_test_scores(table: pd.DataFrame) -> None:
    """Each run's test accuracy in its own run; the mean over seeds in the study's."""
    for row in table.itertuples():
        if isinstance(row.mlflow_run_id, str):
            tracking.log_to_run(row.mlflow_run_id, {"test_accuracy": row.test_accuracy})
    means = table.drop_duplicates("approach")
    tracking.log_metrics(
        {f"{r.approach}.test_accuracy": r.test_accuracy_mean for r in means.itertuples()}
    )


def summarise(*results: dict[str, Any]) -> pd.DataFrame:
    """The per-epoch history of every fine-tuning run (the search's trials have their own
    runs); the summary itself is :func:`evaluate_on_test`'s, which scores the test set."""
    table = compare.history_table(results)
    tracking.log_table(table, "tables/history.csv")
    return table


def plot(summary: pd.DataFrame, history: pd.DataFrame) -> tuple[Any, ...]:
    """The study's figures, in the order of :data:`STUDY_FIGURES`."""
    figures = {
        "finetune_curves": compare.overlaid_curves(
            history[history["group"] == "finetune"], "fine-tuning presets"
        ),
        "optimizer_curves": compare.overlaid_curves(
            history[history["group"] == "optimizers"], "optimizers (same learning rates)"
        ),
        "accuracy_by_approach": compare.accuracy_by_approach(summary),
    }
    tracking.log_figures(figures)
    return tuple(figures[name] for name in STUDY_FIGURES)


def source_analysis_model(
    config: dict[str, Any], source_state: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """The source network, whose penultimate (pooled) features the source task's dataset
    analysis maps beside the raw pixels: the features the baselines are fitted on."""
    model = networks(config).trained_source(source_state)
    return {"model": model, "input_size": None, "label": "source network"}


def target_analysis_model(config: dict[str, Any], *variants: Any) -> dict[str, Any]:
    """The fine-tuning preset with the best validation accuracy (``variants`` alternate a
    preset's result and its weights), for the target task's dataset analysis; no model
    when none has a finite validation accuracy."""
    best = reporting.best_trained("val_accuracy", *variants)
    if best is None:
        return {"model": None}
    result, state = best
    model = networks(config).trained_target(result, state)
    return {"model": model, "input_size": None, "label": f"fine-tuned: {result['approach']}"}


@reporting.report_node
def write_report(
    run: reporting.RunInputs,
    source: DatasetBundle,
    source_split: dict[str, Any],
    source_result: dict[str, Any],
    trials: pd.DataFrame,
    source_analysis: dict[str, Any],
    *figures: str,
) -> tuple[str, str]:
    """The run's report (HTML and Markdown), also logged to MLflow: every approach on the
    test set, the best baseline against the best fine-tuning preset, the study's and the
    search's figures (``figures`` in the order of SEARCH_FIGURES then STUDY_FIGURES), the
    best fine-tuning run's confusion matrix and both tasks' dataset analyses (``run``
    holds the target's)."""
    summary, target = run.summary, run.bundle
    sizes = {
        **reporting.split_sizes(source, source_split, "source "),
        **reporting.split_sizes(target, run.split, "target "),
    }
    drawn = dict(zip((*SEARCH_FIGURES, *STUDY_FIGURES), figures, strict=True))
    return reporting.report_of(
        STUDY,
        run,
        dataset=f"{source.name} → {target.name}",
        sizes=sizes,
        tables=compare.report_tables(
            summary, source_result, trials, TRANSFER_KEYS, TRANSFER_STATISTICS
        ),
        figures={name: drawn[name] for name in (*STUDY_FIGURES, *SEARCH_FIGURES)},
        findings=transfer_findings(summary, source_result, trials),
        problems=transfer_problems(summary),
        sections=(source_analysis,),
    )
