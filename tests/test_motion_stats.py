"""Normalisation statistics: the HumanML3D group-averaged std and MoMask's model std."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.motion.skeleton import FEATURE_SLICES
from benchmark.motion.stats import feature_statistics, model_std

# Group values of the real Std.npy, as listed in the format spec (section 6).
SPEC_STD_GROUPS = {
    "root_rot_velocity": 0.012826,
    "root_linear_velocity": 0.016927,
    "root_height": 0.153766,
    "ric": 0.122244,
    "rot6d": 0.299692,
    "local_velocity": 0.019470,
    "foot_contact": 0.355933,
}


def independent_statistics(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    data = np.concatenate(arrays).astype(np.float64)
    mean, std = data.mean(axis=0), data.std(axis=0)
    for start, stop in [(0, 1), (1, 3), (3, 4), (4, 67), (67, 193), (193, 259), (259, 263)]:
        std[start:stop] = std[start:stop].mean()
    return mean, std


def synthetic_features(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.01, 2.0, size=263)
    offset = rng.normal(size=263)
    return [(rng.normal(size=(n, 263)) * scale + offset).astype(np.float32) for n in (1, 40, 7, 120)]


def test_reference_std_is_group_constant_with_the_spec_values(reference_dir: Path) -> None:
    std = np.load(reference_dir / "Std.npy")
    assert std.shape == (263,) and std.dtype == np.float32
    for name, group in zip(FEATURE_SLICES._fields, FEATURE_SLICES, strict=True):
        assert np.all(std[group] == std[group.start]), name
        assert std[group.start] == pytest.approx(SPEC_STD_GROUPS[name], abs=1e-6), name


def test_model_std_divides_root_and_contacts_by_five(reference_dir: Path) -> None:
    std = np.load(reference_dir / "Std.npy")
    before = std.copy()
    scaled = model_std(std)
    np.testing.assert_array_equal(std, before)  # the input is not modified
    np.testing.assert_allclose(scaled[:4], std[:4] / 5)
    np.testing.assert_allclose(scaled[259:], std[259:] / 5)
    np.testing.assert_array_equal(scaled[4:259], std[4:259])
    assert scaled.dtype == np.float32


def test_statistics_equal_an_independent_computation() -> None:
    arrays = synthetic_features(0)
    mean, std = feature_statistics(iter(arrays))  # a one-pass iterator is enough
    expected_mean, expected_std = independent_statistics(arrays)
    assert mean.shape == std.shape == (263,) and mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(std, expected_std, rtol=1e-6)


def test_statistics_stay_accurate_with_a_large_offset() -> None:
    """A raw sum of squares would lose the small variance next to a large mean; the merge does not."""
    rng = np.random.default_rng(1)
    arrays = [1e4 + 1e-3 * rng.normal(size=(n, 263)) for n in (50, 60, 70)]
    mean, std = feature_statistics(arrays)
    expected_mean, expected_std = independent_statistics(arrays)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-7)
    np.testing.assert_allclose(std, expected_std, rtol=1e-5)


def test_empty_arrays_are_skipped_and_bad_input_rejected() -> None:
    arrays = synthetic_features(2)
    with_empty = [np.zeros((0, 263), np.float32), *arrays]
    for got, expected in zip(feature_statistics(with_empty), feature_statistics(arrays), strict=True):
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="at least one frame"):
        feature_statistics([])
    with pytest.raises(ValueError, match=r"features\[1\] must have shape \(T, 263\)"):
        feature_statistics([arrays[0], np.zeros((5, 262))])
    with pytest.raises(ValueError, match=r"\(263,\)"):
        model_std(np.ones(262))
