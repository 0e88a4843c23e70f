"""Distribution metrics on evaluator embeddings: FID, Diversity, MultiModality (Guo et al.'s T2M protocol).

All three follow `utils/metrics.py` of the T2M evaluation code as MoMask and HMU run it; what differs is
written where it differs. Randomness comes from the generator passed in, never from global state, so one
repeat seeded with `np.random.default_rng(seed)` is reproducible.

    >>> rng = np.random.default_rng(0)
    >>> real, generated = rng.normal(size=(1000, 512)), rng.normal(size=(1000, 512))
    >>> fid(generated, real)          # the same Gaussian, yet ~131: the finite-sample bias, about D^2/(2N)
    >>> diversity(generated, rng=rng)                 # ~ sqrt(2 * 512) = 32
    >>> multimodality(rng.normal(size=(96, 30, 512)), rng=rng)
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from benchmark.metrics.base import MetricInputError

DIVERSITY_TIMES = 300
"""Pairs drawn for Diversity (the protocol's `diversity_times`)."""

MULTIMODALITY_TIMES = 10
"""Pairs drawn per prompt for MultiModality (the protocol's `mm_num_times`)."""

FID_EPS = 1e-6
"""Offset added to both covariance diagonals when the product of the covariances is singular."""

FID_MAX_IMAG = 1e-3
"""Largest imaginary part tolerated on the diagonal of sqrt(C1·C2) before the FID is refused."""


def _embeddings(array: np.ndarray, what: str, ndim: int = 2) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != ndim:
        raise MetricInputError(f"{what}: expected a {ndim}-d array of embeddings, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise MetricInputError(f"{what}: embeddings contain NaN or infinite values")
    return array


def gaussian_statistics(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of embeddings (N, D); `np.cov` with ddof=1, as the protocol."""
    embeddings = _embeddings(embeddings, "gaussian_statistics")
    if embeddings.shape[0] < 2:
        raise MetricInputError(f"a covariance needs at least 2 embeddings, got {embeddings.shape[0]}")
    return embeddings.mean(axis=0), np.cov(embeddings, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = FID_EPS
) -> float:
    """Frechet distance ‖μ1−μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) between two Gaussians; lower is better.

    As in the T2M code (Dougal Sutherland's stable version): when sqrtm of the product is not finite (a
    singular product), `eps`·I is added to both covariances; a small imaginary part from round-off is
    dropped, a large one (over `FID_MAX_IMAG` on the diagonal) raises `MetricInputError`.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise MetricInputError(
            f"Gaussians of different dimensions: means {mu1.shape}, {mu2.shape}; "
            f"covariances {sigma1.shape}, {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.abs(np.diagonal(covmean).imag).max()
        if imaginary > FID_MAX_IMAG:
            raise MetricInputError(
                f"sqrt(C1·C2) has an imaginary part of {imaginary:.3g}: covariances unusable"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid(generated: np.ndarray, reference: np.ndarray) -> float:
    """FID of generated (N, D) vs real (M, D) embeddings; lower is better (or closer to the reference)."""
    return frechet_distance(*gaussian_statistics(generated), *gaussian_statistics(reference))


def _draw_pairs(n: int, times: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two independent draws of `times` indices without replacement, as the protocol pairs samples.

    The pairs are (first[i], second[i]); about `times`/n of them pair a sample with itself (distance 0), a
    downward bias of 1/n that the protocol has and that is kept so that numbers stay comparable.
    """
    return rng.choice(n, times, replace=False), rng.choice(n, times, replace=False)


def diversity(
    embeddings: np.ndarray, times: int = DIVERSITY_TIMES, *, rng: np.random.Generator | int
) -> float:
    """Mean L2 distance between random pairs of embeddings (N, D); closer to the reference is better.

    `times` pairs are drawn; with N ≤ `times` samples, N pairs (HMU's rule, `300 if N > 300 else N`; Guo's
    code used 100). The reference is the real motions' diversity, or the retain-only model's.
    """
    embeddings = _embeddings(embeddings, "diversity")
    n = embeddings.shape[0]
    if n < 2:
        raise MetricInputError(f"diversity needs at least 2 embeddings, got {n}")
    first, second = _draw_pairs(n, times if n > times else n, np.random.default_rng(rng))
    return float(np.linalg.norm(embeddings[first] - embeddings[second], axis=1).mean())


def multimodality(
    embeddings: np.ndarray, times: int = MULTIMODALITY_TIMES, *, rng: np.random.Generator | int
) -> float:
    """Mean L2 distance between generations of one prompt, embeddings (P, R, D); higher is better.

    As the protocol, the same `times` index pairs are used for every prompt; with R ≤ `times` generations
    per prompt, R pairs are drawn. MoMask computes it on 96 prompts × 30 generations. On forget prompts a
    task may declare it `reference` (closer to the retain-only model).
    """
    embeddings = _embeddings(embeddings, "multimodality", ndim=3)
    repeats = embeddings.shape[1]
    if repeats < 2 or embeddings.shape[0] == 0:
        raise MetricInputError(
            f"multimodality needs >= 1 prompt with >= 2 generations, got {embeddings.shape}"
        )
    first, second = _draw_pairs(repeats, times if repeats > times else repeats, np.random.default_rng(rng))
    return float(np.linalg.norm(embeddings[:, first] - embeddings[:, second], axis=2).mean())
