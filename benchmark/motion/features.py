"""The 263-d HumanML3D features: extraction from joint positions and recovery of the positions.

`features_from_joints` reproduces HumanML3D's `process_file(positions, 0.002)`: T+1 frames of joints give
T frames of features. `joints_from_features` is its inverse `recover_from_ric` (T frames to T frames);
`source_joints_from_features` also restores frame T+1 from the last velocities, so that extracting features
from its output gives the same features back.

    >>> import numpy as np
    >>> joints = np.load("new_joints/012314.npy")             # (170, 22, 3), already processed
    >>> features = features_from_joints(joints)               # (169, 263) float32
    >>> bool(np.abs(joints_from_features(features) - joints[:-1]).max() < 1e-4)
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from benchmark.motion.kinematics import forward_kinematics, inverse_kinematics
from benchmark.motion.quaternion import cont6d_from_matrix, qbetween, qinv, qmul, qrot, quat_to_matrix
from benchmark.motion.skeleton import (
    FACE_JOINTS,
    FEATURE_DIM,
    FEATURE_SLICES,
    FOOT_JOINTS_LEFT,
    FOOT_JOINTS_RIGHT,
    LEG_JOINTS,
    NUM_JOINTS,
    REFERENCE_BONE_LENGTHS,
    bone_lengths,
    target_offsets,
)

if TYPE_CHECKING:
    import torch

ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")

DEFAULT_FEET_THRESHOLD = 0.002
"""Squared frame-to-frame displacement (m^2) below which a foot joint counts as in contact."""


def retarget_to_target_skeleton(joints: np.ndarray) -> np.ndarray:
    """Give joints (T, 22, 3) the target skeleton's bone lengths, keeping the bone directions; the root
    trajectory is scaled by the ratio of the right-leg lengths (target over frame 0 of the source)."""
    leg_bones = [joint - 1 for joint in LEG_JOINTS]  # bone_lengths() starts at joint 1
    scale = REFERENCE_BONE_LENGTHS[leg_bones].sum() / bone_lengths(joints[0])[leg_bones].sum()
    rotations = inverse_kinematics(joints, smooth_forward=False)
    return forward_kinematics(rotations, joints[:, 0] * scale, target_offsets())


def _face_z(joints: np.ndarray) -> np.ndarray:
    """Rotate every frame about Y so that frame 0 faces +Z (from its hips and shoulders)."""
    right_hip, left_hip, right_shoulder, left_shoulder = FACE_JOINTS
    first = joints[0]
    across = (first[right_hip] - first[left_hip]) + (first[right_shoulder] - first[left_shoulder])
    forward = np.cross([0.0, 1.0, 0.0], across / np.linalg.norm(across))
    forward = forward / np.linalg.norm(forward)
    return qrot(qbetween(forward, np.array([0.0, 0.0, 1.0])), joints)


def _foot_contacts(joints: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    squared_step = ((joints[1:] - joints[:-1]) ** 2).sum(-1)
    left = squared_step[:, list(FOOT_JOINTS_LEFT)] < threshold
    right = squared_step[:, list(FOOT_JOINTS_RIGHT)] < threshold
    return left.astype(np.float64), right.astype(np.float64)


def features_from_joints(
    joints: np.ndarray, feet_threshold: float = DEFAULT_FEET_THRESHOLD, uniform_skeleton: bool = True
) -> np.ndarray:
    """Features (T, 263) float32 from joint positions (T+1, 22, 3) in metres, Y up.

    With `uniform_skeleton=False` the motion keeps its own bone lengths (the original always retargets).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or joints.shape[0] < 2:
        raise ValueError(f"joints must have shape (T+1, 22, 3) with T+1 >= 2 frames, got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain NaN or infinite values")
    positions = retarget_to_target_skeleton(joints) if uniform_skeleton else joints
    positions = positions - np.array([0.0, positions[..., 1].min(), 0.0])  # floor at y = 0
    positions = positions - positions[0, 0] * np.array([1.0, 0.0, 1.0])  # root of frame 0 at x = z = 0
    positions = _face_z(positions)
    feet_left, feet_right = _foot_contacts(positions, feet_threshold)

    rotations = inverse_kinematics(positions, smooth_forward=True)
    root_rotation = rotations[:, 0]
    rot6d = cont6d_from_matrix(quat_to_matrix(rotations[:, 1:]))

    # Root yaw velocity: the y component of the relative rotation, through arcsin. Quirk of the original,
    # kept for compatibility: it ignores w, so a facing crossing +-180 degrees gets the wrong sign.
    relative = qmul(root_rotation[1:], qinv(root_rotation[:-1]))
    root_rot_velocity = np.arcsin(np.clip(relative[:, 2], -1.0, 1.0))
    # Root displacement rotated by the *next* frame's root rotation (as recover_from_ric expects).
    root_velocity = qrot(root_rotation[1:], positions[1:, 0] - positions[:-1, 0])

    relative_positions = positions - positions[:, :1] * np.array([1.0, 0.0, 1.0])
    ric = qrot(root_rotation[:, None], relative_positions)
    local_velocity = qrot(root_rotation[:-1, None], positions[1:] - positions[:-1])

    frames = len(positions) - 1
    return np.concatenate(
        [
            root_rot_velocity[:, None],
            root_velocity[:, [0, 2]],
            positions[:-1, 0, 1:2],
            ric[:-1, 1:].reshape(frames, -1),
            rot6d[:-1].reshape(frames, -1),
            local_velocity.reshape(frames, -1),
            feet_left,
            feet_right,
        ],
        axis=-1,
    ).astype(np.float32)


