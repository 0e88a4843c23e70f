"""Motion-X 263-d: nested ids, the tomato-to-body slicing, and resampling 30 fps to 20 fps via joints."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from benchmark.data.captions import Caption, Token
from benchmark.data.humanml3d import DatasetMetadata, DatasetWriter
from benchmark.data.layout import write_split_ids
from benchmark.data.motionx import (
    MOTIONX_DEFAULTS,
    TOMATO_DIM,
    body_only_from_tomato,
    open_motionx,
    resample_dataset,
    resample_features,
)
from benchmark.errors import DataFormatError
from benchmark.motion.features import features_from_joints
from benchmark.motion.skeleton import FEATURE_SLICES

PLAY = Caption("a person plays the erhu.", (Token("person", "NOUN"), Token("play", "VERB")))
TURN = Caption("a person turns around.", (Token("person", "NOUN"), Token("turn", "VERB")), 0.5, 2.0)


def _interpolate(joints: np.ndarray, source_fps: float, target_fps: float) -> np.ndarray:
    """Joint positions linearly interpolated at the target rate over the source's time span."""
    frames = len(joints)
    times = np.arange(int((frames - 1) * target_fps / source_fps) + 1) * (source_fps / target_fps)
    before = np.minimum(np.floor(times).astype(int), frames - 2)
    weight = (times - before)[:, None, None]
    return (1 - weight) * joints[before] + weight * joints[before + 1]


@pytest.fixture(scope="module")
def reference_joints(reference_dir: Path) -> np.ndarray:
    """Frames 40.. of the real 012314 (its first 40 frames hold a fast half turn, see the stray test)."""
    return np.load(reference_dir / "new_joints" / "012314.npy").astype(np.float64)[40:]


def test_body_only_slicing_of_tomato_vectors() -> None:
    frames = np.arange(3)[:, None] * 1000
    tomato = (np.arange(TOMATO_DIM)[None] + frames).astype(np.float64)  # each value encodes its index
    body = body_only_from_tomato(tomato)
    expected = np.concatenate(
        [np.arange(0, 67), np.arange(157, 157 + 126), np.arange(463, 463 + 66), np.arange(619, 623)]
    )
    assert body.shape == (3, 263)
    np.testing.assert_array_equal(body, expected[None] + frames)
    # The groups land where HumanML3D's layout has them: ric of joint 1 right after the root block ...
    np.testing.assert_array_equal(body[0, FEATURE_SLICES.ric][:3], [4, 5, 6])
    # ... the 6D rotations start at the tomato rot6d block, the velocities at its velocity block.
    assert body[0, FEATURE_SLICES.rot6d.start] == 4 + 51 * 3
    assert body[0, FEATURE_SLICES.local_velocity.start] == 4 + 51 * 9
    with pytest.raises(ValueError, match="623 wide"):
        body_only_from_tomato(np.zeros((3, 263)))


def test_reads_nested_subset_ids_at_30_fps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ids = ["humanml/000021", "idea400/subset_0022/Play_Erhu_clip1"]
    root = tmp_path / "Motion-X"
    for index, motion_id in enumerate(ids):
        (root / "new_joint_vecs" / motion_id).parent.mkdir(parents=True, exist_ok=True)
        np.save(root / "new_joint_vecs" / f"{motion_id}.npy", np.full((45, 263), index, np.float32))
        (root / "texts" / motion_id).parent.mkdir(parents=True, exist_ok=True)
        (root / "texts" / f"{motion_id}.txt").write_text(PLAY.to_line() + "\n")
    write_split_ids(root / "test.txt", ids)
    with caplog.at_level(logging.INFO, logger="benchmark.data.humanml3d"):
        folder = open_motionx(root)
    assert folder.metadata == MOTIONX_DEFAULTS and folder.metadata.fps == 30.0
    assert "assuming Motion-X defaults" in caplog.text
    assert folder.ids("test") == ids
    assert folder.features(ids[1])[0, 0] == 1.0
    assert folder.captions(ids[0]) == [PLAY]
    write_split_ids(root / "val.txt", ["humanml/../../outside"])
    with pytest.raises(DataFormatError, match=r"val\.txt:1: invalid motion id"):
        folder.ids("val")


