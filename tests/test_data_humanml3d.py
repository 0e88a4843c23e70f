"""HumanML3D-layout reader and writer: round trips, the real reference files, and every error path."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.data.captions import Caption, Token
from benchmark.data.humanml3d import (
    HUMANML3D_DEFAULTS,
    DatasetMetadata,
    DatasetWriter,
    HumanML3DFolder,
    read_labels,
)
from benchmark.data.layout import DatasetLayout, write_split_ids
from benchmark.errors import DataFormatError

WALK = Caption("a person walks forward.", (Token("a", "DET"), Token("person", "NOUN"), Token("walk", "VERB")))
KICK = Caption("a man kicks.", (Token("a", "DET"), Token("man", "NOUN"), Token("kick", "VERB")), 1.0, 2.5)


def _features(frames: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(frames, 263)).astype(np.float32)


def _write_folder(root: Path, ids: list[str], frames: int = 30) -> DatasetLayout:
    """A folder written by hand (not by DatasetWriter), so reader tests do not depend on the writer."""
    layout = DatasetLayout(root)
    for index, motion_id in enumerate(ids):
        layout.features_path(motion_id).parent.mkdir(parents=True, exist_ok=True)
        np.save(layout.features_path(motion_id), _features(frames, index))
        layout.text_path(motion_id).parent.mkdir(parents=True, exist_ok=True)
        layout.text_path(motion_id).write_text(WALK.to_line() + "\n" + KICK.to_line() + "\n")
    write_split_ids(layout.split_path("train"), ids)
    np.save(layout.mean_path, np.zeros(263, np.float32))
    np.save(layout.std_path, np.ones(263, np.float32))
    return layout


def test_reads_real_reference_motion_and_statistics(tmp_path: Path, reference_dir: Path) -> None:
    layout = DatasetLayout(tmp_path / "hml")
    layout.features_dir.mkdir(parents=True)
    layout.texts_dir.mkdir()
    shutil.copy(reference_dir / "new_joint_vecs" / "012314.npy", layout.features_dir)
    shutil.copytree(reference_dir / "new_joints", layout.joints_dir)
    for name in ("Mean.npy", "Std.npy"):
        shutil.copy(reference_dir / name, layout.root)
    layout.text_path("012314").write_text(WALK.to_line() + "\n")
    write_split_ids(layout.split_path("train"), ["012314"])

    folder = HumanML3DFolder(layout.root)
    assert folder.metadata == HUMANML3D_DEFAULTS
    assert folder.ids("train") == ["012314"]
    features = folder.features("012314")
    assert features.shape == (170, 263) and features.dtype == np.float32
    np.testing.assert_array_equal(features, np.load(reference_dir / "new_joint_vecs" / "012314.npy"))
    assert folder.joints("012314").shape == (170, 22, 3)
    std = folder.std()
    # HumanML3D's Std is averaged within each feature group (spec section 6).
    assert std[0] == pytest.approx(0.012826, abs=1e-6)
    assert np.all(std[67:193] == std[67]) and std[67] == pytest.approx(0.299692, abs=1e-6)
    assert folder.mean().shape == (263,)
    assert folder.labels() is None


def test_missing_dataset_json_assumes_humanml3d_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write_folder(tmp_path, ["a"])
    with caplog.at_level(logging.INFO, logger="benchmark.data.humanml3d"):
        folder = HumanML3DFolder(tmp_path)
    assert folder.metadata.fps == 20.0
    assert "no dataset.json" in caplog.text and "HumanML3D" in caplog.text


def test_writer_round_trip(tmp_path: Path) -> None:
    metadata = DatasetMetadata(name="tiny", fps=20.0, source="test", extra={"seed": 3})
    writer = DatasetWriter(tmp_path / "out", metadata)
    arrays = {"000001": _features(40, 1), "M000001": _features(41, 2), "nested/clip": _features(12, 3)}
    joints = np.random.default_rng(0).normal(size=(40, 22, 3)).astype(np.float32)
    writer.add("000001", arrays["000001"], [WALK, KICK], joints=joints, label={"action": "walk"})
    writer.add("M000001", arrays["M000001"], [KICK], label={"id": "M000001", "action": "kick"})
    writer.add("nested/clip", arrays["nested/clip"], [WALK])
    writer.write_splits({"train": ["000001", "M000001"], "test": ["nested/clip"]})
    folder = writer.finish()

    assert folder.metadata == metadata
    assert folder.ids("train") == ["000001", "M000001"]
    assert folder.ids("all") == ["000001", "M000001", "nested/clip"]
    for motion_id, array in arrays.items():
        np.testing.assert_array_equal(folder.features(motion_id), array)
    np.testing.assert_array_equal(folder.joints("000001"), joints)
    assert folder.captions("000001") == [WALK, KICK]
    assert folder.captions("M000001") == [KICK]
    assert folder.labels() == {
        "000001": {"id": "000001", "action": "walk"},
        "M000001": {"id": "M000001", "action": "kick"},
    }
    every_frame = np.concatenate(list(arrays.values()))
    np.testing.assert_allclose(folder.mean(), every_frame.mean(axis=0), atol=1e-5)
    assert folder.std().shape == (263,) and np.all(folder.std() > 0)


def test_writer_refuses_bad_input(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path / "out", DatasetMetadata(name="x", fps=20.0))
    with pytest.raises(DataFormatError, match="263 wide"):
        writer.add("a", np.zeros((10, 262), np.float32), [WALK])
    bad = _features(10, 0)
    bad[3, 7] = np.nan
    with pytest.raises(DataFormatError, match="NaN"):
        writer.add("a", bad, [WALK])
    with pytest.raises(DataFormatError, match="survive"):
        writer.add("a", _features(10, 0), [Caption("a # b", ())])
    with pytest.raises(DataFormatError, match="at least one caption"):
        writer.add("a", _features(10, 0), [])
    with pytest.raises(DataFormatError, match="invalid motion id"):
        writer.add("../escape", _features(10, 0), [WALK])
    with pytest.raises(DataFormatError, match=r"shape \(T>0, 22, 3\)"):
        writer.add("a", _features(10, 0), [WALK], joints=np.zeros((10, 21, 3)))
    with pytest.raises(DataFormatError, match="label id"):
        writer.add("a", _features(10, 0), [WALK], label={"id": "b"})
    writer.add("a", _features(10, 0), [WALK])
    with pytest.raises(DataFormatError, match="already added"):
        writer.add("a", _features(10, 0), [WALK])
    with pytest.raises(DataFormatError, match="never added"):
        writer.write_splits({"train": ["a", "b"]})
    with pytest.raises(DataFormatError, match="unknown split"):
        writer.write_splits({"forget": ["a"]})
    with pytest.raises(DataFormatError, match="not empty"):
        DatasetWriter(tmp_path / "out", DatasetMetadata(name="x", fps=20.0))


def test_missing_folder_is_named(tmp_path: Path) -> None:
    _write_folder(tmp_path, ["a"])
    shutil.rmtree(tmp_path / "texts")
    with pytest.raises(DataFormatError, match="texts: folder is missing"):
        HumanML3DFolder(tmp_path)
    with pytest.raises(DataFormatError, match="nowhere: folder is missing"):
        HumanML3DFolder(tmp_path / "nowhere")


def test_malformed_caption_line_names_file_and_line(tmp_path: Path) -> None:
    layout = _write_folder(tmp_path, ["a"])
    layout.text_path("a").write_text(WALK.to_line() + "\nno hashes here\n")
    with pytest.raises(DataFormatError, match=r"texts/a\.txt:2: expected 4"):
        HumanML3DFolder(tmp_path).captions("a")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((5, 262), np.float32), "263 wide"),
        (np.zeros((5, 263, 1), np.float32), "must be 2-d"),
        (np.zeros((0, 263), np.float32), "no frame"),
        (np.full((5, 263), np.inf, np.float32), "1315 values are NaN or infinite"),
    ],
)
def test_bad_features_name_the_file(tmp_path: Path, array: np.ndarray, message: str) -> None:
    layout = _write_folder(tmp_path, ["a"])
    np.save(layout.features_path("a"), array)
    with pytest.raises(DataFormatError, match=message) as raised:
        HumanML3DFolder(tmp_path).features("a")
    assert raised.value.path == layout.features_path("a")


def test_unreadable_features_file(tmp_path: Path) -> None:
    layout = _write_folder(tmp_path, ["a"])
    layout.features_path("a").write_bytes(b"not numpy")
    with pytest.raises(DataFormatError, match=r"a\.npy: not a readable \.npy"):
        HumanML3DFolder(tmp_path).features("a")


def test_id_missing_on_disk_names_split_file_line_and_id(tmp_path: Path) -> None:
    layout = _write_folder(tmp_path, ["a", "b"])
    write_split_ids(layout.split_path("test"), ["a", "ghost", "b"])
    with pytest.raises(DataFormatError, match=r"test\.txt:2: id 'ghost' is listed but new_joint_vecs/ghost"):
        HumanML3DFolder(tmp_path).ids("test")


def test_skip_mode_logs_the_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    layout = _write_folder(tmp_path, ["a", "b"])
    write_split_ids(layout.split_path("test"), ["a", "ghost", "b", "phantom"])
    with caplog.at_level(logging.WARNING, logger="benchmark.data.humanml3d"):
        ids = HumanML3DFolder(tmp_path).ids("test", missing="skip")
    assert ids == ["a", "b"]
    assert "skipped 2 of 4 ids" in caplog.text and "ghost" in caplog.text


def test_missing_split_file_and_statistics(tmp_path: Path) -> None:
    layout = _write_folder(tmp_path, ["a"])
    folder = HumanML3DFolder(tmp_path)
    assert folder.splits() == ("train",)
    with pytest.raises(DataFormatError, match="val.txt: split file is missing"):
        folder.ids("val")
    np.save(layout.std_path, np.zeros(263, np.float32))
    with pytest.raises(DataFormatError, match=r"Std\.npy: standard deviation must be > 0"):
        folder.std()
    np.save(layout.mean_path, np.zeros(262, np.float32))
    with pytest.raises(DataFormatError, match=r"Mean\.npy: expected shape \(263,\)"):
        folder.mean()
    layout.mean_path.unlink()
    with pytest.raises(DataFormatError, match=r"Mean\.npy: file is missing"):
        folder.mean()


def test_dataset_json_is_read_and_checked(tmp_path: Path) -> None:
    layout = _write_folder(tmp_path, ["a"])
    DatasetMetadata(name="Motion-X", fps=30.0, source="x").write(layout.metadata_path)
    assert HumanML3DFolder(tmp_path).metadata.fps == 30.0
    layout.metadata_path.write_text('{"name": "x",\n "fps": 20, "fsp": 3}')
    with pytest.raises(DataFormatError, match="unknown keys"):
        HumanML3DFolder(tmp_path)
    layout.metadata_path.write_text('{"name": "x",\n "fps": "fast"}')
    with pytest.raises(DataFormatError, match="'fps' has the wrong type"):
        HumanML3DFolder(tmp_path)
    layout.metadata_path.write_text('{"name": "x",\n "fps": -1}')
    with pytest.raises(DataFormatError, match="fps must be a positive"):
        HumanML3DFolder(tmp_path)
    layout.metadata_path.write_text('{"name": "x",\n "fps": }')
    with pytest.raises(DataFormatError, match=r"dataset\.json:2: invalid JSON"):
        HumanML3DFolder(tmp_path)


def test_malformed_labels_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"id": "a", "action": "kick"}\n\n{"action": "walk"}\n')
    with pytest.raises(DataFormatError, match=r"labels\.jsonl:3: record has no string \"id\""):
        read_labels(path)
    path.write_text('{"id": "a"}\n{"id": "a"}\n')
    with pytest.raises(DataFormatError, match=r"labels\.jsonl:2: id 'a' repeats line 1"):
        read_labels(path)
    path.write_text('{"id": "a"}\n{"id": \n')
    with pytest.raises(DataFormatError, match=r"labels\.jsonl:2: invalid JSON"):
        read_labels(path)
    path.write_text(json.dumps(["a"]) + "\n")
    with pytest.raises(DataFormatError, match=r"labels\.jsonl:1: expected a JSON object"):
        read_labels(path)
