"""Aggregation of repeats (`benchmark.metrics.aggregate`) and the metric catalogue (`metrics.base`)."""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import pytest
from scipy import stats

from benchmark.metrics import DIRECTIONS, METRICS, MetricInputError, aggregate, metric_result
from benchmark.tasks import METRIC_DIRECTIONS, discover_tasks, load_task

REPO_ROOT = Path(__file__).resolve().parent.parent

VALUES = [0.50, 0.52, 0.51, 0.49, 0.55, 0.47]


def test_normal_interval_is_momask_formula() -> None:
    """1.96 · population std / sqrt(n), the population std computed by the statistics module."""
    summary = aggregate(VALUES)
    population_std = statistics.pstdev(VALUES)
    assert summary.n == len(VALUES)
    assert summary.mean == pytest.approx(statistics.fmean(VALUES))
    assert summary.std == pytest.approx(population_std)
    assert summary.ci95 == pytest.approx(1.96 * population_std / math.sqrt(len(VALUES)))


def test_known_list_by_hand() -> None:
    # 1..5: mean 3, population variance 2.
    summary = aggregate([1, 2, 3, 4, 5])
    assert (summary.mean, summary.std) == pytest.approx((3.0, math.sqrt(2.0)))
    assert summary.ci95 == pytest.approx(1.96 * math.sqrt(2.0 / 5.0))


def test_t_interval_matches_scipy() -> None:
    summary = aggregate(VALUES, interval="t")
    low, high = stats.t.interval(0.95, len(VALUES) - 1, loc=statistics.fmean(VALUES), scale=stats.sem(VALUES))
    assert summary.std == pytest.approx(statistics.stdev(VALUES))
    assert summary.ci95 == pytest.approx((high - low) / 2)
    assert summary.ci95 > aggregate(VALUES).ci95


def test_single_repeat_has_no_interval() -> None:
    assert aggregate([0.3]).ci95 is None
    assert aggregate([0.3], interval="t").ci95 is None


@pytest.mark.parametrize("values", [[], [1.0, float("nan")], [[1.0, 2.0]]])
def test_bad_values_are_refused(values: list) -> None:
    with pytest.raises(MetricInputError):
        aggregate(values)


def test_metric_result_carries_metadata() -> None:
    result = metric_result("fid", [0.1, 0.2, 0.3])
    assert result.direction == "lower"
    assert result.n_repeats == 3
    assert result.repeats == (0.1, 0.2, 0.3)
    assert result.value == pytest.approx(0.2)
    assert result.description == METRICS["fid"].description
    assert metric_result("fid", [0.1, 0.2], direction="reference").direction == "reference"
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.value = 1.0  # type: ignore[misc]


def test_unknown_metric_suggests_a_name() -> None:
    with pytest.raises(KeyError, match="r_precision_top1"):
        metric_result("r_precison_top1", [0.5])


def test_catalogue_directions_match_task_schema() -> None:
    assert tuple(DIRECTIONS) == tuple(METRIC_DIRECTIONS)
    assert all(info.direction in DIRECTIONS for info in METRICS.values())
    assert all(name == info.name for name, info in METRICS.items())


def test_every_metric_a_task_names_is_in_the_catalogue() -> None:
    tasks = discover_tasks(REPO_ROOT / "tasks")
    assert tasks, "no task files found"
    named = {
        metric.name
        for path in tasks.values()
        for prompt_set in load_task(path).prompt_sets
        for metric in prompt_set.metrics
    }
    assert named, "tasks name no metrics"
    assert named <= set(METRICS), sorted(named - set(METRICS))
