"""Motion-X in its 263-d body-only form: reading, conversion from the 623-d "tomato" vector, resampling.

Motion-X motions come at 30 fps. A Motion-X 263-d folder has the HumanML3D layout with subset-prefixed ids
(`humanml/000021`, `idea400/subset_0022/clip`) naming nested files (`new_joint_vecs/humanml/000021.npy`).
`resample_dataset` turns it into a 20 fps folder, so that models and the evaluator see HumanML3D's frame rate.

    folder = open_motionx("dataset/Motion-X")                    # fps 30 unless dataset.json says otherwise
    body = body_only_from_tomato(np.load("tomato/humanml/000021.npy"))          # (T, 623) -> (T, 263)
    resampled = resample_dataset(folder, "dataset/Motion-X-20fps", target_fps=20.0)
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmark.data.humanml3d import (
    DatasetMetadata,
    DatasetWriter,
    HumanML3DFolder,
    MissingPolicy,
    check_features,
)
from benchmark.errors import DataFormatError
from benchmark.motion.features import features_from_joints, joints_from_features, source_joints_from_features
from benchmark.motion.skeleton import FEATURE_DIM

logger = logging.getLogger(__name__)

MOTIONX_FPS = 30.0

MOTIONX_DEFAULTS = DatasetMetadata(
    name="Motion-X",
    fps=MOTIONX_FPS,
    source="Motion-X 263-d body-only layout without dataset.json: Motion-X defaults assumed",
)
"""What a Motion-X folder without `dataset.json` is taken to be."""

STRAY_TOLERANCE = 0.01
"""Metres a resampled motion's decoded joints may stray from the interpolated ones before it is reported."""

TOMATO_DIM = 623
"""Width of Motion-X's "tomato" vector: 4 + 51*3 + 51*6 + 52*3 + 4 for 52 joints (22 body + 30 hand)."""


def _tomato_body_dims() -> np.ndarray:
    """Indices of the 263 body-only dims in the 623-d vector (spec section 7)."""
    ric_end = 4 + 51 * 3
    rot_end = ric_end + 51 * 6
    return np.concatenate(
        [
            np.arange(0, 4 + 21 * 3),  # root (4) + ric of body joints 1..21
            np.arange(ric_end, ric_end + 21 * 6),  # rot6d of body joints 1..21
            np.arange(rot_end, rot_end + 22 * 3),  # velocities of body joints 0..21
            np.arange(TOMATO_DIM - 4, TOMATO_DIM),  # foot contacts
        ]
    )


def body_only_from_tomato(vectors: np.ndarray) -> np.ndarray:
    """The 263-d HumanML3D-layout vectors (..., 263) from Motion-X tomato vectors (..., 623)."""
    if vectors.shape[-1] != TOMATO_DIM:
        raise ValueError(f"tomato vectors must be {TOMATO_DIM} wide, got shape {vectors.shape}")
    return vectors[..., _tomato_body_dims()]


def open_motionx(root: Path | str) -> HumanML3DFolder:
    """A Motion-X 263-d folder (30 fps unless its dataset.json says otherwise)."""
    return HumanML3DFolder(root, default_metadata=MOTIONX_DEFAULTS)


def resample_features(features: np.ndarray, source_fps: float, target_fps: float) -> np.ndarray:
    """Features (T, 263) at `source_fps` to (floor(T * target_fps / source_fps), 263) at `target_fps`.

    Done on joint positions: recover the T joint frames, add frame T from the last velocities (so the
    result covers the same T / source_fps seconds), interpolate positions linearly at the new frame
    times, and extract features again. Bone lengths are kept (no retargeting to HumanML3D's skeleton),
    and foot contacts are recomputed with the per-frame threshold at the new rate. Equal rates return a copy.
    """
    return _resample(features, source_fps, target_fps)[0]


