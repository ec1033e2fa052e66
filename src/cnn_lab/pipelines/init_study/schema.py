"""The declared shape of ``params:init_study``; anything else is an error before training.

The networks and the three schemes are the study itself (fixed in code); the data, the
training recipe and the seed are the knobs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cnn_lab.study.params import StrictModel
from cnn_lab.study.training_params import IterationTrainingParams, StudyRunParams


class InitDataParams(StrictModel):
    """Grey images only: NetA1/NetA2 take one input channel."""

    source: Literal["digits", "mnist"] = "digits"
    root: str = "data/01_raw"
    download: bool = False
    val_ratio: float = Field(0.2, gt=0, lt=1)
    test_ratio: float = Field(0.2, gt=0, lt=1)  # digits only: it has no official test split
    # NetA2 needs at least 9x9 inputs (5x5 then 3x3 convolutions, both stride 2).
    image_size: int = Field(28, ge=9, description="square side every image is resized to")


class InitStudyParams(StudyRunParams):
    seed: int = Field(0, description="the data split's seed, and the training seed without seeds")
    probe_batch_size: int = Field(256, ge=1)
    data: InitDataParams = InitDataParams()
    training: IterationTrainingParams = IterationTrainingParams()
