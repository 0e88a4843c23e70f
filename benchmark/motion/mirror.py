"""Left/right mirroring of joints, of 263-d features (directly, without recomputing them) and of captions,
as HumanML3D builds its `M…` copies: x is negated and the left and right joints are swapped.

    >>> import numpy as np
    >>> from benchmark.data.captions import parse_caption_line
    >>> features = np.load("new_joint_vecs/012314.npy")
    >>> np.array_equal(mirror_features(mirror_features(features)), features)
    True
    >>> caption = parse_caption_line("Left foot kicks right.#left/ADJ foot/NOUN kick/VERB right/ADV#0.0#0.0")
    >>> mirror_caption(caption).text, mirror_caption(caption).words
    ('Right foot kicks left.', ('right', 'foot', 'kick', 'left'))

In feature space the reflection M = diag(-1, 1, 1) acts on every group: positions and velocities get
x negated, yaw velocities change sign, and a rotation R becomes M R M (quaternion (w, x, y, z) becomes
(w, x, -y, -z)). This is exact for recovered joints: joints_from_features(mirror_features(f)) equals
mirror_joints(joints_from_features(f)). Extracting features from mirrored joints gives the mirrored
features only approximately, because the extraction retargets every motion to the target skeleton,
whose left and right bone lengths differ by up to 7 mm, and scales the root by the *right* leg.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from benchmark.data.captions import Caption
from benchmark.motion.skeleton import FEATURE_DIM, FEATURE_SLICES, MIRROR_PERMUTATION, NUM_JOINTS

_POSITION_SIGN = (-1.0, 1.0, 1.0)
# The first two columns of M R M: column 0 is (R00, -R10, -R20), column 1 is (-R01, R11, R21).
_ROT6D_SIGN = (1.0, -1.0, -1.0, -1.0, 1.0, 1.0)


def _feature_mirror_map() -> tuple[np.ndarray, np.ndarray]:
    """(source index, sign) per feature dim: mirrored[..., i] = features[..., source[i]] * sign[i]."""
    source = np.arange(FEATURE_DIM)
    sign = np.ones(FEATURE_DIM)
    sign[FEATURE_SLICES.root_rot_velocity] = -1.0
    sign[FEATURE_SLICES.root_linear_velocity] = (-1.0, 1.0)  # (x, z) in the root frame

    def per_joint(group: slice, joints: range, width: int, joint_sign: tuple[float, ...]) -> None:
        first = joints.start
        for joint in joints:
            target = group.start + (joint - first) * width
            origin = group.start + (MIRROR_PERMUTATION[joint] - first) * width
            source[target : target + width] = np.arange(origin, origin + width)
            sign[target : target + width] = joint_sign

    per_joint(FEATURE_SLICES.ric, range(1, NUM_JOINTS), 3, _POSITION_SIGN)
    per_joint(FEATURE_SLICES.rot6d, range(1, NUM_JOINTS), 6, _ROT6D_SIGN)
    per_joint(FEATURE_SLICES.local_velocity, range(NUM_JOINTS), 3, _POSITION_SIGN)
    feet = FEATURE_SLICES.foot_contact.start
    source[feet : feet + 4] = (feet + 2, feet + 3, feet, feet + 1)  # [L_ankle, L_foot, R_ankle, R_foot]
    source.flags.writeable = False
    sign.flags.writeable = False
    return source, sign


_FEATURE_SOURCE, _FEATURE_SIGN = _feature_mirror_map()


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """Mirror joint positions (..., 22, 3): x negated, left and right joints swapped."""
    joints = np.asarray(joints)
    if joints.ndim < 2 or joints.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape (..., 22, 3), got {joints.shape}")
    return joints[..., MIRROR_PERMUTATION, :] * np.array(_POSITION_SIGN, dtype=joints.dtype)


def mirror_features(features: np.ndarray) -> np.ndarray:
    """Mirror 263-d features (..., 263) directly, keeping their dtype."""
    features = np.asarray(features)
    if features.ndim < 1 or features.shape[-1] != FEATURE_DIM:
        raise ValueError(f"features must have shape (..., 263), got {features.shape}")
    return features[..., _FEATURE_SOURCE] * _FEATURE_SIGN.astype(features.dtype)


_SIDE_WORD = re.compile(r"\b(left|right)(wards?)?\b", re.IGNORECASE)


def _swap_side(match: re.Match[str]) -> str:
    word = match.group(0)
    side = match.group(1)
    swapped = ("right" if side.lower() == "left" else "left") + word[len(side) :]
    if side.isupper():
        return swapped.upper()
    if side[0].isupper():
        return swapped[0].upper() + swapped[1:]
    return swapped


def swap_sides(text: str) -> str:
    """Swap left <-> right (and leftward(s) <-> rightward(s)) in text, keeping each word's case.

    Like HumanML3D's mirrored captions this is purely lexical: "right away" becomes "left away".
    """
    return _SIDE_WORD.sub(_swap_side, text)


def mirror_caption(caption: Caption) -> Caption:
    """The caption of the mirrored motion: left and right swapped in its text and its tokens."""
    tokens = tuple(replace(token, word=swap_sides(token.word)) for token in caption.tokens)
    return replace(caption, text=swap_sides(caption.text), tokens=tokens)
