"""Quaternion helpers, skeleton constants, forward and inverse kinematics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.motion.kinematics import facing_rotation, forward_kinematics, inverse_kinematics
from benchmark.motion.quaternion import (
    cont6d_from_matrix,
    matrix_from_cont6d,
    matrix_to_quat,
    qbetween,
    qinv,
    qmul,
    qnormalize,
    qrot,
    quat_from_axis_angle,
    quat_to_matrix,
)
from benchmark.motion.skeleton import (
    FEATURE_DIM,
    FEATURE_SLICES,
    JOINT_NAMES,
    KINEMATIC_CHAINS,
    LEFT_JOINTS,
    MIRROR_PERMUTATION,
    NUM_JOINTS,
    PARENTS,
    RAW_OFFSETS,
    REFERENCE_BONE_LENGTHS,
    RIGHT_JOINTS,
    bone_lengths,
    target_offsets,
)

IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


def random_quaternions(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return qnormalize(rng.normal(size=shape + (4,)))


def synthetic_rotations(frames: int, seed: int = 0) -> np.ndarray:
    """Smoothly varying rotations (frames, 22, 4): a turning root and joints swinging up to ~40 degrees."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    axes = rng.normal(size=(NUM_JOINTS, 3))
    angles = 0.7 * np.sin(
        2 * np.pi * t / rng.uniform(20, 60, size=NUM_JOINTS) + rng.uniform(0, 6, NUM_JOINTS)
    )
    rotations = quat_from_axis_angle(axes, angles)
    rotations[:, 0] = quat_from_axis_angle(np.array([0.0, 1.0, 0.0]), 0.02 * t[:, 0] + 0.3)
    return rotations


