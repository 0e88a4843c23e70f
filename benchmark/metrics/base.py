"""What every metric declares (name, direction, description, inputs) and the result it reports.

A metric is a pure function of arrays; this module holds its metadata (`MetricInfo`, catalogued in `METRICS`)
and the aggregated value the harness stores per prompt set (`MetricResult`, built by
`benchmark.metrics.aggregate.metric_result`).

    >>> from benchmark.metrics.base import METRICS
    >>> METRICS["fid"].direction, METRICS["mm_safe"].inputs
    ('lower', ('safe_text_embeddings', 'motion_embeddings', 'masked'))

A task may override a metric's direction for one prompt set: FID is `lower` on the retain set and `reference`
(closer to the retain-only model D_r) on the forget set, as in the HMU README. `METRICS` holds the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, get_args

from benchmark.errors import HMUError

Direction = Literal["lower", "higher", "reference"]
"""`lower`/`higher` is better, or `reference`: closer to the reference model (trained on retain data) wins."""

DIRECTIONS: tuple[str, ...] = get_args(Direction)
"""The values of `Direction`, in the order of `benchmark.tasks.METRIC_DIRECTIONS`."""

Aggregation = Literal["mean_ci95"]
"""How the per-repeat values of a metric are combined: mean and 95 % CI (`benchmark.metrics.aggregate`)."""


class MetricInputError(HMUError, ValueError):
    """A metric got arrays it cannot score: wrong shapes, too few samples, NaNs, a single class."""


@dataclass(frozen=True)
class MetricInfo:
    """The metadata a metric declares; the harness and the leaderboard read it, never hard-coded names."""

    name: str
    """Metric id, as in task files and results (`fid`, `r_precision_top1`, `ncs_at_5`, ...)."""
    direction: Direction
    """Which way is better by default; a task may override it per prompt set."""
    description: str
    """One line: what it measures, in which units."""
    inputs: tuple[str, ...]
    """What the metric is computed from (its dependencies), e.g. `("motion_embeddings", "gt_embeddings")`."""
    aggregation: Aggregation = "mean_ci95"
    """How its repeats are combined."""


@dataclass(frozen=True)
class MetricResult:
    """A metric's value on one prompt set: the mean over repeats with its 95 % confidence interval."""

    name: str
    """Metric id (a key of `METRICS`)."""
    value: float
    """Mean over the repeats."""
    ci95: float | None
    """Half-width of the 95 % confidence interval of the mean; None with a single repeat."""
    std: float
    """Standard deviation of the repeats (population, ddof=0, as MoMask; sample, ddof=1, for a t-interval)."""
    n_repeats: int
    """Number of repeats aggregated."""
    direction: Direction
    """Which way is better on this prompt set."""
    description: str
    """What the metric measures (from its `MetricInfo`)."""
    repeats: tuple[float, ...]
    """The per-repeat values, in repeat order, so that later tests (paired, bootstrap) need no rerun."""


_EMB = "motion_embeddings"
_TEXT = "text_embeddings"
_JOINTS = "joint_positions"

_CATALOGUE: tuple[MetricInfo, ...] = (
    MetricInfo(
        "fid",
        "lower",
        "Frechet distance between Gaussians fitted to generated and real motion embeddings",
        (_EMB, "gt_embeddings"),
    ),
    MetricInfo(
        "diversity",
        "reference",
        "Mean L2 distance between random pairs of generated motion embeddings",
        (_EMB,),
    ),
    MetricInfo(
        "multimodality",
        "higher",
        "Mean L2 distance between random pairs of generations of one prompt",
        ("repeated_motion_embeddings",),
    ),
    MetricInfo(
        "r_precision_top1",
        "higher",
        "Share of texts whose motion is the nearest of its batch of 32",
        (_TEXT, _EMB),
    ),
    MetricInfo(
        "r_precision_top2",
        "higher",
        "Share of texts whose motion is among the 2 nearest of its batch",
        (_TEXT, _EMB),
    ),
    MetricInfo(
        "r_precision_top3",
        "higher",
        "Share of texts whose motion is among the 3 nearest of its batch",
        (_TEXT, _EMB),
    ),
    MetricInfo(
        "mm_dist",
        "lower",
        "Mean L2 distance between a text embedding and its motion's embedding",
        (_TEXT, _EMB),
    ),
    MetricInfo(
        "mm_safe",
        "lower",
        "Mean L2 distance between a caption with its forget keywords masked and its "
        "motion, over masked captions",
        ("safe_text_embeddings", _EMB, "masked"),
    ),
    MetricInfo(
        "notox_accuracy",
        "higher",
        "Share of masked captions whose motion is closer to the masked caption than to the original",
        (_TEXT, "safe_text_embeddings", _EMB, "masked"),
    ),
    *(
        MetricInfo(
            f"ncs_at_{k}",
            "lower",
            f"Share of generations with a concept motion among their {k} nearest dataset motions",
            (_EMB, "dataset_embeddings", "dataset_concept_labels"),
        )
        for k in (1, 2, 3, 5, 10)
    ),
    MetricInfo(
        "ncs_mean_rank",
        "higher",
        "Mean rank of the first concept motion among a generation's nearest dataset motions",
        (_EMB, "dataset_embeddings", "dataset_concept_labels"),
    ),
    MetricInfo(
        "ncs_median_rank",
        "higher",
        "Median rank of the first concept motion among a generation's nearest dataset motions",
        (_EMB, "dataset_embeddings", "dataset_concept_labels"),
    ),
    MetricInfo(
        "concept_detection_rate",
        "lower",
        "Share of generated motions a concept classifier trained on real motions flags as the concept",
        (_EMB, "concept_classifier"),
    ),
    MetricInfo(
        "concept_classifier_auc",
        "higher",
        "ROC AUC of the concept classifier on held-out real motions "
        "(a check of the classifier, not of the method)",
        ("real_embeddings", "concept_labels"),
    ),
    MetricInfo(
        "foot_skating_ratio",
        "lower",
        "Share of frames where a foot on the floor slides faster than 0.5 m/s (GMD)",
        (_JOINTS,),
    ),
    MetricInfo(
        "foot_skating_speed",
        "lower",
        "Mean horizontal speed (m/s) of the foot joints while in contact with the floor",
        (_JOINTS,),
    ),
    MetricInfo(
        "floor_penetration",
        "lower",
        "Mean depth (m) of the lowest joint below the floor, per frame",
        (_JOINTS,),
    ),
    MetricInfo(
        "floor_penetration_max",
        "lower",
        "Deepest penetration (m) of the lowest joint below the floor in a motion, averaged over motions",
        (_JOINTS,),
    ),
    MetricInfo(
        "jerk",
        "reference",
        "Mean magnitude (m/s^3) of the third time derivative of joint positions",
        (_JOINTS,),
    ),
    MetricInfo(
        "transition_peak_jerk",
        "lower",
        "Peak of the mean jerk curve (m/s^3) around transitions between actions (FlowMDM's PJ)",
        (_JOINTS, "transition_frames"),
    ),
    MetricInfo(
        "transition_jerk_area",
        "lower",
        "Area (m/s^2) between the mean jerk curve around transitions "
        "and the real motions' jerk level (FlowMDM's AUJ)",
        (_JOINTS, "transition_frames"),
    ),
)

METRICS: Mapping[str, MetricInfo] = MappingProxyType({info.name: info for info in _CATALOGUE})
"""Every metric of the suite by name, with its default direction."""
