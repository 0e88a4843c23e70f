"""NCS ("Nearest Concept Similarity"): do a generation's nearest dataset motions carry the forgotten concept?

HMU's v1 pipeline (`src/eval/ncs_compute.py`): each generated motion retrieves its nearest dataset motions
(motion-to-motion, in an embedding space); `first_rank` is the 1-based rank of the first retrieved motion
whose description names the concept, or `max_rank + 1` when none of the `max_rank` (100) retrieved does;
within a repeat the minimum over the generations of one prompt id is kept; NCS@k is the share of prompts
with `first_rank <= k`. Here the concept label of each dataset motion is an input (keyword split or ground
truth), and the space is the evaluator's (Euclidean, as the T2M evaluator is trained) or TMR's (cosine).

    >>> ranks = first_concept_ranks(generated_emb, dataset_emb, dataset_is_concept)     # (G,) in 1..101
    >>> ranks = min_rank_per_group(ranks, prompt_ids)                                  # one per prompt
    >>> ncs_at_k(ranks)                              # {1: 0.12, 2: 0.2, 3: 0.25, 5: 0.31, 10: 0.4}
    >>> mean_first_rank(ranks), median_first_rank(ranks)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from benchmark.metrics.base import MetricInputError

NCS_KS: tuple[int, ...] = (1, 2, 3, 5, 10)
"""The k of NCS@k that HMU reports."""

MAX_RANK = 100
"""Dataset motions retrieved per generation (HMU's `top_k`); with no concept among them, rank 101."""

Distance = Literal["euclidean", "cosine"]
"""`euclidean` for the T2M evaluator's space; `cosine` for TMR's, as HMU retrieved."""

_CHUNK_ELEMENTS = 1 << 23
"""Distance-matrix entries computed at once (64 MiB of float64), bounding memory for large datasets."""


def _matrix(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0:
        raise MetricInputError(f"{what}: expected a non-empty (N, D) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise MetricInputError(f"{what}: embeddings contain NaN or infinite values")
    return array


def _order_scores(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """‖q−k‖² − ‖q‖², which orders keys as their distance to q does (for unit vectors, as 1 − 2·cos)."""
    return (keys * keys).sum(axis=1) - 2.0 * queries @ keys.T


def first_concept_ranks(
    generated: np.ndarray,
    dataset: np.ndarray,
    dataset_concept: Sequence[bool] | np.ndarray,
    *,
    max_rank: int | None = MAX_RANK,
    distance: Distance = "euclidean",
) -> np.ndarray:
    """Per generated motion (G, D), the 1-based rank of its nearest dataset motion (M, D) with the concept.

    `dataset_concept[j]` says whether dataset motion j carries the concept. Ranks beyond `max_rank` become
    `max_rank + 1` (HMU's "not retrieved"); `max_rank=None` keeps the exact rank. A tie between a concept and
    a non-concept motion (up to rounding) counts the concept motion first: it never flatters forgetting.
    """
    generated, dataset = _matrix(generated, "generated"), _matrix(dataset, "dataset")
    concept = np.asarray(dataset_concept)
    if generated.shape[1] != dataset.shape[1]:
        raise MetricInputError(
            f"embedding sizes differ: generated {generated.shape}, dataset {dataset.shape}"
        )
    if concept.shape != (dataset.shape[0],) or concept.dtype != np.bool_:
        raise MetricInputError(f"dataset_concept must be a boolean array of shape ({dataset.shape[0]},)")
    if not concept.any():
        raise MetricInputError("no dataset motion carries the concept: every rank would be undefined")
    if distance == "cosine":
        generated = generated / np.linalg.norm(generated, axis=1, keepdims=True)
        dataset = dataset / np.linalg.norm(dataset, axis=1, keepdims=True)
    elif distance != "euclidean":
        raise ValueError(f"unknown distance {distance!r}; expected 'euclidean' or 'cosine'")
    with_concept, without = dataset[concept], dataset[~concept]
    ranks = np.empty(generated.shape[0], dtype=np.int64)
    rows = max(1, _CHUNK_ELEMENTS // dataset.shape[0])
    for start in range(0, generated.shape[0], rows):
        queries = generated[start : start + rows]
        nearest_concept = _order_scores(queries, with_concept).min(axis=1)
        closer = (_order_scores(queries, without) < nearest_concept[:, None]).sum(axis=1)
        ranks[start : start + rows] = closer + 1
    if max_rank is not None:
        ranks[ranks > max_rank] = max_rank + 1
    return ranks


def min_rank_per_group(ranks: np.ndarray, groups: Sequence[object] | np.ndarray) -> np.ndarray:
    """The minimum rank within each group (HMU: per prompt id within one repeat), in sorted group order."""
    ranks, groups = np.asarray(ranks), np.asarray(groups)
    if ranks.shape != groups.shape or ranks.ndim != 1:
        raise MetricInputError(
            f"ranks {ranks.shape} and groups {groups.shape} must be 1-d of the same length"
        )
    _, group_index = np.unique(groups, return_inverse=True)
    minima = np.full(group_index.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(minima, group_index, ranks)
    return minima


def _ranks(ranks: np.ndarray) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.size == 0 or (ranks < 1).any():
        raise MetricInputError("expected a non-empty 1-d array of ranks >= 1")
    return ranks


def ncs_at_k(ranks: np.ndarray, ks: Sequence[int] = NCS_KS) -> dict[int, float]:
    """Share of generations with a concept motion among their k nearest dataset motions; lower is better."""
    ranks = _ranks(ranks)
    return {k: float((ranks <= k).mean()) for k in ks}


def mean_first_rank(ranks: np.ndarray) -> float:
    """Mean rank of the first concept motion among the nearest dataset motions; higher is better."""
    return float(_ranks(ranks).mean())


def median_first_rank(ranks: np.ndarray) -> float:
    """Median rank of the first concept motion among the nearest dataset motions; higher is better."""
    return float(np.median(_ranks(ranks)))