def _resample(features: np.ndarray, source_fps: float, target_fps: float) -> tuple[np.ndarray, float]:
    """`resample_features` and how far (m) the new features' joints stray from the interpolated ones.

    The stray is ~0 unless the extraction hit HumanML3D's yaw-velocity quirk (a facing crossing 180
    degrees), which makes the features decode to a wrongly turned motion.
    """
    if not (source_fps > 0 and target_fps > 0):
        raise ValueError(f"frame rates must be positive, got {source_fps} and {target_fps}")
    features = check_features(np.asarray(features), "<features>", FEATURE_DIM)
    if source_fps == target_fps:
        return features.copy(), 0.0
    frames = len(features)
    out_frames = math.floor(frames * target_fps / source_fps + 1e-9)
    if out_frames < 1:
        raise ValueError(f"{frames} frame(s) at {source_fps:g} fps give no frame at {target_fps:g} fps")
    joints = source_joints_from_features(features).astype(np.float64)  # frames 0..T

    times = np.minimum(np.arange(out_frames + 1) * (source_fps / target_fps), frames)  # in source frames
    before = np.minimum(np.floor(times).astype(int), frames - 1)
    weight = (times - before)[:, None, None]
    positions = (1 - weight) * joints[before] + weight * joints[before + 1]
    resampled = features_from_joints(positions, uniform_skeleton=False)
    return resampled, _rigid_residual(joints_from_features(resampled), positions[:-1])


def _rigid_residual(moved: np.ndarray, reference: np.ndarray) -> float:
    """Largest joint distance (m) left after the best turn about Y plus shift maps `moved` onto `reference`.

    Feature extraction floors, centres and turns a motion to face +Z: a rigid motion that this ignores.
    """
    a = moved.reshape(-1, 3).astype(np.float64)
    b = reference.reshape(-1, 3)
    a_xz, b_xz = a[:, [0, 2]] - a[:, [0, 2]].mean(0), b[:, [0, 2]] - b[:, [0, 2]].mean(0)
    u, _, vt = np.linalg.svd(a_xz.T @ b_xz)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        rotation = u @ np.diag([1.0, -1.0]) @ vt
    error_xz = a_xz @ rotation - b_xz
    error_y = (a[:, 1] - a[:, 1].mean()) - (b[:, 1] - b[:, 1].mean())
    return float(np.sqrt((error_xz**2).sum(-1) + error_y**2).max())


def resample_dataset(
    source: HumanML3DFolder,
    target: Path | str,
    target_fps: float = 20.0,
    missing: MissingPolicy = "error",
    progress: bool = False,
) -> HumanML3DFolder:
    """Write a copy of `source` at `target_fps`: every motion of its split files, resampled; the same
    captions (their segment times are in seconds, so they stay valid), labels and splits; new Mean/Std.

    Motions too short to give one frame at the new rate are left out, and motions whose new features decode
    to joints straying from the interpolated ones are kept; both are counted in a WARNING.
    """
    splits = {name: source.ids(name, missing=missing) for name in source.splits()}
    if not splits:
        raise DataFormatError(source.root, "no split file (train.txt, test.txt, ...) to resample")
    motion_ids = list(dict.fromkeys(motion_id for ids in splits.values() for motion_id in ids))
    source_fps = source.metadata.fps
    metadata = dataclasses.replace(
        source.metadata,
        fps=float(target_fps),
        source=f"{source.metadata.source} | resampled from {source_fps:g} to {target_fps:g} fps",
        extra={**source.metadata.extra, "resampled_from": str(source.root), "source_fps": source_fps},
    )
    labels = source.labels() or {}
    writer = DatasetWriter(target, metadata)
    too_short: list[str] = []
    strayed: list[str] = []
    for motion_id in tqdm(motion_ids, desc=f"resampling to {target_fps:g} fps", disable=not progress):
        features = source.features(motion_id)
        if math.floor(len(features) * target_fps / source_fps + 1e-9) < 1:
            too_short.append(motion_id)
            continue
        resampled, stray = _resample(features, source_fps, target_fps)
        if stray > STRAY_TOLERANCE:
            strayed.append(motion_id)
        writer.add(motion_id, resampled, source.captions(motion_id), label=labels.get(motion_id))
    if too_short:
        logger.warning(
            "left out %d of %d motions too short for one frame at %g fps (first: %s)",
            len(too_short),
            len(motion_ids),
            target_fps,
            ", ".join(too_short[:5]),
        )
    if strayed:
        logger.warning(
            "%d of %d resampled motions decode more than %g m away from their interpolated joints "
            "(HumanML3D's yaw-velocity quirk at a 180-degree facing; kept as extracted; first: %s)",
            len(strayed),
            len(motion_ids),
            STRAY_TOLERANCE,
            ", ".join(strayed[:5]),
        )
    dropped = set(too_short)
    writer.write_splits({name: [i for i in ids if i not in dropped] for name, ids in splits.items()})
    return writer.finish()