def test_resampling_30_to_20_fps_recovers_the_20_fps_features(reference_joints: np.ndarray) -> None:
    original = features_from_joints(reference_joints)  # (129, 263) at 20 fps
    at_30 = features_from_joints(_interpolate(reference_joints, 20.0, 30.0))  # the same motion at 30 fps
    resampled = resample_features(at_30, source_fps=30.0, target_fps=20.0)

    assert at_30.shape == (193, 263) and resampled.shape == (128, 263)  # floor(193 * 20 / 30)
    error = np.abs(resampled - original[: len(resampled)])
    # Measured max errors: 4.3e-4, 3.4e-3, 3.9e-3, 1.3e-2, 1.3e-2 (in order below); rot6d mean 1.3e-3
    # (max 6.7e-2); 1.2 % of foot contacts flip. The cause is the corner cutting of interpolating twice.
    for group, tolerance in [
        ("root_rot_velocity", 1e-3),
        ("root_linear_velocity", 5e-3),
        ("root_height", 5e-3),
        ("ric", 2e-2),
        ("local_velocity", 2e-2),
    ]:
        assert error[:, getattr(FEATURE_SLICES, group)].max() < tolerance, group
    assert error[:, FEATURE_SLICES.rot6d].mean() < 3e-3
    assert error[:, FEATURE_SLICES.foot_contact].mean() < 0.03


def test_resampling_up_and_back_down_is_exact(reference_joints: np.ndarray) -> None:
    """20 -> 40 -> 20 fps samples the original frames again, even the last one, kept only as velocities."""
    original = features_from_joints(reference_joints)
    doubled = resample_features(original, 20.0, 40.0)
    back = resample_features(doubled, 40.0, 20.0)
    assert doubled.shape == (258, 263) and back.shape == original.shape
    np.testing.assert_allclose(back, original, atol=2e-5)


def test_resampling_edge_cases(reference_joints: np.ndarray) -> None:
    features = features_from_joints(reference_joints[:10])
    same = resample_features(features, 20.0, 20.0)
    np.testing.assert_array_equal(same, features)
    assert same is not features
    with pytest.raises(ValueError, match="give no frame at 20 fps"):
        resample_features(features[:1], 30.0, 20.0)
    with pytest.raises(ValueError, match="positive"):
        resample_features(features, 0.0, 20.0)
    with pytest.raises(DataFormatError, match="263 wide"):
        resample_features(features[:, :262], 30.0, 20.0)


def test_resample_dataset_writes_a_20_fps_folder(
    tmp_path: Path, reference_joints: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    source_metadata = DatasetMetadata(name="Motion-X", fps=30.0, source="test")
    writer = DatasetWriter(tmp_path / "mx30", source_metadata)
    at_30 = features_from_joints(_interpolate(reference_joints, 20.0, 30.0))
    writer.add("humanml/000001", at_30, [PLAY, TURN], label={"action": "turn"})
    writer.add("humanml/000002", at_30[:90], [PLAY])
    writer.add("idea400/short", at_30[:1], [PLAY])
    writer.write_splits({"train": ["humanml/000001", "idea400/short"], "test": ["humanml/000002"]})
    source = writer.finish()

    with caplog.at_level(logging.WARNING, logger="benchmark.data.motionx"):
        target = resample_dataset(source, tmp_path / "mx20", target_fps=20.0)
    assert "left out 1 of 3 motions too short" in caplog.text and "idea400/short" in caplog.text
    assert target.metadata.fps == 20.0 and target.metadata.name == "Motion-X"
    assert target.metadata.extra["source_fps"] == 30.0
    assert target.ids("train") == ["humanml/000001"]
    assert target.ids("test") == ["humanml/000002"]
    assert target.ids("all") == ["humanml/000001", "humanml/000002"]
    np.testing.assert_array_equal(target.features("humanml/000001"), resample_features(at_30, 30.0, 20.0))
    assert target.features("humanml/000002").shape == (60, 263)
    assert target.captions("humanml/000001") == [PLAY, TURN]  # segment times are seconds: unchanged
    assert target.labels() == {"humanml/000001": {"id": "humanml/000001", "action": "turn"}}
    assert target.std().shape == (263,)


def test_resampling_reports_motions_hit_by_the_yaw_quirk(
    tmp_path: Path, reference_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The real 012314 starts with a fast half turn: extracted at 30 fps its smoothed facing crosses 180
    degrees, and HumanML3D's arcsin yaw velocity then decodes to a wrongly turned motion. It is reported."""
    writer = DatasetWriter(tmp_path / "hml", DatasetMetadata(name="HumanML3D", fps=20.0))
    writer.add("012314", np.load(reference_dir / "new_joint_vecs" / "012314.npy"), [TURN])
    writer.write_splits({"train": ["012314"]})
    with caplog.at_level(logging.WARNING, logger="benchmark.data.motionx"):
        resample_dataset(writer.finish(), tmp_path / "hml30", target_fps=30.0)
    assert "1 of 1 resampled motions decode more than 0.01 m away" in caplog.text
