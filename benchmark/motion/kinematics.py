"""Forward and inverse kinematics on the HumanML3D skeleton, in HumanML3D's own convention.

Convention (that of HumanML3D's `Skeleton`, which the 263-d rot6d features encode):
- `rotations[:, 0]` is the root (facing) rotation.
- `rotations[:, j]` for j >= 1 is the rotation of the bone that *ends* at joint j, relative to the
  rotation accumulated before it along its chain; it turns the raw direction `RAW_OFFSETS[j]` into the
  bone's direction.
- Every chain of `KINEMATIC_CHAINS` starts from the root rotation, the arm chains too: the arms do
  not inherit the spine's rotations (rotating joint 9 moves 12 and 15, not 13..21).

So `joints[c[i]] = joints[c[i-1]] + qrot(rotations[:, 0] * rotations[:, c[1]] * ... * rotations[:, c[i]],
offsets[c[i]])` for each chain c.

    >>> from benchmark.motion.skeleton import target_offsets
    >>> rotations = np.zeros((1, 22, 4)); rotations[..., 0] = 1.0       # rest pose, facing +Z
    >>> rest = forward_kinematics(rotations, np.zeros((1, 3)), target_offsets())
    >>> np.allclose(forward_kinematics(inverse_kinematics(rest), rest[:, 0], target_offsets()), rest)
    True
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from benchmark.motion.quaternion import qbetween, qinv, qmul, qnormalize, qrot
from benchmark.motion.skeleton import FACE_JOINTS, KINEMATIC_CHAINS, NUM_JOINTS, RAW_OFFSETS

FORWARD_SMOOTHING_SIGMA = 20.0
"""Gaussian sigma (frames) of the facing smoothing in `inverse_kinematics(..., smooth_forward=True)`."""

_UP = np.array([0.0, 1.0, 0.0])
_FORWARD = np.array([0.0, 0.0, 1.0])


def _check_shape(name: str, array: np.ndarray, tail: tuple[int, ...], expected: str) -> None:
    if array.ndim < len(tail) + 1 or array.shape[-len(tail) :] != tail:
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")


def forward_kinematics(rotations: np.ndarray, root_positions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Joint positions (..., T, 22, 3) from rotations (..., T, 22, 4) in the module's convention,
    root positions (..., T, 3) and skeleton offsets (22, 3) (for example `target_offsets()`)."""
    rotations = np.asarray(rotations, dtype=np.float64)
    root_positions = np.asarray(root_positions, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.float64)
    _check_shape("rotations", rotations, (NUM_JOINTS, 4), "(..., T, 22, 4)")
    _check_shape("root_positions", root_positions, (3,), "(..., T, 3)")
    if offsets.shape != (NUM_JOINTS, 3):
        raise ValueError(f"offsets must have shape (22, 3), got {offsets.shape}")
    if root_positions.shape[:-1] != rotations.shape[:-2]:
        raise ValueError(
            f"root_positions {root_positions.shape} and rotations {rotations.shape} disagree on (..., T)"
        )
    joints = np.zeros(rotations.shape[:-1] + (3,))
    joints[..., 0, :] = root_positions
    for chain in KINEMATIC_CHAINS:
        accumulated = rotations[..., 0, :]
        for parent, child in zip(chain[:-1], chain[1:], strict=True):
            accumulated = qmul(accumulated, rotations[..., child, :])
            joints[..., child, :] = joints[..., parent, :] + qrot(accumulated, offsets[child])
    return joints


def facing_rotation(joints: np.ndarray, smooth_forward: bool) -> np.ndarray:
    """The root rotations (T, 4) of `inverse_kinematics`, turning each frame's facing direction to +Z."""
    right_hip, left_hip, right_shoulder, left_shoulder = FACE_JOINTS
    # Quirk of the original IK, kept for compatibility: it unpacks the face joints in another order, so
    # the hip term is L_hip - R_hip, opposite to the shoulder term; the wider shoulders dominate.
    across = (joints[:, left_hip] - joints[:, right_hip]) + (
        joints[:, right_shoulder] - joints[:, left_shoulder]
    )
    across = across / np.linalg.norm(across, axis=-1, keepdims=True)
    forward = np.cross(_UP, across)
    if smooth_forward:
        forward = gaussian_filter1d(forward, FORWARD_SMOOTHING_SIGMA, axis=0, mode="nearest")
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    root = qbetween(forward, _FORWARD)
    # Quirk of the original IK, kept for compatibility: frame 0's root rotation is forced to identity.
    root[0] = (1.0, 0.0, 0.0, 0.0)
    return root


def inverse_kinematics(joints: np.ndarray, smooth_forward: bool = False) -> np.ndarray:
    """Rotations (T, 22, 4) in the module's convention from joint positions (T, 22, 3).

    Reproduces HumanML3D's `inverse_kinematics_np` with its quirks (see `facing_rotation`); with
    `smooth_forward` the facing direction is smoothed over time (sigma 20 frames) as the feature
    extraction does. Only bone directions are used, so `forward_kinematics` with the same skeleton's
    offsets gives the joints back.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape (T, 22, 3), got {joints.shape}")
    root = facing_rotation(joints, smooth_forward)
    rotations = np.zeros(joints.shape[:-1] + (4,))
    rotations[:, 0] = root
    for chain in KINEMATIC_CHAINS:
        accumulated = root
        for parent, child in zip(chain[:-1], chain[1:], strict=True):
            direction = joints[:, child] - joints[:, parent]
            direction = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
            global_bone = qbetween(RAW_OFFSETS[child], direction)
            local = qmul(qinv(accumulated), global_bone)
            rotations[:, child] = local
            # Renormalised so rounding does not build up along the chain.
            accumulated = qnormalize(qmul(accumulated, local))
    return rotations
