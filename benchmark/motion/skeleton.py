"""The HumanML3D skeleton (22 SMPL body joints, Y up, initially facing +Z) and the 263-d feature layout.
Arrays here are read-only; `target_offsets()` returns a fresh one.

    >>> from benchmark.motion.skeleton import FEATURE_SLICES, JOINT_NAMES, PARENTS, target_offsets
    >>> JOINT_NAMES[PARENTS[7]]
    'L_knee'
    >>> target_offsets().shape, FEATURE_SLICES.rot6d
    ((22, 3), slice(67, 193, None))
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def _read_only(values: object) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    array.flags.writeable = False
    return array


NUM_JOINTS = 22
FEATURE_DIM = 263

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "L_hip", "R_hip", "spine1", "L_knee", "R_knee", "spine2", "L_ankle", "R_ankle", "spine3",
    "L_foot", "R_foot", "neck", "L_collar", "R_collar", "head", "L_shoulder", "R_shoulder", "L_elbow",
    "R_elbow", "L_wrist", "R_wrist",
)  # fmt: skip

PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

# The order matters: inverse and forward kinematics walk these chains, each starting from the root rotation.
KINEMATIC_CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11),
    (0, 1, 4, 7, 10),
    (0, 3, 6, 9, 12, 15),
    (9, 14, 17, 19, 21),
    (9, 13, 16, 18, 20),
)

# Unit direction of each joint's offset from its parent in the rest pose (`t2m_raw_offsets`).
RAW_OFFSETS: np.ndarray = _read_only(
    [
        [0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0],
        [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1],
        [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],
    ]
)  # fmt: skip

# Target bone lengths (m) of joints 1..21 (the bone from PARENTS[j] to j), measured on frame 0 of the
# processed reference motion new_joints/012314.npy; every processed HumanML3D motion carries them.
REFERENCE_BONE_LENGTHS: np.ndarray = _read_only(
    [
        0.103074, 0.109883, 0.131568, 0.393623, 0.390188, 0.143190, 0.432433, 0.425643, 0.0573647,
        0.143382, 0.149419, 0.219360, 0.137487, 0.143383, 0.103039, 0.131614, 0.122984, 0.256840,
        0.263092, 0.266012, 0.269876,
    ]
)  # fmt: skip

LEFT_JOINTS: tuple[int, ...] = (1, 4, 7, 10, 13, 16, 18, 20)
RIGHT_JOINTS: tuple[int, ...] = (2, 5, 8, 11, 14, 17, 19, 21)


def _mirror_permutation() -> tuple[int, ...]:
    permutation = list(range(NUM_JOINTS))
    for left, right in zip(LEFT_JOINTS, RIGHT_JOINTS, strict=True):
        permutation[left], permutation[right] = right, left
    return tuple(permutation)


MIRROR_PERMUTATION: tuple[int, ...] = _mirror_permutation()
"""joint j of a mirrored motion is joint MIRROR_PERMUTATION[j] of the original, with x negated."""

FOOT_JOINTS_LEFT: tuple[int, int] = (7, 10)  # L_ankle, L_foot (`fid_l`)
FOOT_JOINTS_RIGHT: tuple[int, int] = (8, 11)  # R_ankle, R_foot (`fid_r`)
FACE_JOINTS: tuple[int, int, int, int] = (2, 1, 17, 16)  # R_hip, L_hip, R_shoulder, L_shoulder
LEG_JOINTS: tuple[int, int] = (5, 8)  # R_knee, R_ankle: their bones give the leg length for rescaling


class FeatureSlices(NamedTuple):
    """The groups of the 263-d HumanML3D feature vector (one frame)."""

    root_rot_velocity: slice = slice(0, 1)
    """Root yaw velocity (half-angle increment, rad/frame)."""
    root_linear_velocity: slice = slice(1, 3)
    """Root (x, z) velocity in the root's frame."""
    root_height: slice = slice(3, 4)
    """Root y."""
    ric: slice = slice(4, 67)
    """Joints 1..21 relative to the root's ground position, in the root's frame (21 x 3)."""
    rot6d: slice = slice(67, 193)
    """Local rotations of joints 1..21 as the first two matrix columns (21 x 6)."""
    local_velocity: slice = slice(193, 259)
    """Velocities of all 22 joints in the root's frame (22 x 3)."""
    foot_contact: slice = slice(259, 263)
    """Contacts of L_ankle, L_foot, R_ankle, R_foot, in {0, 1}."""


FEATURE_SLICES = FeatureSlices()


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Lengths (..., 21) of the bones ending at joints 1..21 of joint positions (..., 22, 3)."""
    parents = np.array(PARENTS[1:])
    return np.linalg.norm(joints[..., 1:, :] - joints[..., parents, :], axis=-1)


def target_offsets() -> np.ndarray:
    """The target skeleton's offsets (22, 3): each joint's raw direction times its reference bone length."""
    lengths = np.concatenate([[0.0], REFERENCE_BONE_LENGTHS])
    return RAW_OFFSETS * lengths[:, None]
