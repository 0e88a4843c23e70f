"""A quick check that an evaluator is fit to grade: the numbers `hmu train-evaluator` and
`benchmarks/evaluator.py` print, on real (ground-truth) motions of a dataset folder.

- R-precision top-1/2/3 and MM-Dist of test motions against one of their captions, in batches of 32
  (chance is 1/32, 2/32, 3/32);
- FID of the test motions against themselves (0 up to rounding) and against the training motions;
- ROC AUC of the concept classifier (`benchmark.metrics.fit_concept_classifier`) on test motion embeddings,
  with the ground-truth concept labels of `labels.jsonl` (generated datasets).

    >>> result = check_evaluator(evaluator, HumanML3DFolder("data/embedded"), test_split="test")
    >>> print(result.summary())
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.data.captions import Caption
from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.errors import DataFormatError
from benchmark.evaluator.base import Evaluator
from benchmark.metrics import fid, fit_concept_classifier, mm_dist, r_precision
from benchmark.training.data import resolve_split


@dataclass(frozen=True)
class EvaluatorCheck:
    """What `check_evaluator` measured."""

    test_motions: int
    """Test motions read (one caption each)."""
    r_precision: dict[int, float]
    """Top-k R-precision of the test pairs in batches of `batch_size`, k = 1, 2, 3; higher is better."""
    batch_size: int
    """Pairs per R-precision batch (32, or fewer when the test split is smaller)."""
    mm_dist: float
    """Mean distance between a test caption and its motion; lower is better (its scale is the evaluator's)."""
    fid_self: float
    """FID of the test motion embeddings against themselves: 0 up to rounding."""
    fid_train_test: float | None
    """FID of the training motions against the test motions (None without a training split)."""
    concept: str | None
    """The ground-truth concept the classifier separated, or None when not measured."""
    concept_auc: float | None
    """Held-out ROC AUC of the concept classifier on test motion embeddings (0.5: no signal)."""
    concept_positives: int
    """Test motions labelled with the concept."""
    seconds: float
    """Wall time of the check (encoding included)."""

    def summary(self) -> str:
        chance = " / ".join(f"{k / self.batch_size:.3f}" for k in sorted(self.r_precision))
        lines = [
            f"R-precision top-1/2/3 ({self.test_motions} test motions, batches of {self.batch_size}): "
            + " / ".join(f"{self.r_precision[k]:.3f}" for k in sorted(self.r_precision))
            + f"  (chance {chance})",
            f"MM-Dist: {self.mm_dist:.3f}",
            f"FID(test, test): {self.fid_self:.2e}",
        ]
        if self.fid_train_test is not None:
            lines.append(f"FID(train, test): {self.fid_train_test:.4f}")
        if self.concept_auc is not None:
            lines.append(
                f"concept classifier AUC ({self.concept}, {self.concept_positives} positive test motions): "
                f"{self.concept_auc:.3f}"
            )
        return "\n".join(lines)


def concept_labels(folder: HumanML3DFolder, ids: Sequence[str], concept: str) -> np.ndarray | None:
    """(N,) whether each motion's `concepts` (labels.jsonl) name `concept`; None without labels."""
    labels = folder.labels()
    if labels is None:
        return None
    missing = [motion_id for motion_id in ids if motion_id not in labels]
    if missing:
        raise DataFormatError(
            folder.layout.labels_path, f"{len(missing)} ids have no label (first {missing[0]!r})"
        )
    return np.array([concept in labels[motion_id].get("concepts", ()) for motion_id in ids])


def caption_motion_pairs(
    folder: HumanML3DFolder, ids: Sequence[str], seed: int = 0
) -> tuple[list[Caption], list[np.ndarray]]:
    """One (caption, raw motion) pair per id: a caption drawn with `seed`, with the frames it describes (the
    whole clip, or its segment). The protocol proper (random crops, 20 repeats) is the harness's."""
    rng = np.random.default_rng(seed)
    captions: list[Caption] = []
    motions: list[np.ndarray] = []
    for motion_id in ids:
        options = folder.captions(motion_id)
        caption = options[int(rng.integers(len(options)))]
        features = folder.features(motion_id)
        first, last = caption.frame_range(folder.metadata.fps, len(features))
        captions.append(caption)
        motions.append(features[first:last] if last > first else features)
    return captions, motions


def check_evaluator(
    evaluator: Evaluator,
    folder: HumanML3DFolder,
    *,
    test_split: str = "test",
    train_split: str | None = "train",
    concept: str | None = "violence",
    seed: int = 0,
) -> EvaluatorCheck:
    """Measure `evaluator` on the real motions of `folder` (see the module docstring). The concept AUC is
    skipped (None) when the folder has no labels.jsonl or the test split lacks either class."""
    began = time.perf_counter()
    test_ids = resolve_split(folder, test_split)
    captions, motions = caption_motion_pairs(folder, test_ids, seed)
    text = evaluator.encode_texts(captions)
    motion = evaluator.encode_motions(motions)
    batch = min(32, len(test_ids))
    scores = r_precision(text, motion, batch_size=batch, rng=seed)
    whole = evaluator.encode_motions([folder.features(motion_id) for motion_id in test_ids])
    fid_train_test = None
    if train_split is not None:
        train = evaluator.encode_motions([folder.features(i) for i in resolve_split(folder, train_split)])
        fid_train_test = fid(train, whole)
    auc, positives = None, 0
    labels = concept_labels(folder, test_ids, concept) if concept is not None else None
    if labels is not None:
        positives = int(labels.sum())
        if min(positives, len(labels) - positives) >= 2:
            auc = fit_concept_classifier(whole, labels, seed=seed).auc
    return EvaluatorCheck(
        test_motions=len(test_ids),
        r_precision=scores,
        batch_size=batch,
        mm_dist=mm_dist(text, motion),
        fid_self=fid(whole, whole),
        fid_train_test=fid_train_test,
        concept=concept if auc is not None else None,
        concept_auc=auc,
        concept_positives=positives,
        seconds=time.perf_counter() - began,
    )
