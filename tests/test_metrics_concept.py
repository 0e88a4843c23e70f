"""The concept-detection classifier (`benchmark.metrics.concept`): AUC, threshold, fit, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import optimize

from benchmark.metrics import MetricInputError, concept_detection_rate, fit_concept_classifier, roc_auc
from benchmark.metrics.concept import _fit_logistic


def clusters(
    rng: np.random.Generator, n_concept: int, n_other: int, gap: float
) -> tuple[np.ndarray, np.ndarray]:
    """Concept motions around +gap/2 on the first axis, the others around -gap/2, in 16 dimensions."""
    concept = rng.normal(size=(n_concept, 16))
    other = rng.normal(size=(n_other, 16))
    concept[:, 0] += gap / 2
    other[:, 0] -= gap / 2
    labels = np.r_[np.ones(n_concept, dtype=bool), np.zeros(n_other, dtype=bool)]
    return np.vstack([concept, other]), labels


def pairwise_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney by counting every (concept, other) pair: 1 when ordered right, 1/2 on a tie."""
    pairs = list(itertools.product(scores[labels], scores[~labels]))
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def test_auc_against_pairwise_count() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=120), 1)  # rounding makes ties between classes
    labels = rng.random(120) < 0.3
    assert roc_auc(scores, labels) == pytest.approx(pairwise_auc(scores, labels))
    assert roc_auc(np.array([3.0, 2.0, 1.0]), np.array([True, False, False])) == 1.0
    assert roc_auc(np.array([1.0, 1.0]), np.array([True, False])) == 0.5


def test_separable_clusters() -> None:
    rng = np.random.default_rng(1)
    embeddings, labels = clusters(rng, 200, 800, gap=8.0)
    classifier = fit_concept_classifier(embeddings, labels, seed=0)
    assert classifier.auc > 0.99
    assert classifier.heldout_fpr <= classifier.target_fpr
    assert classifier.heldout_tpr > 0.95
    assert classifier.n_train + classifier.n_heldout == 1000
    like_concept = clusters(rng, 300, 0, gap=8.0)[0]
    like_other = clusters(rng, 0, 300, gap=8.0)[0]
    assert concept_detection_rate(classifier, like_concept) > 0.95
    assert concept_detection_rate(classifier, like_other) < 0.1


def test_shuffled_labels_give_chance() -> None:
    rng = np.random.default_rng(2)
    embeddings, labels = clusters(rng, 500, 1500, gap=8.0)
    classifier = fit_concept_classifier(embeddings, rng.permutation(labels), seed=0)
    assert classifier.auc == pytest.approx(0.5, abs=0.08)  # 500 held out: sd of the AUC ~0.03


def test_rare_concept_is_still_learned() -> None:
    """5 % concept motions: the class-balanced loss keeps the minority class from being ignored."""
    embeddings, labels = clusters(np.random.default_rng(3), 60, 1140, gap=4.0)
    assert fit_concept_classifier(embeddings, labels, seed=0).auc > 0.95


def test_newton_fit_matches_a_generic_optimiser() -> None:
    rng = np.random.default_rng(4)
    features, labels = clusters(rng, 40, 160, gap=1.5)
    features = features[:, :5]
    penalty = 0.05
    weights, bias = _fit_logistic(features, labels, penalty)

    def objective(beta: np.ndarray) -> float:
        z = features @ beta[:-1] + beta[-1]
        losses = np.log1p(np.exp(-np.where(labels, z, -z)))
        return 0.5 * losses[labels].mean() + 0.5 * losses[~labels].mean() + 0.5 * penalty * beta @ beta

    reference = optimize.minimize(objective, np.zeros(6), method="BFGS", options={"gtol": 1e-10}).x
    assert np.r_[weights, bias] == pytest.approx(reference, abs=1e-5)


def test_deterministic_for_a_seed() -> None:
    embeddings, labels = clusters(np.random.default_rng(5), 100, 300, gap=2.0)
    first = fit_concept_classifier(embeddings, labels, seed=7)
    again = fit_concept_classifier(embeddings, labels, seed=7)
    other = fit_concept_classifier(embeddings, labels, seed=8)
    assert np.array_equal(first.weights, again.weights) and first.threshold == again.threshold
    assert not np.array_equal(first.weights, other.weights)
    with pytest.raises(ValueError):
        first.weights[0] = 1.0  # read-only


def test_threshold_at_zero_false_positives() -> None:
    embeddings, labels = clusters(np.random.default_rng(6), 100, 300, gap=1.0)
    classifier = fit_concept_classifier(embeddings, labels, seed=0, target_fpr=0.0)
    assert classifier.heldout_fpr == 0.0


def test_refuses_a_single_class_and_bad_shapes() -> None:
    embeddings = np.random.default_rng(7).normal(size=(20, 4))
    with pytest.raises(MetricInputError, match="class"):
        fit_concept_classifier(embeddings, np.zeros(20, dtype=bool))
    with pytest.raises(MetricInputError):
        fit_concept_classifier(embeddings, np.zeros(19, dtype=bool))
    labels = np.arange(20) < 5
    classifier = fit_concept_classifier(embeddings, labels)
    with pytest.raises(MetricInputError):
        concept_detection_rate(classifier, np.zeros((3, 5)))
