"""Normalisation statistics of 263-d features, computed the HumanML3D way.

`Mean.npy` is the per-dim mean over all frames of all motions; `Std.npy` is the per-dim standard deviation
averaged within each feature group, so each group has one value. Models and the evaluator normalise with
`model_std(std)`, which further divides the root and foot-contact groups by 5 (MoMask's `feat_bias`).

    >>> mean, std = feature_statistics(np.load(path) for path in sorted(folder.glob("*.npy")))
    >>> normalised = (features - mean) / model_std(std)
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from benchmark.motion.skeleton import FEATURE_DIM, FEATURE_SLICES

FEAT_BIAS = 5.0
"""Divisor of the root (dims 0:4) and foot-contact (259:263) stds in `model_std`."""


def feature_statistics(features: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std), each (263,) float32, over every frame of every (T, 263) array in `features`.

    Streams: one array is held at a time, merged in float64 (Chan et al.'s pairwise update of mean
    and sum of squared deviations, which does not lose precision the way a raw sum of squares can).
    The std is the population std (ddof 0), then averaged within each group of `FEATURE_SLICES`.
    """
    count = 0
    mean = np.zeros(FEATURE_DIM)
    squared_deviations = np.zeros(FEATURE_DIM)
    for index, array in enumerate(features):
        array = np.asarray(array, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != FEATURE_DIM:
            raise ValueError(f"features[{index}] must have shape (T, 263), got {array.shape}")
        frames = len(array)
        if frames == 0:
            continue
        array_mean = array.mean(axis=0)
        delta = array_mean - mean
        total = count + frames
        mean = mean + delta * (frames / total)
        squared_deviations += ((array - array_mean) ** 2).sum(axis=0) + delta**2 * (count * frames / total)
        count = total
    if count == 0:
        raise ValueError("feature_statistics needs at least one frame of features")
    std = np.sqrt(squared_deviations / count)
    for group in FEATURE_SLICES:
        std[group] = std[group].mean()
    return mean.astype(np.float32), std.astype(np.float32)


def model_std(std: np.ndarray) -> np.ndarray:
    """The std the models and the evaluator use: `Std.npy` with dims 0:4 and 259:263 divided by 5."""
    std = np.array(std, copy=True)
    if std.shape != (FEATURE_DIM,):
        raise ValueError(f"std must have shape (263,), got {std.shape}")
    std[: FEATURE_SLICES.root_height.stop] /= FEAT_BIAS
    std[FEATURE_SLICES.foot_contact] /= FEAT_BIAS
    return std
