"""The metric suite of HMU-Bench: pure functions from embeddings or joint positions to one number each.

Every metric declares its name, default direction (`lower`, `higher`, or `reference`: closer to the
retain-only reference model is better), description and inputs in `METRICS`; repeated values become a
`MetricResult` (mean, 95 % CI) through the one shared aggregation, `metric_result`.

    >>> import numpy as np
    >>> from benchmark.metrics import metric_result, r_precision
    >>> rng = np.random.default_rng(0)
    >>> values = []
    >>> for repeat in range(20):                         # the protocol's 20 repeats
    ...     text, motion = rng.normal(size=(256, 512)), rng.normal(size=(256, 512))
    ...     values.append(r_precision(text, motion, rng=rng)[1])
    >>> result = metric_result("r_precision_top1", values)
    >>> result.value, result.ci95, result.direction      # about 1/32, its CI, 'higher'

Modules: `distribution` (FID, Diversity, MultiModality), `matching` (R-precision, MM-Dist, MM-Safe, notox
accuracy, keyword masking), `retrieval` (NCS@k), `concept` (concept-detection classifier), `physics`
(foot skating, floor penetration, jerk, transition jerk), `aggregate` (mean and CI), `base` (metadata).
"""

from benchmark.metrics.aggregate import Aggregate, Interval, aggregate, metric_result
from benchmark.metrics.base import (
    DIRECTIONS,
    METRICS,
    Direction,
    MetricInfo,
    MetricInputError,
    MetricResult,
)
from benchmark.metrics.concept import (
    ConceptClassifier,
    concept_detection_rate,
    fit_concept_classifier,
    roc_auc,
)
from benchmark.metrics.distribution import (
    diversity,
    fid,
    frechet_distance,
    gaussian_statistics,
    multimodality,
)
from benchmark.metrics.matching import (
    MaskNormalisation,
    mask_caption,
    mask_keywords,
    matching_ranks,
    mm_dist,
    mm_safe,
    notox_accuracy,
    r_precision,
)
from benchmark.metrics.physics import (
    floor_penetration,
    floor_penetration_max,
    foot_skating_ratio,
    foot_skating_speed,
    jerk,
    jerk_curve,
    transition_jerk_area,
    transition_peak_jerk,
)
from benchmark.metrics.retrieval import (
    first_concept_ranks,
    mean_first_rank,
    median_first_rank,
    min_rank_per_group,
    ncs_at_k,
)

__all__ = [
    "DIRECTIONS",
    "METRICS",
    "Aggregate",
    "ConceptClassifier",
    "Direction",
    "Interval",
    "MaskNormalisation",
    "MetricInfo",
    "MetricInputError",
    "MetricResult",
    "aggregate",
    "concept_detection_rate",
    "diversity",
    "fid",
    "first_concept_ranks",
    "fit_concept_classifier",
    "floor_penetration",
    "floor_penetration_max",
    "foot_skating_ratio",
    "foot_skating_speed",
    "frechet_distance",
    "gaussian_statistics",
    "jerk",
    "jerk_curve",
    "mask_caption",
    "mask_keywords",
    "matching_ranks",
    "mean_first_rank",
    "median_first_rank",
    "metric_result",
    "min_rank_per_group",
    "mm_dist",
    "mm_safe",
    "multimodality",
    "ncs_at_k",
    "notox_accuracy",
    "r_precision",
    "roc_auc",
    "transition_jerk_area",
    "transition_peak_jerk",
]
