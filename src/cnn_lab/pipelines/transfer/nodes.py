"""Thin nodes of the transfer study: they call library code and hand results to the catalog.

The target's test images reach exactly one node, :func:`evaluate_on_test`; every other
node sees the training and validation parts only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cnn_lab.data.sources import (
    DatasetBundle,
    LabelledImages,
    load_digits_images,
    load_torchvision_images,
)
from cnn_lab.data.splits import stratified_split
from cnn_lab.data.tasks import class_subset
from cnn_lab.evaluation import compare
from cnn_lab.evaluation.baselines import BaselineFit, fit_baseline
from cnn_lab.evaluation.features import pooled_features
from cnn_lab.evaluation.findings import across_seeds, statistic_columns, with_seed_statistics
from cnn_lab.pipelines.transfer.findings import (
    TRANSFER_KEYS,
    TRANSFER_STATISTICS,
    transfer_findings,
    transfer_problems,
)
from cnn_lab.models import count_parameters
from cnn_lab.models.resnet import (
    build_resnet,
    feature_extractor,
    freeze_resnet,
    head_parameter_groups,
    load_backbone,
    load_weights,
    replace_head,
)
from cnn_lab.pipelines.transfer.schema import DATASET_CHANNELS, TaskParams, TransferParams
from cnn_lab.runtime.tracking import child_run, log_figures, log_table
from cnn_lab.study import reporting
from cnn_lab.study.params import ParameterError, validate_parameters
from cnn_lab.study.training_params import check_precision
from cnn_lab.study.variant_run import checkpoint_store, log_status, variant_run
from cnn_lab.training.batching import DeviceBatches
from cnn_lab.training.callbacks import Callback, EarlyStopping
from cnn_lab.training.checkpoint import fingerprint
from cnn_lab.training.device import resolve_device
from cnn_lab.training.engine import evaluate
from cnn_lab.training.performance import PerformanceOptions
from cnn_lab.training.recipe import Recipe, SplitData, train_model
from cnn_lab.training.search import (
    PruningCallback,
    SearchSpace,
    best_params,
    build_pruner,
    enqueue_untuned,
    open_study,
    run_search,
    search_figures,
)
from cnn_lab.training.threads import use_threads

STUDY = "transfer"
BASELINES = ("svm", "logistic")
SEARCH_FIGURES = ("optimization_history", "intermediate_values", "param_importances")
STUDY_FIGURES = ("finetune_curves", "optimizer_curves", "accuracy_by_approach")
logger = logging.getLogger(__name__)


def optimizer_variant(name: str, lr: float) -> str:
    """``adam_lr1e-03``: no dots, so the name can be a Kedro namespace."""
    return f"{name}_lr{lr:.0e}"


# --- parameters and data -------------------------------------------------------------


def validate_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Fail before any data is read if a parameter is wrong; pass on the full config.

    A checkpoint given as ``source.weights`` is loaded here too, so a file that does not
    fit the model fails now, naming the keys, rather than after data preparation.
    """
    config = validate_parameters(TransferParams, raw, STUDY).model_dump()
    check_precision(config, STUDY)
    weights = config["source"]["weights"]
    if weights not in ("train", "imagenet"):
        try:
            load_backbone(
                build_source_model(config),
                load_weights(config["model"]["arch"], weights, key=f"{STUDY}.source.weights"),
                source=weights,
            )
        except (FileNotFoundError, ValueError) as err:
            raise ParameterError(f"{STUDY}.source.weights: {err}") from err
    return config


def _load(task: dict[str, Any], config: dict[str, Any], cache: dict[str, DatasetBundle]):
    name = task["dataset"]
    if name not in cache:
        data = config["data"]
        cache[name] = (
            load_digits_images()
            if name == "digits"
            else load_torchvision_images(
                name, data["root"], download=data["download"], key=f"{STUDY}.data"
            )
        )
    return class_subset(cache[name], task["classes"])