def synthetic_joints(frames: int, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    root = np.stack([0.01 * np.arange(frames), 0.9 * scale + np.zeros(frames), 0.02 * np.arange(frames)], -1)
    return forward_kinematics(synthetic_rotations(frames, seed), root, target_offsets() * scale)


# --- quaternions --------------------------------------------------------------------------------------------


def test_qmul_identity_inverse_and_associativity() -> None:
    rng = np.random.default_rng(1)
    q, r, s = random_quaternions(rng, 3, 50)
    np.testing.assert_allclose(qmul(q, IDENTITY), q, atol=1e-12)
    np.testing.assert_allclose(qmul(q, qinv(q)), np.broadcast_to(IDENTITY, q.shape), atol=1e-12)
    np.testing.assert_allclose(qmul(qmul(q, r), s), qmul(q, qmul(r, s)), atol=1e-12)


def test_qrot_matches_matrix_and_composition() -> None:
    rng = np.random.default_rng(2)
    q, r = random_quaternions(rng, 2, 40)
    v = rng.normal(size=(40, 3))
    np.testing.assert_allclose(qrot(q, v), np.einsum("nij,nj->ni", quat_to_matrix(q), v), atol=1e-12)
    # q*r applies r first.
    np.testing.assert_allclose(qrot(qmul(q, r), v), qrot(q, qrot(r, v)), atol=1e-12)
    # Broadcasting: one quaternion, many vectors.
    np.testing.assert_allclose(qrot(q[0], v), np.stack([qrot(q[0], x) for x in v]), atol=1e-12)


def test_axis_angle_quarter_turn_about_y() -> None:
    q = quat_from_axis_angle(np.array([0.0, 2.0, 0.0]), np.pi / 2)
    np.testing.assert_allclose(qrot(q, np.array([0.0, 0.0, 1.0])), [1.0, 0.0, 0.0], atol=1e-12)
    assert quat_from_axis_angle(np.ones((5, 3)), np.zeros(5)).shape == (5, 4)


def test_matrix_quaternion_round_trip_including_half_turns() -> None:
    rng = np.random.default_rng(3)
    q = random_quaternions(rng, 200)
    half_turns = np.concatenate([np.zeros((3, 1)), np.eye(3)], axis=-1)  # w = 0: 180 degrees about x, y, z
    q = np.concatenate([q, half_turns])
    back = matrix_to_quat(quat_to_matrix(q))
    assert np.all(back[:, 0] >= 0)
    # q and -q are the same rotation.
    np.testing.assert_allclose(np.abs((back * q).sum(-1)), 1.0, atol=1e-12)
    m = quat_to_matrix(q)
    np.testing.assert_allclose(m @ np.swapaxes(m, -1, -2), np.broadcast_to(np.eye(3), m.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)


def test_cont6d_is_first_two_columns_and_round_trips() -> None:
    m = quat_to_matrix(random_quaternions(np.random.default_rng(4), 30))
    d6 = cont6d_from_matrix(m)
    np.testing.assert_array_equal(d6[:, :3], m[:, :, 0])
    np.testing.assert_array_equal(d6[:, 3:], m[:, :, 1])
    np.testing.assert_allclose(matrix_from_cont6d(d6), m, atol=1e-12)
    np.testing.assert_allclose(matrix_from_cont6d(d6 * 3.0), m, atol=1e-12)


def test_qbetween_maps_directions_including_opposite_ones() -> None:
    rng = np.random.default_rng(5)
    v0 = rng.normal(size=(100, 3))
    v1 = rng.normal(size=(100, 3)) * 4.0
    v1[:3] = -2.0 * v0[:3]  # opposite: the textbook formula is 0/0 there
    q = qbetween(v0, v1)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(unit(qrot(q, v0)), unit(v1), atol=1e-9)
    # Shortest arc: the rotation axis is perpendicular to both vectors.
    np.testing.assert_allclose((q[3:, 1:] * v0[3:]).sum(-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(qbetween(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 5.0])), IDENTITY)


# --- skeleton constants -------------------------------------------------------------------------------------


def test_skeleton_constants_are_consistent() -> None:
    assert len(JOINT_NAMES) == len(PARENTS) == len(RAW_OFFSETS) == NUM_JOINTS == 22
    for chain in KINEMATIC_CHAINS:
        for parent, child in zip(chain[:-1], chain[1:], strict=True):
            assert PARENTS[child] == parent
    children = sorted(j for chain in KINEMATIC_CHAINS for j in chain[1:])
    assert children == list(range(1, NUM_JOINTS))
    for left, right in zip(LEFT_JOINTS, RIGHT_JOINTS, strict=True):
        assert JOINT_NAMES[left].replace("L_", "R_") == JOINT_NAMES[right]
    assert tuple(MIRROR_PERMUTATION[j] for j in MIRROR_PERMUTATION) == tuple(range(NUM_JOINTS))
    np.testing.assert_array_equal(np.linalg.norm(RAW_OFFSETS[1:], axis=-1), 1.0)


def test_constants_are_read_only() -> None:
    for array in (RAW_OFFSETS, REFERENCE_BONE_LENGTHS):
        with pytest.raises(ValueError):
            array[0] = 1.0


def test_feature_slices_tile_the_263_dims() -> None:
    stop = 0
    for group in FEATURE_SLICES:
        assert group.start == stop
        stop = group.stop
    assert stop == FEATURE_DIM == 263
    assert FEATURE_SLICES.ric.stop - FEATURE_SLICES.ric.start == 21 * 3
    assert FEATURE_SLICES.rot6d.stop - FEATURE_SLICES.rot6d.start == 21 * 6


def test_reference_bone_lengths_match_the_reference_motion(reference_dir: Path) -> None:
    joints = np.load(reference_dir / "new_joints" / "012314.npy").astype(np.float64)
    np.testing.assert_allclose(REFERENCE_BONE_LENGTHS, bone_lengths(joints[0]), rtol=1e-5, atol=1e-6)
    # Every frame carries the same skeleton.
    assert np.abs(bone_lengths(joints) - REFERENCE_BONE_LENGTHS).max() < 5e-6


def test_target_offsets_are_directions_times_lengths() -> None:
    offsets = target_offsets()
    assert offsets.shape == (22, 3)
    np.testing.assert_array_equal(offsets[0], 0.0)
    np.testing.assert_allclose(np.linalg.norm(offsets[1:], axis=-1), REFERENCE_BONE_LENGTHS)
    np.testing.assert_allclose(offsets[1:] / REFERENCE_BONE_LENGTHS[:, None], RAW_OFFSETS[1:])


# --- kinematics ---------------------------------------------------------------------------------------------


def test_forward_kinematics_rest_pose() -> None:
    rotations = np.broadcast_to(IDENTITY, (1, 22, 4))
    joints = forward_kinematics(rotations, np.array([[0.0, 1.0, 0.0]]), target_offsets())
    for joint in range(1, NUM_JOINTS):
        np.testing.assert_allclose(joints[0, joint] - joints[0, PARENTS[joint]], target_offsets()[joint])


def test_forward_kinematics_chains_start_from_the_root_rotation() -> None:
    """Rotating bone 9 (spine2 -> spine3) turns the neck and head; the arms only follow joint 9's
    position, their bone directions do not turn (HumanML3D's convention)."""
    rotations = np.tile(IDENTITY, (1, 22, 1))
    rest = forward_kinematics(rotations, np.zeros((1, 3)), target_offsets())
    rotations[0, 9] = quat_from_axis_angle(np.array([1.0, 0.0, 0.0]), 0.5)
    bent = forward_kinematics(rotations, np.zeros((1, 3)), target_offsets())
    relative_change = np.abs((bent - bent[:, 9:10]) - (rest - rest[:, 9:10])).max(axis=(0, 2))
    assert relative_change[[12, 15]].min() > 1e-2
    arms = [13, 14, 16, 17, 18, 19, 20, 21]
    np.testing.assert_allclose(relative_change[arms], 0.0, atol=1e-12)


def test_forward_kinematics_batches() -> None:
    rotations = synthetic_rotations(12)
    root = np.zeros((12, 3))
    single = forward_kinematics(rotations, root, target_offsets())
    batched = forward_kinematics(np.stack([rotations, rotations]), np.stack([root, root]), target_offsets())
    np.testing.assert_allclose(batched, np.stack([single, single]))


@pytest.mark.parametrize("smooth_forward", [False, True])
def test_fk_of_ik_reproduces_a_motion_on_the_target_skeleton(
    reference_dir: Path, smooth_forward: bool
) -> None:
    joints = np.load(reference_dir / "new_joints" / "012314.npy").astype(np.float64)
    rotations = inverse_kinematics(joints, smooth_forward=smooth_forward)
    np.testing.assert_allclose(np.linalg.norm(rotations, axis=-1), 1.0, atol=1e-9)
    again = forward_kinematics(rotations, joints[:, 0], target_offsets())
    # The stored joints are float32 and the reference lengths have 6 digits: ~1e-6.
    assert np.abs(again - joints).max() < 1e-5


def test_fk_of_ik_is_exact_on_a_synthetic_motion() -> None:
    joints = synthetic_joints(60, scale=1.2)
    rotations = inverse_kinematics(joints, smooth_forward=True)
    again = forward_kinematics(rotations, joints[:, 0], target_offsets() * 1.2)
    np.testing.assert_allclose(again, joints, atol=1e-10)


def test_ik_quirks() -> None:
    joints = synthetic_joints(80)
    rotations = inverse_kinematics(joints, smooth_forward=False)
    # Frame 0's root rotation is forced to identity.
    np.testing.assert_array_equal(rotations[0, 0], IDENTITY)
    # The root rotation is a yaw only, and the (quirky) facing direction is turned to +Z.
    np.testing.assert_allclose(rotations[1:, 0, [1, 3]], 0.0, atol=1e-12)
    across = (joints[:, 1] - joints[:, 2]) + (joints[:, 17] - joints[:, 16])
    forward = np.cross([0.0, 1.0, 0.0], across)
    turned = qrot(rotations[1:, 0], forward[1:])
    np.testing.assert_allclose(turned[:, [0, 1]], 0.0, atol=1e-9)
    assert np.all(turned[:, 2] > 0)


def test_smoothing_lags_the_facing_of_a_turning_motion() -> None:
    joints = synthetic_joints(80)
    plain = facing_rotation(joints, smooth_forward=False)
    smooth = facing_rotation(joints, smooth_forward=True)
    assert np.abs(plain[1:] - smooth[1:]).max() > 1e-3  # the root turns, so smoothing lags it
    np.testing.assert_array_equal(smooth[0], IDENTITY)


def test_kinematics_reject_wrong_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(T, 22, 3\)"):
        inverse_kinematics(np.zeros((10, 21, 3)))
    with pytest.raises(ValueError, match=r"\(\.\.\., T, 22, 4\)"):
        forward_kinematics(np.zeros((10, 22, 3)), np.zeros((10, 3)), target_offsets())
    with pytest.raises(ValueError, match=r"\(22, 3\)"):
        forward_kinematics(np.zeros((10, 22, 4)), np.zeros((10, 3)), np.zeros((21, 3)))
    with pytest.raises(ValueError, match="disagree"):
        forward_kinematics(np.zeros((10, 22, 4)), np.zeros((9, 3)), target_offsets())