def _unrotate_yaw(x: ArrayT, z: ArrayT, cos: ArrayT, sin: ArrayT) -> tuple[ArrayT, ArrayT]:
    """Apply the inverse of a root rotation (a turn of `yaw` about Y; cos, sin of it) to vectors (x, ., z)."""
    return cos * x - sin * z, sin * x + cos * z


def joints_from_features(features: ArrayT) -> ArrayT:
    """Joint positions (..., T, 22, 3) from features (..., T, 263) (HumanML3D's `recover_from_ric`).

    numpy input is computed in float64 and returned as float32; a torch tensor stays a tensor of its
    dtype and device (and differentiable).
    """
    if features.ndim < 2 or features.shape[-1] != FEATURE_DIM:
        raise ValueError(f"features must have shape (..., T, 263), got {tuple(features.shape)}")
    is_numpy = isinstance(features, np.ndarray)
    xp: Any = np if is_numpy else importlib.import_module("torch")  # same calls on both, torch on demand
    data = features.astype(np.float64) if is_numpy else features

    # The stored yaw velocity is a half angle (it comes from quaternion components): the root rotation
    # (cos a, 0, sin a, 0) is a turn of 2a about Y. Frame t accumulates the velocities of frames < t.
    half_yaw_velocity = data[..., FEATURE_SLICES.root_rot_velocity.start]
    yaw = 2 * (half_yaw_velocity.cumsum(-1) - half_yaw_velocity)
    cos, sin = xp.cos(yaw), xp.sin(yaw)

    # Root: the velocity of frame t-1 is expressed in frame t's root frame; positions start at x = z = 0.
    step_x, step_z = _unrotate_yaw(data[..., :-1, 1], data[..., :-1, 2], cos[..., 1:], sin[..., 1:])
    zero = xp.zeros_like(data[..., :1, 0])
    root_x = xp.concatenate([zero, step_x.cumsum(-1)], -1)
    root_z = xp.concatenate([zero, step_z.cumsum(-1)], -1)
    root_y = data[..., FEATURE_SLICES.root_height.start]

    ric = data[..., FEATURE_SLICES.ric]
    ric = ric.reshape(ric.shape[:-1] + (NUM_JOINTS - 1, 3))
    x, z = _unrotate_yaw(ric[..., 0], ric[..., 2], cos[..., None], sin[..., None])
    others = xp.stack([x + root_x[..., None], ric[..., 1], z + root_z[..., None]], -1)
    root = xp.stack([root_x, root_y, root_z], -1)
    joints = xp.concatenate([root[..., None, :], others], -2)
    return joints.astype(np.float32) if is_numpy else joints


def source_joints_from_features(features: np.ndarray) -> np.ndarray:
    """All T+1 joint frames (T+1, 22, 3) float32 behind features (T, 263): `joints_from_features` plus the
    frame that the last feature frame's local velocities lead to.

    `features_from_joints` of the result gives the features back (frame for frame, to ~1e-5 from float32
    rounding): the last source frame matters to every frame within ~2 sigma of the facing smoothing.
    """
    if not isinstance(features, np.ndarray) or features.ndim != 2 or features.shape[1] != FEATURE_DIM:
        raise ValueError(f"features must be a numpy array of shape (T, 263), got {np.shape(features)}")
    data = features.astype(np.float64)
    joints = joints_from_features(data).astype(np.float64)
    # Velocities p[T] - p[T-1] are stored in the root frame of frame T-1.
    yaw = 2 * data[:-1, FEATURE_SLICES.root_rot_velocity.start].sum()
    velocity = data[-1, FEATURE_SLICES.local_velocity].reshape(NUM_JOINTS, 3)
    x, z = _unrotate_yaw(velocity[:, 0], velocity[:, 2], np.cos(yaw), np.sin(yaw))
    last = joints[-1] + np.stack([x, velocity[:, 1], z], -1)
    return np.concatenate([joints, last[None]]).astype(np.float32)
