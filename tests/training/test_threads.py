"""``threads: auto``: the decision on given loads, cores and timings (never this CPU's
speed), the cache file, and the errors a bad value gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from cnn_lab.study.params import ParameterError, validate_parameters
from cnn_lab.training import threads as threads_module
from cnn_lab.training.threads import (
    AUTO,
    MIN_SPEEDUP,
    cached_timings,
    check_threads,
    choose_threads,
    read_cache,
    threads_that_pay,
    use_threads,
    write_timings,
)

CNN = {1: 0.010, 2: 0.0055}  # a second thread: 1.8x faster
MLP = {1: 0.0010, 2: 0.0009}  # 1.1x: does not pay


@pytest.mark.parametrize(
    ("load", "running", "own", "timings", "expected"),
    [
        (0.3, 0, 1, CNN, 2),  # quiet machine, a model that splits well: both cores
        (0.3, 0, 1, MLP, 1),  # quiet machine, a small MLP: a second thread does not pay
        (0.3, 0, 1, None, 2),  # no probe (a GPU run): the free cores
        (1.2, 0, 1, CNN, 2),  # only this process's own thread in the load
        (2.2, 0, 1, CNN, 1),  # one other busy core out of two: one thread
        (2.1, 0, 2, CNN, 2),  # the load is this process's own two threads
        (0.2, 1, 1, CNN, 1),  # a job started seconds ago: running now, not in the average yet
        (15.0, 14, 1, CNN, 1),  # heavy contention
        (15.0, 14, 1, None, 1),
    ],
)
def test_auto_on_two_cores(load, running, own, timings, expected) -> None:
    choice = choose_threads(
        AUTO, cpus=2, load=load, own_threads=own, running=running, default=2, timings=timings
    )
    assert choice.threads == expected
    assert choice.requested == AUTO
    assert choice.reason


def test_auto_never_exceeds_free_cores_or_the_doublings_that_paid() -> None:
    timings = {1: 8.0, 2: 4.2, 4: 2.4, 8: 2.2}  # 1.9x, 1.75x, then 1.09x
    assert threads_that_pay(timings) == 4
    quiet = choose_threads(AUTO, cpus=16, load=0.5, default=16, timings=timings)
    assert quiet.threads == 4
    busy = choose_threads(AUTO, cpus=16, load=14.0, default=16, timings=timings)
    assert busy.threads == 3  # 16 - 13 others = 3 free cores (4 would have paid)
    assert choose_threads(AUTO, cpus=16, load=14.6, default=16, timings=timings).threads == 2
    assert choose_threads(AUTO, cpus=16, load=0.5, default=16, timings=None).threads == 16
    assert choose_threads(AUTO, cpus=16, load=0.5, default=6, timings=None).threads == 6


def test_speedup_threshold_is_inclusive_and_needs_both_timings() -> None:
    assert threads_that_pay({1: MIN_SPEEDUP, 2: 1.0}) == 2
    assert threads_that_pay({1: MIN_SPEEDUP * 0.99, 2: 1.0}) == 1
    assert threads_that_pay({1: 1.0}) == 1
    assert threads_that_pay({}) == 1


def test_explicit_settings_are_kept_whatever_the_load() -> None:
    assert choose_threads(3, cpus=2, load=30.0, default=2).threads == 3
    zero = choose_threads(0, cpus=2, load=30.0, default=2)
    assert (zero.threads, zero.reason) == (2, "torch default")
    assert choose_threads("4", cpus=8, load=0.0).threads == 4


@pytest.mark.parametrize("bad", ["many", -1, 1.5, True, None, "2.0", ""])
def test_bad_value_names_the_key_and_what_is_allowed(bad) -> None:
    with pytest.raises(ValueError, match=r"threads: got .*use auto, 0 .* or a number"):
        choose_threads(bad, cpus=2, load=0.0)


def test_study_schema_rejects_a_bad_value_with_its_key() -> None:
    from cnn_lab.pipelines.cnn_depth.schema import CnnDepthParams

    groups = {"mlp": {"families": ["mlp"], "depths": [2]}}
    with pytest.raises(ParameterError) as error:
        validate_parameters(CnnDepthParams, {"groups": groups, "threads": "lots"}, "cnn_depth")
    message = str(error.value)
    assert "cnn_depth.threads: got 'lots'" in message
    assert "use auto, 0" in message
    assert validate_parameters(CnnDepthParams, {"groups": groups}, "cnn_depth").threads == AUTO
    parsed = validate_parameters(CnnDepthParams, {"groups": groups, "threads": "2"}, "cnn_depth")
    assert parsed.threads == 2


def test_check_threads_normalises() -> None:
    assert check_threads("AUTO") == AUTO
    assert check_threads(" 3 ") == 3
    assert check_threads(0) == 0


def test_cache_file_content_and_merge(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "threads.json"
    assert read_cache(path) == {}
    write_timings(path, "cpu A | dense 2^14", {2: 0.002, 1: 0.001}, load=0.42)
    write_timings(path, "cpu A | dense 2^14", {4: 0.003}, load=0.5)
    write_timings(path, "cpu A | conv 2^16", {1: 0.01}, load=0.1)
    data = json.loads(path.read_text())
    assert data["version"] == 1
    entry = data["entries"]["cpu A | dense 2^14"]
    assert entry["seconds_per_step"] == {"1": 0.001, "2": 0.002, "4": 0.003}
    assert entry["load_when_measured"] == 0.5
    assert "measured" in entry
    assert cached_timings(path, "cpu A | conv 2^16") == {1: 0.01}
    assert cached_timings(path, "missing") == {}
    assert [p.name for p in path.parent.iterdir()] == ["threads.json"]  # no temp files left


def test_unreadable_or_old_cache_counts_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "threads.json"
    path.write_text("{not json")
    assert read_cache(path) == {}
    path.write_text(json.dumps({"version": 0, "entries": {"k": {}}}))
    assert read_cache(path) == {}


def _quiet_machine(monkeypatch: pytest.MonkeyPatch, load: float = 0.0, cpus: int = 2) -> None:
    monkeypatch.setattr(threads_module, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(threads_module, "load_average", lambda: load)
    monkeypatch.setattr(threads_module, "running_now", lambda: 0.0)
    monkeypatch.setattr(threads_module, "torch_default_threads", lambda: cpus)
    monkeypatch.setattr(threads_module, "_last_threads", None)


def test_use_threads_probes_once_per_model_class_then_reads_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _quiet_machine(monkeypatch)
    probes = []

    def fake_probe(model, in_shape, batch_size, counts):
        probes.append((in_shape, batch_size, counts))
        return {1: 0.004, 2: 0.002}  # a second thread pays: 2x

    monkeypatch.setattr(threads_module, "probe_step_seconds", fake_probe)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    cache = tmp_path / "threads.json"
    before = torch.get_num_threads()
    try:
        first = use_threads(AUTO, model, in_shape=(1, 8, 8), batch_size=64, cache=cache)
        second = use_threads(AUTO, model, in_shape=(1, 8, 8), batch_size=64, cache=cache)
        assert first.threads == second.threads == 2 == torch.get_num_threads()
        assert probes == [((1, 8, 8), 64, [1, 2])]  # measured once, then cached
        (key,) = read_cache(cache)
        assert "dense 2^9 params, input 1x8x8, batch 64" in key
        assert first.as_params()["perf_threads_requested"] == AUTO
        assert "step 1: 4.00 ms, 2: 2.00 ms" in first.as_params()["perf_threads_reason"]
    finally:
        torch.set_num_threads(before)


def test_use_threads_does_not_probe_a_busy_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _quiet_machine(monkeypatch, load=6.0)
    monkeypatch.setattr(threads_module, "probe_step_seconds", pytest.fail)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    before = torch.get_num_threads()
    try:
        choice = use_threads(
            AUTO, model, in_shape=(1, 8, 8), batch_size=64, cache=tmp_path / "t.json"
        )
        assert choice.threads == 1 == torch.get_num_threads()
        assert "busy machine" in choice.reason
        assert not (tmp_path / "t.json").exists()
    finally:
        torch.set_num_threads(before)


def test_probe_leaves_model_threads_and_random_state_alone() -> None:
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.Dropout(0.5), nn.Linear(32, 10)
    )
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    before = torch.get_num_threads()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    timings = threads_module.probe_step_seconds(model, (1, 8, 8), 16, [1, 2])
    assert torch.equal(torch.rand(3), expected)
    assert set(timings) == {1, 2} and all(t > 0 for t in timings.values())
    assert torch.get_num_threads() == before
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_train_model_applies_auto_and_reports_the_choice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy machine: 1 thread, logged with the request and the reason beside the count;
    the trained result equals a run with an explicit 1 (the probe never touches it)."""
    from cnn_lab.data.sources import load_digits_images
    from cnn_lab.data.splits import stratified_split
    from cnn_lab.models import build_model
    from cnn_lab.training.recipe import Recipe, SplitData, train_model

    _quiet_machine(monkeypatch, load=9.0)
    bundle = load_digits_images()
    split = stratified_split(bundle.train.labels, val_ratio=0.2, test_ratio=0.2, seed=0)
    data = SplitData.from_bundle(bundle, split)
    recipe = Recipe(epochs=1, batch_size=64, lr=1e-3, seed=0, device="cpu")

    def run(threads):
        return train_model(
            lambda: build_model("mlp", in_shape=(1, 8, 8), num_classes=10, depth=2, width=16),
            data,
            recipe,
            label="test",
            threads=threads,
        )

    before = torch.get_num_threads()
    try:
        auto, fixed = run(AUTO), run(1)
    finally:
        torch.set_num_threads(before)
    assert auto.performance["perf_threads"] == 1
    assert auto.performance["perf_threads_requested"] == AUTO
    assert "busy machine (load 9.0" in auto.performance["perf_threads_reason"]
    assert fixed.performance["perf_threads_requested"] == 1
    assert auto.test == fixed.test
