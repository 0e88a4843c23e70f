"""The 263-d feature extraction and its inverse, against the real HumanML3D sample 012314."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.motion.features import (
    features_from_joints,
    joints_from_features,
    retarget_to_target_skeleton,
    source_joints_from_features,
)
from benchmark.motion.kinematics import forward_kinematics
from benchmark.motion.quaternion import qrot, quat_from_axis_angle
from benchmark.motion.skeleton import (
    FEATURE_SLICES,
    NUM_JOINTS,
    REFERENCE_BONE_LENGTHS,
    bone_lengths,
    target_offsets,
)


def load_reference(reference_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    features = np.load(reference_dir / "new_joint_vecs" / "012314.npy")
    joints = np.load(reference_dir / "new_joints" / "012314.npy")
    return features, joints


def synthetic_joints(frames: int, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """A walking-and-turning motion on the target skeleton scaled by `scale`, with swinging limbs."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    angles = 0.6 * np.sin(
        2 * np.pi * t / rng.uniform(20, 60, size=NUM_JOINTS) + rng.uniform(0, 6, NUM_JOINTS)
    )
    rotations = quat_from_axis_angle(rng.normal(size=(NUM_JOINTS, 3)), angles)
    rotations[:, 0] = quat_from_axis_angle(np.array([0.0, 1.0, 0.0]), 0.015 * t[:, 0] + 0.4)
    root = np.stack([0.01 * t[:, 0], 0.95 * scale + 0.02 * np.sin(t[:, 0] / 5), 0.03 * t[:, 0]], -1)
    return forward_kinematics(rotations, root, target_offsets() * scale)


# --- acceptance ---------------------------------------------------------------------------------------------


def test_joints_from_features_reproduces_new_joints(reference_dir: Path) -> None:
    features, joints = load_reference(reference_dir)
    recovered = joints_from_features(features)
    assert recovered.shape == joints.shape and recovered.dtype == np.float32
    assert np.abs(recovered - joints).max() < 1e-4  # measured 2.4e-7


def test_features_from_the_full_source_reproduce_new_joint_vecs(reference_dir: Path) -> None:
    """With all T+1 source frames (the last one restored from the features) every frame matches."""
    features, joints = load_reference(reference_dir)
    source = source_joints_from_features(features)
    assert source.shape == (len(features) + 1, 22, 3)
    assert np.abs(source[:-1] - joints).max() < 1e-4
    extracted = features_from_joints(source)
    assert extracted.shape == features.shape and extracted.dtype == np.float32
    assert np.abs(extracted - features).max() < 1e-4  # measured 7.0e-6 (float32 joints, short wrist bones)


def test_features_from_new_joints_match_away_from_the_end(reference_dir: Path) -> None:
    """new_joints holds T frames, one fewer than the source: the facing smoothing (Gaussian, sigma 20
    frames, clamped at the ends) then sees a different last frame. Since this motion turns ~2.5 degrees
    a frame at its end, the final 34 frames drift by more than 1e-3 (up to 1.3e-2); earlier frames match."""
    features, joints = load_reference(reference_dir)
    extracted = features_from_joints(joints)
    assert extracted.shape == (len(joints) - 1, 263)
    error = np.abs(extracted - features[:-1]).max(axis=1)
    assert error[:100].max() < 1e-4  # measured 7.7e-6
    assert error[:-40].max() < 1e-3  # measured 4.6e-4; 7.1e-3 on all but the last 10


# --- properties ---------------------------------------------------------------------------------------------


def test_round_trip_keeps_the_target_bone_lengths() -> None:
    joints = synthetic_joints(90, scale=1.15)  # a taller person: retargeted to the reference skeleton
    recovered = joints_from_features(features_from_joints(joints))
    lengths = bone_lengths(recovered.astype(np.float64))
    assert np.abs(lengths - REFERENCE_BONE_LENGTHS).max() < 1e-5