def prepare_data(config: dict[str, Any]) -> tuple[DatasetBundle, DatasetBundle]:
    """Source and target tasks (each dataset read once even when both use it)."""
    cache: dict[str, DatasetBundle] = {}
    return _load(config["source"]["task"], config, cache), _load(config["target"], config, cache)


def _split(bundle: DatasetBundle, task: dict[str, Any], seed: int) -> dict[str, Any]:
    return stratified_split(
        bundle.train.labels,
        val_ratio=task["val_ratio"],
        seed=seed,
        test_ratio=None if bundle.test is not None else task["test_ratio"],
    )


def _batch_sizes(config: dict[str, Any]) -> dict[str, int]:
    sizes = {
        "finetune.batch_size": config["finetune"]["batch_size"],
        **{f"search.batch_sizes[{i}]": b for i, b in enumerate(config["search"]["batch_sizes"])},
    }
    return sizes


def _check_batch_sizes(sizes: dict[str, int], train_size: int, task: str) -> None:
    too_big = [f"{STUDY}.{key}: {size}" for key, size in sizes.items() if size > train_size]
    if too_big:
        raise ParameterError(
            f"batch size(s) larger than the {task} training split ({train_size} samples): "
            + "; ".join(too_big)
        )


def split_data(
    source: DatasetBundle, target: DatasetBundle, config: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], SplitData, LabelledImages]:
    """Stratified, seeded splits (indices saved). The target comes out as train/val data
    with no test part, and the test images separately, for the final evaluation only."""
    seed = config["seed"]
    source_split = _split(source, config["source"]["task"], seed)
    target_split = _split(target, config["target"], seed)
    if config["source"]["weights"] == "train":
        _check_batch_sizes(
            {"source.training.batch_size": config["source"]["training"]["batch_size"]},
            len(source_split["train"]),
            "source",
        )
    _check_batch_sizes(_batch_sizes(config), len(target_split["train"]), "target")
    full = SplitData.from_bundle(target, target_split)
    trainval = SplitData(full.train, full.val, None, full.normalisation)
    return source_split, target_split, trainval, full.test


# --- models ---------------------------------------------------------------------------


def _threads(config: dict[str, Any]) -> None:
    """By load alone; ``train_model`` refines an ``auto`` for the model it trains."""
    use_threads(config["threads"])


def build_source_model(config: dict[str, Any], weights: str = "none") -> nn.Module:
    model = config["model"]
    task = TaskParams(**config["source"]["task"])
    return build_resnet(
        model["arch"],
        task.num_classes,
        weights=weights,
        cifar_stem=model["cifar_stem"],
        in_channels=DATASET_CHANNELS[task.dataset],
        width=model["width"],
        weights_key=f"{STUDY}.source.weights",
    )


def build_target_model(
    config: dict[str, Any],
    preset: str,
    dropout: float,
    source_state: dict[str, torch.Tensor] | None = None,
) -> nn.Module:
    """The source architecture (with the source weights when given), a fresh target head
    with dropout before it, and the preset's layers frozen."""
    model = build_source_model(config)
    if source_state is not None:
        model.load_state_dict(source_state)
    replace_head(model, TaskParams(**config["target"]).num_classes, dropout=dropout)
    return freeze_resnet(model, preset, freeze_bn_stats=config["model"]["freeze_bn_stats"])


def _recipe(config: dict[str, Any], training: dict[str, Any], **overrides: Any) -> Recipe:
    keys = (
        "optimizer",
        "lr",
        "weight_decay",
        "momentum",
        "batch_size",
        "eval_batch_size",
        "epochs",
        "scheduler",
        "step_size",
        "gamma",
    )
    settings = {k: training[k] for k in keys} | overrides
    # Per-layer gradient norms are the depth study's question, not this one's.
    return Recipe(
        **settings,
        seed=config["seed"],
        device=config["device"],
        probe_gradients=False,
        performance=PerformanceOptions(**config["performance"]),
    )


