"""Findings of the depth study in numbers, computed from its summary and history tables.

The lab's conclusion ("residual connections rescue deep networks") is only worth writing
down with the accuracies and gradient norms that back it, and with the seed-to-seed
spread that says whether a gap is real.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pandas as pd

from cnn_lab.evaluation import findings as common

FIRST_LAYER = "grad_norm_00"
# Residual family -> the plain family it is the twin of.
RESIDUAL_TWINS = {"resmlp": "mlp", "rescnn": "cnn", "cifar_resnet": "cifar_plain"}


def seed_statistics(summary: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Mean, standard deviation (NaN with one seed) and seed count per (group, family, depth)."""
    return common.seed_statistics(summary, ["group", "family", "depth"], metric)


def _first_layer_norm(history: pd.DataFrame, family: str, depth: int) -> float | None:
    """Mean over seeds of the first layer's gradient norm after the first epoch, where a
    vanishing gradient shows before the optimiser has had a chance to work around it."""
    if FIRST_LAYER not in history:
        return None
    rows = history[(history["family"] == family) & (history["depth"] == depth)]
    rows = rows[rows["epoch"] == rows["epoch"].min()][FIRST_LAYER].dropna()
    return float(rows.mean()) if len(rows) else None


def _compare(plain: pd.Series, residual: pd.Series) -> str:
    gap = residual["mean"] - plain["mean"]
    return (
        f"at depth {int(plain['depth'])}, {residual.name} minus {plain.name} "
        f"test accuracy is {gap:+.4f}" + common.spread_verdict(plain, residual)
    )


def depth_findings(summary: pd.DataFrame, history: pd.DataFrame) -> list[str]:
    """Sentences with this run's numbers: the deepest network of each family, plain vs
    residual at that depth, and the ratio of their first-layer gradient norms."""
    stats = seed_statistics(summary)
    findings = []
    for group, rows in stats.groupby("group", sort=False):
        deepest = int(rows["depth"].max())
        at_depth = rows[rows["depth"] == deepest].set_index("family")
        findings.append(
            f"{group} group, deepest networks (depth {deepest}): "
            + "; ".join(f"{family} {common.mean_text(s)}" for family, s in at_depth.iterrows())
        )
        for residual, plain in RESIDUAL_TWINS.items():
            if residual not in at_depth.index or plain not in at_depth.index:
                continue
            findings.append(
                f"{group} group: " + _compare(at_depth.loc[plain], at_depth.loc[residual])
            )
            plain_norm = _first_layer_norm(history, plain, deepest)
            residual_norm = _first_layer_norm(history, residual, deepest)
            if plain_norm and residual_norm is not None:
                findings.append(
                    f"{group} group, depth {deepest}: first-layer gradient norm after epoch 1 "
                    f"is {residual_norm:.3g} for {residual} and {plain_norm:.3g} for {plain}, "
                    f"a ratio of {residual_norm / plain_norm:.3g}"
                )
    return findings


def depth_problems(summary: pd.DataFrame) -> list[str]:
    """Variants that diverged, named with the epoch where they did."""
    return common.diverged(summary, "variant")


# --- the depth lab's own claims, checked against this run --------------------------------

CHANCE_FACTOR = 2  # "does not learn / train": test accuracy at most twice chance (0.20 of 10)
MLP_DEPTH = 32  # the depth of the lab's MLP claims
CNN_DEPTHS = (16, 56)  # "residual CNNs at 16-56 layers"
RESMLP_MNIST, RESMLP_TOLERANCE = 0.94, 0.01  # "reaches 94% on MNIST": at least 0.93
CNN8_CIFAR, CNN8_TOLERANCE = 0.7606, 0.02  # "76.06% on CIFAR-10": within 0.02
CNN_TWINS = {"cnn": "rescnn", "cifar_plain": "cifar_resnet"}  # plain -> residual


def _by_variant(summary: pd.DataFrame) -> pd.DataFrame:
    return common.seed_statistics(summary, ["family", "depth"], "test_accuracy").set_index(
        ["family", "depth"]
    )


def _variant(stats: pd.DataFrame, family: str, depth: int) -> pd.Series:
    return common.statistics_of(stats, (family, depth), f"{family} at depth {depth}")


@dataclass(frozen=True)
class _Ran:
    """Which data this run's claims are judged on: where chance lies and how it is said."""

    dataset: str
    classes: int

    @property
    def on(self) -> str:
        return f"on {self.dataset}"

    @property
    def ceiling(self) -> float:
        return CHANCE_FACTOR / self.classes

    @property
    def chance_words(self) -> str:
        return (
            f"chance 1/{self.classes} = {common.fmt(1.0 / self.classes)}; learning read as test "
            f"accuracy above {CHANCE_FACTOR}x chance ({common.fmt(self.ceiling)})"
        )


def _plain_mlp(ran: _Ran, summary: pd.DataFrame) -> tuple[str, str]:
    plain = _variant(_by_variant(summary), "mlp", MLP_DEPTH)
    measured = f"{ran.on}: mlp_d{MLP_DEPTH} {common.mean_text(plain)}; {ran.chance_words}"
    return measured, common.versus(plain, ran.ceiling, above=False)


