"""NCS (`benchmark.metrics.retrieval`) on constructed neighbour structures and against a brute-force sort."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.metrics import (
    MetricInputError,
    first_concept_ranks,
    mean_first_rank,
    median_first_rank,
    min_rank_per_group,
    ncs_at_k,
)
from benchmark.metrics import retrieval as retrieval_module


def brute_force_ranks(
    generated: np.ndarray, dataset: np.ndarray, concept: np.ndarray, max_rank: int
) -> np.ndarray:
    """Sort every dataset motion by distance; the first concept motion's 1-based position, capped as HMU."""
    ranks = []
    for query in generated:
        order = np.argsort(np.linalg.norm(dataset - query, axis=1), kind="stable")
        first = int(np.flatnonzero(concept[order])[0]) + 1
        ranks.append(first if first <= max_rank else max_rank + 1)
    return np.array(ranks)


def test_motions_on_a_line() -> None:
    """Dataset motions at 1, 2, ..., 10 on a line; a generation at 0 meets them in that order."""
    dataset = np.arange(1.0, 11.0)[:, None] * np.array([[1.0, 0.0]])
    concept = np.zeros(10, dtype=bool)
    concept[[3, 7]] = True  # at distances 4 and 8
    generated = np.array([[0.0, 0.0], [8.0, 0.0], [20.0, 0.0]])
    assert first_concept_ranks(generated, dataset, concept).tolist() == [4, 1, 3]


def test_matches_a_brute_force_sort() -> None:
    rng = np.random.default_rng(0)
    dataset = rng.normal(size=(500, 16))
    concept = rng.random(500) < 0.03
    generated = rng.normal(size=(200, 16))
    expected = brute_force_ranks(generated, dataset, concept, max_rank=100)
    assert (first_concept_ranks(generated, dataset, concept) == expected).all()
    exact = first_concept_ranks(generated, dataset, concept, max_rank=None)
    assert (exact == brute_force_ranks(generated, dataset, concept, max_rank=500)).all()


def test_chunked_computation_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    dataset, generated = rng.normal(size=(50, 4)), rng.normal(size=(30, 4))
    concept = rng.random(50) < 0.2
    concept[0] = True
    whole = first_concept_ranks(generated, dataset, concept)
    monkeypatch.setattr(retrieval_module, "_CHUNK_ELEMENTS", 120)  # two queries at a time
    assert (first_concept_ranks(generated, dataset, concept) == whole).all()


def test_rank_beyond_the_retrieved_is_max_rank_plus_one() -> None:
    dataset = np.arange(1.0, 51.0)[:, None]
    concept = np.zeros(50, dtype=bool)
    concept[-1] = True
    assert first_concept_ranks(np.zeros((1, 1)), dataset, concept, max_rank=10).tolist() == [11]
    assert first_concept_ranks(np.zeros((1, 1)), dataset, concept, max_rank=None).tolist() == [50]


def test_tie_counts_the_concept_first() -> None:
    dataset = np.array([[1.0], [-1.0]])
    assert first_concept_ranks(np.zeros((1, 1)), dataset, np.array([False, True])).tolist() == [1]


def test_cosine_ignores_norms() -> None:
    """The concept motion points the generation's way but is far; the other is near but at an angle."""
    dataset = np.array([[100.0, 1.0], [0.5, 0.3]])
    concept = np.array([True, False])
    generated = np.array([[1.0, 0.0]])
    assert first_concept_ranks(generated, dataset, concept).tolist() == [2]
    assert first_concept_ranks(generated, dataset, concept, distance="cosine").tolist() == [1]


def test_minimum_per_prompt() -> None:
    ranks = np.array([5, 2, 7, 1])
    assert min_rank_per_group(ranks, ["b", "a", "a", "b"]).tolist() == [2, 1]


def test_ncs_at_k_and_rank_summaries() -> None:
    ranks = np.array([1, 2, 3, 5, 11, 101])
    assert ncs_at_k(ranks) == pytest.approx({1: 1 / 6, 2: 2 / 6, 3: 3 / 6, 5: 4 / 6, 10: 4 / 6})
    assert mean_first_rank(ranks) == pytest.approx(123 / 6)
    assert median_first_rank(ranks) == pytest.approx(4.0)


def test_refuses_bad_inputs() -> None:
    dataset = np.zeros((5, 3))
    with pytest.raises(MetricInputError, match="concept"):
        first_concept_ranks(np.zeros((2, 3)), dataset, np.zeros(5, dtype=bool))
    with pytest.raises(MetricInputError):
        first_concept_ranks(np.zeros((2, 4)), dataset, np.ones(5, dtype=bool))
    with pytest.raises(MetricInputError):
        ncs_at_k(np.array([0, 1]))
