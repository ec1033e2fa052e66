"""Data-parallel training under torchrun: 2 CPU processes (gloo) against one process.

One torchrun launch (tests/training/ddp_script.py) serves every test here; the single-process
references run in the test process itself, from the same functions.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from cnn_lab.training import distributed
from tests.training import ddp_script

SCRIPT = Path(ddp_script.__file__)
# Two processes add their shares' gradients in another order than one process adds the
# whole batch's: float32 rounding, nothing more, but how much depends on the CPU's kernels
# (AVX2 and AVX-512 sum in different blocks). Bounds that hold on any x86-64 CPU: losses
# and accuracies within 1e-6 relative; weights and logits, which carry the rounding of 15
# Adam steps, within 1e-5 relative + 1e-6 absolute; gradient-norm probes within 1e-4
# relative (a norm over a whole layer sums thousands of rounded terms: 7.5e-5 seen on an
# AVX2-only CPU). A missing gradient all-reduce moves every one of them by far more
# (test_a_missing_gradient_all_reduce_is_caught).
RTOL, ATOL = 1e-6, 1e-9
TENSOR = {"rtol": 1e-5, "atol": 1e-6}
GRAD_NORM_RTOL = 1e-4


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ddp")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*launch, str(SCRIPT), str(out)], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for rank, result in enumerate(results):
        result["checkpoint_files"] = sorted(
            p.name for p in (out / "checkpoints" / f"rank{rank}").glob("*")
        )
    return results


def assert_rows_close(got: list[dict[str, float]], want: list[dict[str, float]]) -> None:
    assert len(got) == len(want)
    for row, expected in zip(got, want, strict=True):
        assert row.keys() == expected.keys()
        for key, value in expected.items():
            rel = GRAD_NORM_RTOL if key.startswith("grad_norm_") else RTOL
            assert row[key] == pytest.approx(value, rel=rel, abs=ATOL), key


def assert_weights_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, **TENSOR, msg=key)


def test_single_process_is_not_distributed() -> None:
    assert not distributed.is_distributed()
    assert distributed.is_main_process()
    assert distributed.shard_bounds(5) == (0, 5)


def _as_rank(monkeypatch: pytest.MonkeyPatch, rank: int, world: int) -> None:
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))


@pytest.mark.parametrize("world", [2, 3, 4])
def test_shares_of_a_batch_cover_it_in_rank_order(
    monkeypatch: pytest.MonkeyPatch, world: int
) -> None:
    for size in (1, 5, 16, 17):
        bounds = []
        for rank in range(world):
            _as_rank(monkeypatch, rank, world)
            bounds.append(distributed.shard_bounds(size))
        assert bounds[0][0] == 0 and bounds[-1][1] == size
        assert all(bounds[r][1] == bounds[r + 1][0] for r in range(world - 1))
        assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1


def test_batch_sizes_that_cannot_be_split_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _as_rank(monkeypatch, 0, 4)
    images, labels = ddp_script.tiny_images(12, 0)
    norm = ddp_script.Normalisation((0.3,), (0.2,))
    with pytest.raises(ValueError, match="batch_size 2 is smaller than the 4 processes"):
        ddp_script.DeviceBatches(
            images, labels, batch_size=2, device=ddp_script.CPU, normalisation=norm, shard=True
        )
    dataset = ddp_script.RecordingImages(12, 0)
    with pytest.raises(ValueError, match="batch_size 6 does not split evenly over 4 processes"):
        ddp_script.loader_batches(dataset, 6, shuffle=True)
    with pytest.raises(ValueError, match="batch_size 3 is smaller than the 4 processes"):
        ddp_script.loader_batches(dataset, 3, shuffle=False)


@pytest.mark.parametrize("case", ["cnn", "mlp"])
def test_two_processes_match_one_with_the_same_global_batch(
    ranks: list[dict[str, Any]], case: str
) -> None:
    """Losses, validation metrics, gradient-norm probes, final weights, test scores and
    gathered predictions of a 2-process run equal one process's, on every rank; the last
    batch of each epoch splits unevenly (2 + 3 samples)."""
    torch.set_num_threads(1)
    single = ddp_script.engine_run(case, augment=case == "cnn")
    assert [r["world_size"] for r in ranks] == [2, 2]
    for result in ranks:
        got = result[case]
        assert got["steps"] == single["steps"] == 15  # 5 global batches x 3 epochs
        assert any(k.startswith("grad_norm_") for k in got["history"][0])
        assert_rows_close(got["history"], single["history"])
        assert_weights_close(got["weights"], single["weights"])
        assert got["test"] == pytest.approx(single["test"], rel=RTOL, abs=ATOL)
        torch.testing.assert_close(got["logits"], single["logits"], **TENSOR)
        assert torch.equal(got["targets"], single["targets"])
    # Every rank holds the very same history (rank 0's timings included).
    assert ranks[0][case]["history"] == ranks[1][case]["history"]


def test_a_missing_gradient_all_reduce_is_caught(ranks: list[dict[str, Any]]) -> None:
    """The same CNN run with DDP's gradient all-reduce dropped fails every comparison the
    equivalence test makes: the tolerances above cannot hide a real mismatch."""
    torch.set_num_threads(1)
    single = ddp_script.engine_run("cnn", augment=True)
    for result in ranks:
        got = result["cnn_unsynced"]
        with pytest.raises(AssertionError):
            assert_weights_close(got["weights"], single["weights"])
        with pytest.raises(AssertionError):
            assert_rows_close(got["history"], single["history"])
        probes = [k for k in single["history"][-1] if k.startswith("grad_norm_")]
        worst = max(abs(got["history"][-1][k] / single["history"][-1][k] - 1) for k in probes)
        assert worst > 100 * GRAD_NORM_RTOL


def test_only_rank_zero_writes_checkpoints_and_every_rank_resumes_from_them(
    ranks: list[dict[str, Any]],
) -> None:
    # finished: no fallback kept (the lock file beside it is how two runs take turns)
    assert ranks[0]["checkpoint_files"] == ["tiny-key.ckpt", "tiny-key.lock"]
    assert ranks[1]["checkpoint_files"] == []  # rank 1's own folder was never created
    for result in ranks:
        recipe = result["recipe"]
        assert len(recipe["history"]) == 2
        # The second call reused rank 0's finished checkpoint on both ranks.
        assert recipe["again_history"] == recipe["history"]
    assert ranks[0]["recipe"] == ranks[1]["recipe"]


def test_loader_batches_use_a_distributed_sampler_reshuffled_every_epoch(
    ranks: list[dict[str, Any]],
) -> None:
    """32 samples, global batch 8: each rank reads batches of 4, the two ranks together
    read every sample once per epoch, and the order changes between epochs."""
    rows = [r["loader"]["train_rows"] for r in ranks]
    for epoch in range(2):
        assert sorted(rows[0][epoch] + rows[1][epoch]) == list(range(32))
    assert rows[0][0] != rows[0][1]
    for result in ranks:
        assert set(result["loader"]["batch_sizes"][:8]) == {4}


def test_loader_evaluation_and_prediction_cover_every_sample_once(
    ranks: list[dict[str, Any]],
) -> None:
    """Unshuffled loader batches are split without padding: validation metrics and gathered
    predictions of the trained weights equal one process scoring the whole split."""
    from cnn_lab.training.scoring import evaluate, predict

    model = ddp_script.loader_model()
    model.load_state_dict(ranks[0]["loader"]["weights"])
    val = ddp_script.RecordingImages(ddp_script.VAL, 1)
    scores = evaluate(model, ddp_script.loader_batches(val, 8, shuffle=False))
    logits, targets = predict(model, ddp_script.loader_batches(val, 8, shuffle=False))
    for result in ranks:
        got = result["loader"]
        last = got["history"][-1]
        assert last["val_loss"] == pytest.approx(scores["loss"], rel=RTOL, abs=ATOL)
        assert last["val_accuracy"] == scores["accuracy"]
        assert torch.equal(got["targets"], targets)
        torch.testing.assert_close(got["logits"], logits, **TENSOR)
    assert_weights_close(ranks[1]["loader"]["weights"], ranks[0]["loader"]["weights"])