def test_retargeting_keeps_directions_and_scales_the_root() -> None:
    joints = synthetic_joints(30, scale=1.15)
    retargeted = retarget_to_target_skeleton(joints)
    np.testing.assert_allclose(retargeted[:, 0], joints[:, 0] / 1.15, atol=1e-12)
    np.testing.assert_allclose(retarget_to_target_skeleton(retargeted), retargeted, atol=1e-12)


def test_features_ignore_where_the_motion_starts_and_faces() -> None:
    joints = synthetic_joints(60)
    turn = quat_from_axis_angle(np.array([0.0, 1.0, 0.0]), 2.3)
    moved = qrot(turn, joints) + np.array([3.0, 0.5, -2.0])
    np.testing.assert_allclose(features_from_joints(moved), features_from_joints(joints), atol=1e-5)


def test_feature_groups_hold_what_they_should() -> None:
    joints = synthetic_joints(60)
    features = features_from_joints(joints)
    rot6d = features[:, FEATURE_SLICES.rot6d].reshape(-1, 21, 2, 3).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(rot6d, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose((rot6d[..., 0, :] * rot6d[..., 1, :]).sum(-1), 0.0, atol=1e-6)
    assert set(np.unique(features[:, FEATURE_SLICES.foot_contact])) <= {0.0, 1.0}
    recovered = joints_from_features(features)
    assert recovered[:, :, 1].min() == pytest.approx(0.0, abs=1e-6)  # on the floor
    np.testing.assert_allclose(recovered[0, 0, [0, 2]], 0.0)


def test_foot_contacts_follow_the_threshold() -> None:
    still = np.repeat(synthetic_joints(1), 10, axis=0)
    assert np.all(features_from_joints(still)[:, FEATURE_SLICES.foot_contact] == 1.0)
    assert np.all(features_from_joints(still, feet_threshold=0.0)[:, FEATURE_SLICES.foot_contact] == 0.0)


def test_features_without_retargeting_keep_the_bone_lengths() -> None:
    joints = synthetic_joints(40, scale=0.9)
    recovered = joints_from_features(features_from_joints(joints, uniform_skeleton=False))
    assert np.abs(bone_lengths(recovered.astype(np.float64)) - REFERENCE_BONE_LENGTHS * 0.9).max() < 1e-5


def test_joints_from_features_batches_and_torch_agree(reference_dir: Path) -> None:
    features, _ = load_reference(reference_dir)
    batch = np.stack([features, features[::-1].copy()])
    expected = np.stack([joints_from_features(features), joints_from_features(features[::-1].copy())])
    np.testing.assert_allclose(joints_from_features(batch), expected, atol=1e-6)
    from_torch64 = joints_from_features(torch.from_numpy(batch).double())
    assert isinstance(from_torch64, torch.Tensor) and from_torch64.dtype == torch.float64
    np.testing.assert_allclose(from_torch64.numpy(), expected, atol=1e-6)
    from_torch32 = joints_from_features(torch.from_numpy(batch))
    assert from_torch32.dtype == torch.float32 and from_torch32.shape == (2, len(features), 22, 3)
    np.testing.assert_allclose(from_torch32.numpy(), expected, atol=1e-4)


def test_joints_from_features_is_differentiable() -> None:
    features = torch.zeros(5, 263, dtype=torch.float64, requires_grad=True)
    joints_from_features(features).sum().backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()


def test_wrong_shapes_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"\(T\+1, 22, 3\)"):
        features_from_joints(np.zeros((10, 24, 3)))
    with pytest.raises(ValueError, match=r"\(T\+1, 22, 3\)"):
        features_from_joints(np.zeros((1, 22, 3)))
    with pytest.raises(ValueError, match="NaN"):
        features_from_joints(np.full((5, 22, 3), np.nan))
    with pytest.raises(ValueError, match=r"\(\.\.\., T, 263\)"):
        joints_from_features(np.zeros((10, 262)))
    with pytest.raises(ValueError, match=r"\(\.\.\., T, 263\)"):
        joints_from_features(torch.zeros(263))
    with pytest.raises(ValueError, match=r"\(T, 263\)"):
        source_joints_from_features(np.zeros((2, 5, 263)))
