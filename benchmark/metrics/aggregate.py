"""Repeats -> mean and 95 % confidence interval: the one aggregation every metric of the suite goes through.

The protocol (Guo et al.'s T2M evaluation, MoMask, HMU) repeats the whole evaluation 20 times and reports
`mean ± 1.96·std/√n` with `std = np.std(values)`, the *population* standard deviation (ddof=0). That is the
default here, so that numbers stay comparable with the published tables. With 20 repeats it is a little
narrow: the population std is √(19/20) of the sample std, and 1.96 is the normal quantile where Student's t
with 19 degrees of freedom gives 2.093, together about 9 % narrower than the exact t-interval.
`interval="t"` gives that interval (sample std, ddof=1, and the t quantile); it is the better choice for
few repeats and for new comparisons, at the price of not matching published CIs. (HMU's NCS script used a
third variant, 1.96 with the sample std; it is not offered.)

    >>> summary = aggregate([0.50, 0.52, 0.51, 0.49])
    >>> round(summary.mean, 3), round(summary.ci95, 4)
    (0.505, 0.011)
    >>> metric_result("r_precision_top1", [0.50, 0.52, 0.51, 0.49]).direction
    'higher'
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from benchmark.metrics.base import METRICS, Direction, MetricInputError, MetricResult

Interval = Literal["normal", "t"]
"""`normal`: 1.96·std/√n, population std (MoMask; the default); `t`: Student's t with the sample std."""

NORMAL_QUANTILE = 1.96
"""The 97.5 % quantile of the standard normal, rounded as the protocol does."""


@dataclass(frozen=True)
class Aggregate:
    """Summary of a metric's repeated values."""

    mean: float
    """Mean of the values."""
    std: float
    """Their standard deviation: population (ddof=0) for `normal`, sample (ddof=1) for `t`."""
    ci95: float | None
    """Half-width of the 95 % confidence interval of the mean; None for a single value (no spread)."""
    n: int
    """Number of values."""


def aggregate(values: Sequence[float] | np.ndarray, interval: Interval = "normal") -> Aggregate:
    """Mean, standard deviation and 95 % CI half-width of repeated metric values (see the module doc)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise MetricInputError(f"expected a non-empty list of repeat values, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise MetricInputError(f"repeat values must be finite, got {array.tolist()}")
    n = int(array.size)
    mean = float(array.mean())
    if interval == "normal":
        std = float(array.std())
        ci95 = NORMAL_QUANTILE * std / math.sqrt(n) if n > 1 else None
    elif interval == "t":
        std = float(array.std(ddof=1)) if n > 1 else 0.0
        ci95 = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n) if n > 1 else None
    else:
        raise ValueError(f"unknown interval {interval!r}; expected 'normal' or 't'")
    return Aggregate(mean, std, ci95, n)


def metric_result(
    name: str,
    values: Sequence[float] | np.ndarray,
    direction: Direction | None = None,
    interval: Interval = "normal",
) -> MetricResult:
    """The `MetricResult` of a metric of `METRICS` from its per-repeat values.

    `direction` overrides the metric's default (a task's prompt set may declare `reference` for FID).
    """
    info = METRICS.get(name)
    if info is None:
        close = difflib.get_close_matches(name, METRICS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown metric {name!r}{hint}")
    summary = aggregate(values, interval)
    return MetricResult(
        name=name,
        value=summary.mean,
        ci95=summary.ci95,
        std=summary.std,
        n_repeats=summary.n,
        direction=direction or info.direction,
        description=info.description,
        repeats=tuple(float(v) for v in np.asarray(values, dtype=np.float64)),
    )