def _residual_mlp(ran: _Ran, summary: pd.DataFrame) -> tuple[str, str]:
    stats = _by_variant(summary)
    residual = _variant(stats, "resmlp", MLP_DEPTH)
    if ran.dataset == "mnist":
        floor = RESMLP_MNIST - RESMLP_TOLERANCE
        return (
            f"{ran.on}: resmlp_d{MLP_DEPTH} {common.mean_text(residual)} (claim read as at "
            f"least {common.fmt(floor)}: 0.94 less a tolerance of {RESMLP_TOLERANCE})",
            common.versus(residual, floor),
        )
    plain = _variant(stats, "mlp", MLP_DEPTH)
    names = (f"resmlp_d{MLP_DEPTH}", f"mlp_d{MLP_DEPTH}")
    return (
        f"{ran.on}, not MNIST, so the 94% is not comparable; judged relatively (the residual "
        f"MLP learns where the plain one does not): {common.gap_text(residual, plain, names)}"
        f"; {ran.chance_words}",
        common.worst(common.beats(residual, plain), common.versus(residual, ran.ceiling)),
    )


def _batchnorm_mlp(ran: _Ran, summary: pd.DataFrame) -> tuple[str, str]:
    stats = _by_variant(summary)
    bn, plain = _variant(stats, "mlp_bn", MLP_DEPTH), _variant(stats, "mlp", MLP_DEPTH)
    names = (f"mlp_bn_d{MLP_DEPTH}", f"mlp_d{MLP_DEPTH}")
    return f"{ran.on}: {common.gap_text(bn, plain, names)}", common.beats(bn, plain)


def _best_plain_cnn(ran: _Ran, summary: pd.DataFrame) -> tuple[str, str]:
    stats = _by_variant(summary)
    eight = _variant(stats, "cnn", 8)
    others = stats.loc["cnn"].drop(index=8) if "cnn" in stats.index else stats.iloc[:0]
    if not len(others):
        raise common.NotMeasured("no other depth of the plain cnn family ran beside 8")
    runner_up = others.sort_values("mean", ascending=False).iloc[0]
    names = ("cnn_d8", f"the best other depth, cnn_d{int(runner_up.name)}")
    measured = f"{ran.on}: {common.gap_text(eight, runner_up, names)}"
    verdict = common.beats(eight, runner_up)
    if ran.dataset == "cifar10":
        measured += f"; the lab's 0.7606 checked within {CNN8_TOLERANCE}"
        verdict = common.worst(verdict, common.near(eight, CNN8_CIFAR, CNN8_TOLERANCE))
    else:
        measured += " (not CIFAR-10: the 76.06% is not comparable; the ranking is judged)"
    return measured, verdict


def _residual_cnns(ran: _Ran, summary: pd.DataFrame) -> tuple[str, str]:
    stats = _by_variant(summary)
    texts, verdicts = [], []
    for plain_family, residual_family in CNN_TWINS.items():
        for family, depth in stats.index:
            if family != plain_family or not CNN_DEPTHS[0] <= depth <= CNN_DEPTHS[1]:
                continue
            if (residual_family, depth) not in stats.index:
                continue
            plain, residual = stats.loc[(family, depth)], stats.loc[(residual_family, depth)]
            names = (f"{residual_family}_d{depth}", f"{family}_d{depth}")
            texts.append(common.gap_text(residual, plain, names))
            verdicts += [
                common.beats(residual, plain),
                common.versus(residual, ran.ceiling),
                common.versus(plain, ran.ceiling, above=False),
            ]
    if not texts:
        raise common.NotMeasured(
            f"no plain and residual CNN twins at depths {CNN_DEPTHS[0]}-{CNN_DEPTHS[1]} "
            "in this run's grid"
        )
    return f"{ran.on}: " + "; ".join(texts) + f"; {ran.chance_words}", common.worst(*verdicts)


def depth_claims(dataset: str, classes: int) -> list[common.Claim]:
    """The depth lab's claims, judged on this run's summary (``dataset`` and its number of
    ``classes`` say which data ran and where chance lies). Numbers the lab measured on
    MNIST or CIFAR-10 are checked only when that dataset ran; elsewhere the claim's
    relative part is judged and the text says which dataset ran."""
    ran = _Ran(dataset, classes)
    lab_mlp, lab_cnn = "depth lab, MLP half (MNIST)", "depth lab, CNN half (CIFAR-10)"
    return [
        common.Claim(
            "the plain 32-layer MLP does not learn (accuracy ~ chance)",
            f"{lab_mlp}: the plain 32-layer MLP stays at chance",
            partial(_plain_mlp, ran),
        ),
        common.Claim(
            "the residual MLP at depth 32 reaches 94% on MNIST",
            f"{lab_mlp}: 94% test accuracy",
            partial(_residual_mlp, ran),
        ),
        common.Claim(
            "BatchNorm stabilises the deep MLP",
            f"{lab_mlp}: the 32-layer MLP with BatchNorm learns where the plain one does not",
            partial(_batchnorm_mlp, ran),
        ),
        common.Claim(
            "the 8-layer CNN is the best plain CNN",
            f"{lab_cnn}: 76.06% test accuracy at 8 layers, the best plain depth",
            partial(_best_plain_cnn, ran),
        ),
        common.Claim(
            "residual CNNs at 16-56 layers train where plain ones do not",
            f"{lab_cnn}: at 16-56 layers the residual CNNs train, their plain twins do not",
            partial(_residual_cnns, ran),
        ),
    ]