def train_source(
    source: DatasetBundle, split: dict[str, Any], config: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """Train the source network, or load it (``imagenet`` or a checkpoint path). The
    catalog saves its state_dict; later nodes receive that state_dict."""
    _threads(config)
    weights = config["source"]["weights"]
    training = config["source"]["training"]
    params = {"study": STUDY, "dataset": source.name, "weights": weights, **config["model"]}
    tags = {"study": STUDY, "variant": "source"}
    if weights != "train":
        with child_run("source", params, tags) as run_id:
            model = build_source_model(config, weights)
            return model, {"weights": weights, "trained": False, "mlflow_run_id": run_id}
    recipe = _recipe(config, training)
    store = checkpoint_store(STUDY, "source", config, params, recipe, split)
    with variant_run(store, "source", params, tags) as run:
        trained = train_model(
            lambda: build_source_model(config),
            SplitData.from_bundle(source, split),
            recipe,
            label=f"{STUDY}.source",
            extra_callbacks=run.callbacks,
            checkpoint=store,
            threads=config["threads"],
        )
        val = trained.history.column("val_accuracy")
        result = {
            "weights": "train",
            "trained": True,
            "dataset": source.name,
            "val_accuracy": val[-1] if val else math.nan,
            "test_accuracy": trained.test["accuracy"],
            "train_seconds": trained.history.train_seconds,
            "parameters": count_parameters(trained.model),
            "mlflow_run_id": run.run_id,
        }
        if run.logging:
            import mlflow

            mlflow.log_metrics({"source_test_accuracy": result["test_accuracy"]})
            mlflow.log_params(trained.performance)
    logger.info(
        "[%s.source] %s: test accuracy %.4f (%.1f s)",
        STUDY,
        source.name,
        result["test_accuracy"],
        result["train_seconds"],
    )
    return trained.model.cpu(), result


# --- feature baselines ----------------------------------------------------------------


def extract_features(
    source_state: dict[str, torch.Tensor], data: SplitData, config: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Pooled features of the frozen source network for the target's train and val."""
    _threads(config)
    model = build_source_model(config)
    model.load_state_dict(source_state)
    extractor = feature_extractor(model).to(resolve_device(config["device"]))
    size = config["baselines"]["feature_batch_size"]
    features: dict[str, np.ndarray] = {}
    for part, images in (("train", data.train), ("val", data.val)):
        x, y = pooled_features(extractor, images, data.normalisation, batch_size=size)
        features[f"{part}_x"], features[f"{part}_y"] = x, y
    logger.info(
        "[%s.features] train %s, val %s", STUDY, features["train_x"].shape, features["val_x"].shape
    )
    return features


def fit_baselines(
    features: dict[str, np.ndarray], config: dict[str, Any]
) -> tuple[dict[str, BaselineFit], list[dict[str, Any]]]:
    """LinearSVC and logistic regression on standardised features, each timed."""
    options = config["baselines"]
    fits, results = {}, []
    for kind in BASELINES:
        settings = options[kind]
        extra = {"svm_solver": settings["solver"]} if kind == "svm" else {}
        params = {"study": STUDY, "kind": kind, **settings}
        with child_run(kind, params, {"study": STUDY, "variant": kind}) as run_id:
            fitted = fit_baseline(
                kind,
                kind,
                features["train_x"],
                features["train_y"],
                c=settings["C"],
                max_iter=settings["max_iter"],
                seed=config["seed"],
                **extra,
            )
            val_accuracy = fitted.accuracy(features["val_x"], features["val_y"])
            if run_id is not None:
                import mlflow

                mlflow.log_metrics(
                    {"val_accuracy": val_accuracy, "train_seconds": fitted.fit_seconds}
                )
                mlflow.set_tag("converged", str(fitted.converged))
        fits[kind] = fitted
        results.append(
            {
                "approach": kind,
                "group": "baseline",
                "seed": config["seed"],
                "preset": "features",
                "optimizer": settings.get("solver", "lbfgs"),
                "val_accuracy": val_accuracy,
                "train_seconds": fitted.fit_seconds,
                "trainable_parameters": fitted.trainable_parameters,
                "converged": fitted.converged,
                "mlflow_run_id": run_id,
            }
        )
        logger.info(
            "[%s.%s] val accuracy %.4f (fit %.2f s%s)",
            STUDY,
            kind,
            val_accuracy,
            fitted.fit_seconds,
            "" if fitted.converged else ", did not converge",
        )
    return fits, results


# --- fine-tuning ----------------------------------------------------------------------


def _finetune(
    source_state: dict[str, torch.Tensor],
    data: SplitData,
    config: dict[str, Any],
    *,
    group: str,
    name: str,
    preset: str,
    optimizer: str,
    lr: float,
    batch_size: int,
    dropout: float,
    extra_callbacks: Sequence[Callback] = (),
    checkpointed: bool = True,
) -> tuple[dict[str, Any], nn.Module]:
    """One fine-tuning run in its own nested MLflow run, with early stopping on
    validation accuracy and the best epoch's weights restored. ``checkpointed``: saved
    each epoch and resumed after a kill (search trials are not: Optuna reruns them)."""
    _threads(config)
    ft, stop = config["finetune"], config["early_stopping"]
    multiplier = ft["backbone_lr_multiplier"]
    recipe = _recipe(config, ft, optimizer=optimizer, lr=lr, batch_size=batch_size)

    def build() -> nn.Module:
        return build_target_model(config, preset, dropout, source_state)

    trainable = count_parameters(build(), trainable_only=True)
    stopper = EarlyStopping("val_accuracy", stop["patience"], stop["min_delta"], "max")
    run_params = {
        "study": STUDY,
        "group": group,
        "preset": preset,
        "optimizer": optimizer,
        "lr": lr,
        "backbone_lr": lr * multiplier,
        "batch_size": batch_size,
        "dropout": dropout,
        "epochs": ft["epochs"],
        "patience": stop["patience"],
        "min_delta": stop["min_delta"],
        "trainable_parameters": trainable,
        "seed": config["seed"],
    }
    tags = {"study": STUDY, "variant": name, "group": group}
    splits = (data.train.images, data.train.labels, data.val.images, data.val.labels)
    key = (run_params, recipe, fingerprint(*splits, source_state))
    store = checkpoint_store(STUDY, f"{group}.{name}", config, *key) if checkpointed else None
    with variant_run(store, name, run_params, tags) as run:
        trained = train_model(
            build,
            data,
            recipe,
            label=f"{STUDY}.{group}.{name}",
            extra_callbacks=[*run.callbacks, stopper, *extra_callbacks],
            parameter_groups=lambda m: head_parameter_groups(
                m, lr=lr, backbone_lr_multiplier=multiplier
            ),
            checkpoint=store,
            threads=config["threads"],
        )
        history = trained.history
        table = pd.DataFrame(history.epochs).assign(epoch=range(1, len(history.epochs) + 1))
        result = {
            "approach": name,
            "group": group,
            "seed": config["seed"],
            "preset": preset,
            "optimizer": optimizer,
            "lr": lr,
            "backbone_lr": lr * multiplier,
            "batch_size": batch_size,
            "dropout": dropout,
            "val_accuracy": stopper.best if stopper.best is not None else math.nan,
            "train_seconds": history.train_seconds,
            "trainable_parameters": trainable,
            "epochs_run": len(history.epochs),
            "best_epoch": stopper.best_epoch,
            "stopped_epoch": stopper.stopped_epoch,
            "status": "diverged" if history.diverged else "ok",
            "diverged_epoch": history.diverged_epoch,
            "precision": trained.performance.get("perf_precision"),
            "mlflow_run_id": run.run_id,
            "history": table.to_dict(orient="records"),
        }
        if run.logging:
            import mlflow

            mlflow.log_params(trained.performance)
            log_status(result)
            mlflow.log_metrics(
                {
                    "best_val_accuracy": result["val_accuracy"],
                    "best_epoch": stopper.best_epoch,
                    "train_seconds": history.train_seconds,
                }
            )
            if stopper.stopped_epoch is not None:
                mlflow.log_metric("stopped_epoch", stopper.stopped_epoch)
    logger.info(
        "[%s.%s.%s] val accuracy %.4f (best epoch %d of %d, %.1f s)",
        STUDY,
        group,
        name,
        result["val_accuracy"],
        stopper.best_epoch,
        len(history.epochs),
        history.train_seconds,
    )
    return result, trained.model.cpu()


def train_preset(
    source_state: dict[str, torch.Tensor],
    data: SplitData,
    config: dict[str, Any],
    *,
    preset: str,
) -> tuple[dict[str, Any], nn.Module]:
    ft = config["finetune"]
    result, model = _finetune(
        source_state,
        data,
        config,
        group="finetune",
        name=preset,
        preset=preset,
        optimizer=ft["optimizer"],
        lr=ft["lr"],
        batch_size=ft["batch_size"],
        dropout=ft["dropout"],
    )
    return result, model


def train_optimizer(
    source_state: dict[str, torch.Tensor],
    data: SplitData,
    config: dict[str, Any],
    *,
    optimizer: str,
    lr: float,
) -> tuple[dict[str, Any], nn.Module]:
    ft = config["finetune"]
    result, model = _finetune(
        source_state,
        data,
        config,
        group="optimizers",
        name=optimizer_variant(optimizer, lr),
        preset=config["optimizers"]["preset"],
        optimizer=optimizer,
        lr=lr,
        batch_size=ft["batch_size"],
        dropout=ft["dropout"],
    )
    return result, model


# --- hyper-parameter search -----------------------------------------------------------


def _storage(url: str) -> str:
    """SQLite files are created where the URL says; their folder must exist first."""
    prefix = "sqlite:///"
    if url.startswith(prefix):
        Path(url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)
    return url


def best_untuned(
    results: Sequence[dict[str, Any]], space: SearchSpace, preset: str
) -> dict[str, Any] | None:
    """The untuned fine-tuning run (presets, optimizer runs) with the best validation
    accuracy among those the search can represent (its preset, a point of its space)."""
    fits = [
        r
        for r in results
        if r["preset"] == preset and math.isfinite(r["val_accuracy"]) and space.contains(r)
    ]
    return max(fits, key=lambda r: r["val_accuracy"], default=None)


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
    space = SearchSpace(
        lr=(s["lr"]["low"], s["lr"]["high"]),
        batch_sizes=tuple(s["batch_sizes"]),
        dropout=(s["dropout"]["low"], s["dropout"]["high"]),
        optimizers=tuple(s["optimizers"] or ()),
    )
    pruner = build_pruner(s["pruner"], startup_trials=s["pruner_startup_trials"])
    study = open_study(s["study_name"], _storage(s["storage"]), seed=config["seed"], pruner=pruner)
    start = best_untuned(untuned, space, s["preset"])
    if start is not None and s["n_trials"]:
        enqueue_untuned(study, space, start, start["approach"])
    params = {"study": STUDY, **{k: v for k, v in s.items() if k != "storage"}}
    with child_run("search", params, {"study": STUDY, "variant": "search"}):

        def train(trial: Any, sampled: dict[str, Any], pruning: PruningCallback) -> float:
            sampled = dict(sampled)
            optimizer = sampled.pop("optimizer", config["finetune"]["optimizer"])
            result, _ = _finetune(
                source_state,
                data,
                config,
                group="search",
                name=f"trial_{trial.number:03d}",
                preset=s["preset"],
                optimizer=optimizer,
                extra_callbacks=[pruning],
                checkpointed=False,
                **sampled,
            )
            trial.set_user_attr("mlflow_run_id", result["mlflow_run_id"])
            if pruning.pruned_epoch is not None and result["mlflow_run_id"] is not None:
                import mlflow

                mlflow.MlflowClient().set_tag(result["mlflow_run_id"], "status", "pruned")
            trial.set_user_attr("best_epoch", result["best_epoch"])
            return result["val_accuracy"]

        trials = run_search(study, space, train, n_trials=s["n_trials"])
        best = best_params(study)
        figures = search_figures(study)
        table = study.trials_dataframe()
        log_figures(figures, "figures")
        log_table(table, "tables/trials.csv")
    logger.info(
        "[%s.search] %d trial(s) here, %d in study %r; best trial %d: %s",
        STUDY,
        len(trials),
        len(study.trials),
        study.study_name,
        best["trial"],
        best,
    )
    return (table, best, *(figures[name] for name in SEARCH_FIGURES))


def train_tuned(
    source_state: dict[str, torch.Tensor],
    data: SplitData,
    config: dict[str, Any],
    best: dict[str, Any],
) -> tuple[dict[str, Any], nn.Module]:
    """The best configuration retrained, once per training seed (with the search's own
    seed a trial of this run repeats)."""
    result, model = _finetune(
        source_state,
        data,
        config,
        group="search",
        name="tuned",
        preset=config["search"]["preset"],
        optimizer=best.get("optimizer", config["finetune"]["optimizer"]),
        lr=best["lr"],
        batch_size=best["batch_size"],
        dropout=best["dropout"],
    )
    return result, model


# --- the one test evaluation and the report -------------------------------------------


def evaluate_on_test(
    test: LabelledImages,
    data: SplitData,
    source_state: dict[str, torch.Tensor],
    baselines: dict[str, BaselineFit],
    baseline_results: list[dict[str, Any]],
    config: dict[str, Any],
    *variants: Any,
) -> pd.DataFrame:
    """Score every approach once on the test set; ``variants`` alternate a fine-tuning
    result and its weights (every training seed's). Returns the table of every approach
    and seed, with each approach's mean and std across seeds beside it."""
    _threads(config)
    device = resolve_device(config["device"])
    rows = []
    extractor = build_source_model(config)
    extractor.load_state_dict(source_state)
    extractor = feature_extractor(extractor).to(device)
    size = config["baselines"]["feature_batch_size"]
    test_x, test_y = pooled_features(extractor, test, data.normalisation, batch_size=size)
    for result in baseline_results:
        accuracy = baselines[result["approach"]].accuracy(test_x, test_y)
        rows.append({**result, "test_accuracy": accuracy})

    batches = DeviceBatches(
        test.images,
        test.labels,
        batch_size=config["finetune"]["eval_batch_size"],
        device=device,
        normalisation=data.normalisation,
    )
    for result, state in zip(variants[::2], variants[1::2], strict=True):
        model = build_target_model(config, result["preset"], result["dropout"])
        model.load_state_dict(state)
        scores = evaluate(model.to(device), batches)
        rows.append(
            {k: v for k, v in result.items() if k != "history"}
            | {"test_accuracy": scores["accuracy"]}
        )
    table = with_seed_statistics(compare.approach_table(rows), TRANSFER_KEYS, TRANSFER_STATISTICS)
    _log_test_scores(table)
    log_table(table, "tables/summary.csv")
    return table


def _log_test_scores(table: pd.DataFrame) -> None:
    import mlflow

    if mlflow.active_run() is None:
        return
    client = mlflow.MlflowClient()
    for row in table.itertuples():
        if isinstance(row.mlflow_run_id, str):
            client.log_metric(row.mlflow_run_id, "test_accuracy", row.test_accuracy)
    means = table.drop_duplicates("approach")  # the parent run gets the mean over seeds
    mlflow.log_metrics(
        {f"{r.approach}.test_accuracy": r.test_accuracy_mean for r in means.itertuples()}
    )


def report(summary: pd.DataFrame, *results: dict[str, Any]) -> tuple[Any, ...]:
    """Per-epoch history of every fine-tuning run and the study's figures."""
    history = compare.history_table(results)
    figures = {
        "finetune_curves": compare.overlaid_curves(
            history[history["group"] == "finetune"], "fine-tuning presets"
        ),
        "optimizer_curves": compare.overlaid_curves(
            history[history["group"] == "optimizers"], "optimizers (same learning rates)"
        ),
        "accuracy_by_approach": compare.accuracy_by_approach(summary),
    }
    log_table(history, "tables/history.csv")
    log_figures(figures)
    return (history, *(figures[name] for name in STUDY_FIGURES))


# --- what people read: the dataset analyses' models and the report ------------------------


def source_analysis_model(
    config: dict[str, Any], source_state: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """The source network, whose penultimate (pooled) features the source task's dataset
    analysis maps beside the raw pixels: the features the baselines are fitted on."""
    model = build_source_model(config)
    model.load_state_dict(source_state)
    return {"model": model, "input_size": None, "label": "source network"}


def target_analysis_model(config: dict[str, Any], *variants: Any) -> dict[str, Any]:
    """The fine-tuning preset with the best validation accuracy (``variants`` alternate a
    preset's result and its weights), for the target task's dataset analysis; no model
    when none has a finite validation accuracy."""
    pairs = [
        (result, state)
        for result, state in zip(variants[::2], variants[1::2], strict=True)
        if math.isfinite(result["val_accuracy"])
    ]
    if not pairs:
        return {"model": None}
    result, state = max(pairs, key=lambda pair: pair[0]["val_accuracy"])
    model = build_target_model(config, result["preset"], result["dropout"])
    model.load_state_dict(state)
    return {"model": model, "input_size": None, "label": f"fine-tuned: {result['approach']}"}


def write_report(
    raw_params: dict[str, Any],
    config: dict[str, Any],
    source: DatasetBundle,
    source_split: dict[str, Any],
    target: DatasetBundle,
    target_split: dict[str, Any],
    summary: pd.DataFrame,
    source_result: dict[str, Any],
    trials: pd.DataFrame,
    source_analysis: dict[str, Any],
    target_analysis: dict[str, Any],
    *figures: str,
) -> tuple[str, str]:
    """The run's report (HTML and Markdown), also logged to MLflow: every approach on the
    test set, the best baseline against the best fine-tuning preset, the study's and the
    search's figures (``figures`` in the order of STUDY_FIGURES then SEARCH_FIGURES) and
    both tasks' dataset analyses."""
    sizes = {
        **reporting.split_sizes(source, source_split, "source "),
        **reporting.split_sizes(target, target_split, "target "),
    }
    source_table = pd.DataFrame([source_result])
    counts = (
        "seed",
        "batch_size",
        "trainable_parameters",
        "epochs_run",
        "best_epoch",
        "stopped_epoch",
    )
    across = across_seeds(summary, TRANSFER_KEYS, TRANSFER_STATISTICS)
    seeds = {"mean and std across seeds": across} if across["seeds"].max() > 1 else {}
    trial_columns = ["number", "state", "value", "duration"]
    trial_columns += [c for c in trials.columns if c.startswith(("params_", "user_attrs_"))]
    return reporting.write_report(
        STUDY,
        raw_params,
        dataset=f"{source.name} → {target.name}",
        split_sizes=sizes,
        device=str(resolve_device(config["device"])),
        precision=reporting.precision_that_ran(summary),
        tables={
            "every approach (test accuracy scored once, at the end)": reporting.with_integers(
                summary.drop(columns=statistic_columns(TRANSFER_STATISTICS)), counts
            ),
            **seeds,
            "source network": source_table,
            "hyper-parameter search trials (value: validation accuracy)": trials.reindex(
                columns=[c for c in trial_columns if c in trials]
            ),
        },
        figures=dict(zip((*STUDY_FIGURES, *SEARCH_FIGURES), figures, strict=True)),
        findings=transfer_findings(summary, source_result, trials),
        problems=transfer_problems(summary),
        sections=(source_analysis, target_analysis),
    )
