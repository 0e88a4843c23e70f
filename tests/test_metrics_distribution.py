"""FID, Diversity and MultiModality (`benchmark.metrics.distribution`) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg
from scipy.special import gammaln

from benchmark.metrics import MetricInputError, diversity, fid, frechet_distance, multimodality
from benchmark.metrics import distribution as distribution_module


def random_spd(dim: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix by eigen-decomposition (not sqrtm)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_by_eigen(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """The same distance, with Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2), symmetric, by eigenvalues."""
    root = psd_sqrt(s1)
    middle = np.linalg.eigvalsh(root @ s2 @ root)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.sqrt(np.clip(middle, 0.0, None)).sum())


def simplex(count: int, edge: float) -> np.ndarray:
    """`count` points in R^count, every pair exactly `edge` apart (scaled basis vectors)."""
    return np.eye(count) * edge / np.sqrt(2.0)


# --- FID ---------------------------------------------------------------------------------------------------


def test_diagonal_gaussians_closed_form() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 3.0, size=6), rng.uniform(0.1, 3.0, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-9)


def test_commuting_covariances_closed_form() -> None:
    """Covariances with the same eigenvectors: the diagonal formula on their eigenvalues."""
    rng = np.random.default_rng(1)
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    eig1, eig2 = rng.uniform(0.2, 2.0, size=5), rng.uniform(0.2, 2.0, size=5)
    s1, s2 = rotation @ np.diag(eig1) @ rotation.T, rotation @ np.diag(eig2) @ rotation.T
    mu1, mu2 = np.zeros(5), np.full(5, 0.5)
    expected = 5 * 0.25 + np.sum((np.sqrt(eig1) - np.sqrt(eig2)) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_general_pair_against_eigen_route(seed: int) -> None:
    rng = np.random.default_rng(seed)
    s1, s2 = random_spd(8, rng), random_spd(8, rng)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    expected = frechet_by_eigen(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-8)  # symmetric


def test_fid_of_a_set_with_itself_is_zero() -> None:
    embeddings = np.random.default_rng(5).normal(size=(400, 32))
    assert abs(fid(embeddings, embeddings)) < 1e-8


@pytest.mark.parametrize("seed", [6, 7])
def test_fid_of_samples_approaches_the_gaussians_distance(seed: int) -> None:
    """Within 4 sd of the sampling noise (means and covariances, both ~1/sqrt(N)) plus a bias of order D/N."""
    rng = np.random.default_rng(seed)
    s1, s2 = random_spd(4, rng), random_spd(4, rng)
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, -0.5, 0.0])
    expected = frechet_by_eigen(mu1, s1, mu2, s2)
    x = rng.multivariate_normal(mu1, s1, size=40_000)
    y = rng.multivariate_normal(mu2, s2, size=40_000)
    # Variance of 2·dmu'(mean errors) and of the covariances' traces, per sample.
    noise = 4 * (mu2 - mu1) @ (s1 + s2) @ (mu2 - mu1) + 2 * (np.sum(s1**2) + np.sum(s2**2))
    for size in (500, 5_000, 40_000):
        tolerance = 4 * np.sqrt(noise / size) + 20 * 4 / size
        assert fid(x[:size], y[:size]) == pytest.approx(expected, abs=tolerance)


def test_singular_product_falls_back_to_an_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    """When sqrtm(S1 S2) is not finite, the distance is that of S1 + eps I and S2 + eps I."""
    calls = []
    real_sqrtm = linalg.sqrtm

    def failing_once(matrix: np.ndarray) -> np.ndarray:
        calls.append(matrix)
        return np.full_like(matrix, np.inf) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(distribution_module.linalg, "sqrtm", failing_once)
    rng = np.random.default_rng(7)
    s1, s2 = random_spd(3, rng), random_spd(3, rng)
    mu = np.zeros(3)
    eps = 1e-3
    value = frechet_distance(mu, s1, mu, s2, eps=eps)
    offset = eps * np.eye(3)
    # Traces of the original covariances, square root of the offset ones (as the T2M code).
    root = psd_sqrt(s1 + offset)
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(root @ (s2 + offset) @ root), 0, None)).sum()
    assert len(calls) == 2
    assert value == pytest.approx(np.trace(s1) + np.trace(s2) - 2 * tr_sqrt, rel=1e-8)


def test_large_imaginary_part_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distribution_module.linalg, "sqrtm", lambda m: m + 0.5j * np.eye(m.shape[0]))
    with pytest.raises(MetricInputError, match="imaginary"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))


def test_small_imaginary_part_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distribution_module.linalg, "sqrtm", lambda m: psd_sqrt(m) + 1e-6j * np.eye(2))
    assert frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2)) == pytest.approx(0.0, abs=1e-12)


def test_fid_refuses_mismatched_or_bad_embeddings() -> None:
    with pytest.raises(MetricInputError):
        fid(np.zeros((10, 4)), np.zeros((10, 5)))
    with pytest.raises(MetricInputError):
        fid(np.zeros((1, 4)), np.zeros((10, 4)))
    with pytest.raises(MetricInputError):
        fid(np.full((10, 4), np.nan), np.zeros((10, 4)))


# --- Diversity ---------------------------------------------------------------------------------------------


def test_diversity_of_a_regular_simplex() -> None:
    """Every distinct pair is `edge` apart; a pair drawn twice the same sample counts 0 (the protocol)."""
    edge = 3.0
    value = diversity(simplex(1000, edge), rng=0)
    distinct_pairs = value / edge * 300
    assert distinct_pairs == pytest.approx(round(distinct_pairs), abs=1e-9)
    assert 295 <= round(distinct_pairs) <= 300


def test_diversity_with_fewer_samples_than_pairs_draws_one_pair_per_sample() -> None:
    value = diversity(simplex(50, 2.0), rng=1)
    assert value / 2.0 * 50 == pytest.approx(round(value / 2.0 * 50), abs=1e-9)


def test_diversity_of_gaussian_samples() -> None:
    """E‖x − y‖ for x, y ~ N(0, s²I_D) is s·√2·E[chi_D] = 2s·Γ((D+1)/2)/Γ(D/2)."""
    dim, scale = 64, 1.5
    expected = 2 * scale * np.exp(gammaln((dim + 1) / 2) - gammaln(dim / 2))
    embeddings = np.random.default_rng(8).normal(scale=scale, size=(3000, dim))
    values = [diversity(embeddings, rng=seed) for seed in range(10)]
    assert np.mean(values) == pytest.approx(expected, rel=0.01)


def test_diversity_is_reproducible_for_a_seed() -> None:
    embeddings = np.random.default_rng(9).normal(size=(500, 16))
    assert diversity(embeddings, rng=3) == diversity(embeddings, rng=np.random.default_rng(3))
    assert diversity(embeddings, rng=3) != diversity(embeddings, rng=4)


def test_diversity_refuses_a_single_sample() -> None:
    with pytest.raises(MetricInputError):
        diversity(np.zeros((1, 4)), rng=0)


# --- MultiModality -----------------------------------------------------------------------------------------


def test_multimodality_of_simplex_generations() -> None:
    """Prompt p's 30 generations form a simplex of edge d_p: mean(d_p) times the share of distinct pairs."""
    edges = np.array([1.0, 2.0, 4.0])
    embeddings = np.stack([simplex(30, edge) for edge in edges])
    value = multimodality(embeddings, rng=0)
    distinct_pairs = value / edges.mean() * 10
    assert distinct_pairs == pytest.approx(round(distinct_pairs), abs=1e-9)
    assert 8 <= round(distinct_pairs) <= 10


def test_multimodality_of_identical_generations_is_zero() -> None:
    embeddings = np.repeat(np.random.default_rng(10).normal(size=(5, 1, 8)), 30, axis=1)
    assert multimodality(embeddings, rng=0) == 0.0


def test_multimodality_of_gaussian_generations() -> None:
    dim = 32
    expected = 2 * np.exp(gammaln((dim + 1) / 2) - gammaln(dim / 2))
    embeddings = np.random.default_rng(11).normal(size=(96, 30, dim))
    values = [multimodality(embeddings, rng=seed) for seed in range(10)]
    # 10 pairs of 30 generations: a pair is a self-pair with probability 1/30 (the protocol's bias).
    assert np.mean(values) == pytest.approx(expected * (1 - 1 / 30), rel=0.02)


def test_multimodality_refuses_flat_input() -> None:
    with pytest.raises(MetricInputError):
        multimodality(np.zeros((10, 4)), rng=0)
