"""Read and write motion datasets in the HumanML3D folder layout (see `benchmark.data.layout`).

`HumanML3DFolder` opens a folder (the real HumanML3D, a Motion-X 263-d folder, a generated or resampled one)
and returns validated arrays; `DatasetWriter` writes the same layout, computing `Mean.npy`/`Std.npy` the
HumanML3D way when it finishes. Every bad file raises `DataFormatError` naming the file (and line).

    folder = HumanML3DFolder("dataset/HumanML3D")
    for motion_id in folder.ids("test"):
        features = folder.features(motion_id)      # (T, 263) float32
        captions = folder.captions(motion_id)      # list[Caption]

    writer = DatasetWriter("out/tiny", DatasetMetadata(name="tiny", fps=20.0))
    writer.add("000001", features, captions)
    writer.write_splits({"train": ["000001"]})
    folder = writer.finish()                       # writes Mean/Std, dataset.json, all.txt
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmark.data.captions import Caption, parse_caption_line, read_captions, write_captions
from benchmark.data.layout import SPLIT_NAMES, DatasetLayout, read_split_ids, write_split_ids
from benchmark.errors import DataFormatError
from benchmark.motion.skeleton import FEATURE_DIM
from benchmark.motion.stats import feature_statistics

logger = logging.getLogger(__name__)

JOINTS_SHAPE: tuple[int, int] = (22, 3)
"""Per-frame shape of `new_joints/<id>.npy` (the 22 SMPL body joints, xyz)."""

MissingPolicy = Literal["error", "skip"]


@dataclass(frozen=True)
class DatasetMetadata:
    """What `dataset.json` records about a dataset folder."""

    name: str
    """Short name, e.g. "HumanML3D", "Motion-X", "hmu-generated"."""
    fps: float
    """Frames per second of the features (20 for HumanML3D, 30 for Motion-X as released)."""
    feature_dim: int = FEATURE_DIM
    """Width of every feature vector (263 for the HumanML3D representation)."""
    source: str = ""
    """Where the data came from (dataset release, generator and seed, conversion steps)."""
    description: str = ""
    """Free text for people."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Free-form JSON-compatible details a producer wants to keep (e.g. the generator's parameters)."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("dataset name must not be empty")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive number, got {self.fps!r}")
        if self.feature_dim <= 0:
            raise ValueError(f"feature_dim must be positive, got {self.feature_dim!r}")
        try:
            json.dumps(dict(self.extra))
        except (TypeError, ValueError) as error:
            raise ValueError(f"extra must hold JSON values only: {error}") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fps": self.fps,
            "feature_dim": self.feature_dim,
            "source": self.source,
            "description": self.description,
            "extra": dict(self.extra),
        }

    @classmethod
    def read(cls, path: Path | str) -> DatasetMetadata:
        """Parse a `dataset.json`; unknown keys and wrong types are errors (typos must not pass silently)."""
        path = Path(path)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataFormatError(path, "metadata file is missing") from None
        except json.JSONDecodeError as error:
            raise DataFormatError(path, f"invalid JSON: {error.msg}", error.lineno) from None
        if not isinstance(record, dict):
            raise DataFormatError(path, "expected a JSON object")
        kinds: dict[str, tuple[type, ...]] = {
            "name": (str,),
            "fps": (int, float),
            "feature_dim": (int,),
            "source": (str,),
            "description": (str,),
            "extra": (dict,),
        }
        unknown = sorted(set(record) - set(kinds))
        if unknown:
            raise DataFormatError(path, f"unknown keys {unknown}; known keys are {sorted(kinds)}")
        for key in ("name", "fps"):
            if key not in record:
                raise DataFormatError(path, f"required key {key!r} is missing")
        for key, value in record.items():
            if isinstance(value, bool) or not isinstance(value, kinds[key]):
                raise DataFormatError(path, f"key {key!r} has the wrong type ({type(value).__name__})")
        try:
            return cls(**{**record, "fps": float(record["fps"])})
        except ValueError as error:
            raise DataFormatError(path, str(error)) from None

    def write(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")


HUMANML3D_DEFAULTS = DatasetMetadata(
    name="HumanML3D",
    fps=20.0,
    source="HumanML3D layout without dataset.json: HumanML3D defaults assumed",
)
"""What a folder without `dataset.json` is taken to be (the real HumanML3D release has none)."""


def check_motion_id(motion_id: str, path: Path | str, line: int | None = None) -> None:
    """Refuse ids that are empty or could point outside the dataset folder.

    Ids may contain '/' (Motion-X: `idea400/subset_0022/clip`): they name nested files.
    """
    if (
        "\\" in motion_id
        or "\0" in motion_id
        or any(part in ("", ".", "..") for part in motion_id.split("/"))
    ):
        raise DataFormatError(path, f"invalid motion id {motion_id!r}", line)


def check_features(features: np.ndarray, path: Path | str, feature_dim: int = FEATURE_DIM) -> np.ndarray:
    """Validate a (T, feature_dim) feature array and return it as float32."""
    if not isinstance(features, np.ndarray) or not np.issubdtype(features.dtype, np.number):
        raise DataFormatError(path, f"features must be a numeric array, got {type(features).__name__}")
    if features.ndim != 2:
        raise DataFormatError(path, f"features must be 2-d (T, {feature_dim}), got shape {features.shape}")
    if features.shape[1] != feature_dim:
        raise DataFormatError(path, f"features must be {feature_dim} wide, got shape {features.shape}")
    if features.shape[0] == 0:
        raise DataFormatError(path, "features hold no frame")
    _check_finite(features, path)
    return features.astype(np.float32, copy=False)


def check_joints(joints: np.ndarray, path: Path | str) -> np.ndarray:
    """Validate a (T, 22, 3) joint-position array and return it as float32."""
    if not isinstance(joints, np.ndarray) or not np.issubdtype(joints.dtype, np.number):
        raise DataFormatError(path, f"joints must be a numeric array, got {type(joints).__name__}")
    if joints.ndim != 3 or joints.shape[1:] != JOINTS_SHAPE or joints.shape[0] == 0:
        raise DataFormatError(path, f"joints must have shape (T>0, 22, 3), got {joints.shape}")
    _check_finite(joints, path)
    return joints.astype(np.float32, copy=False)


def check_statistic(values: np.ndarray, path: Path | str, feature_dim: int, positive: bool) -> np.ndarray:
    """Validate Mean (any finite values) or Std (finite and > 0, since it divides) of shape (feature_dim,)."""
    if not isinstance(values, np.ndarray) or values.shape != (feature_dim,):
        shape = getattr(values, "shape", type(values).__name__)
        raise DataFormatError(path, f"expected shape ({feature_dim},), got {shape}")
    _check_finite(values, path)
    if positive and not np.all(values > 0):
        bad = np.flatnonzero(values <= 0)
        raise DataFormatError(path, f"standard deviation must be > 0; dims {bad[:10].tolist()} are not")
    return values.astype(np.float32, copy=False)


def _check_finite(values: np.ndarray, path: Path | str) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        first = np.argwhere(~finite)[0].tolist()
        count = int((~finite).sum())
        raise DataFormatError(path, f"{count} values are NaN or infinite (first at index {first})")


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataFormatError(path, "file is missing") from None
    except (ValueError, OSError, EOFError) as error:
        raise DataFormatError(path, f"not a readable .npy array ({error})") from None


class HumanML3DFolder:
    """A dataset folder in the HumanML3D layout, read on demand and validated on every read.

    `dataset.json` gives the metadata; without it `default_metadata` is assumed and logged.
    """

    def __init__(self, root: Path | str, default_metadata: DatasetMetadata = HUMANML3D_DEFAULTS) -> None:
        self.layout = DatasetLayout(Path(root))
        for folder in (self.layout.root, self.layout.features_dir, self.layout.texts_dir):
            if not folder.is_dir():
                raise DataFormatError(folder, "folder is missing (expected the HumanML3D layout)")
        if self.layout.metadata_path.exists():
            self.metadata = DatasetMetadata.read(self.layout.metadata_path)
        else:
            self.metadata = default_metadata
            logger.info(
                "%s has no dataset.json: assuming %s defaults (fps %g, feature_dim %d)",
                self.layout.root,
                default_metadata.name,
                default_metadata.fps,
                default_metadata.feature_dim,
            )

    @property
    def root(self) -> Path:
        return self.layout.root

    def __repr__(self) -> str:
        name, fps = self.metadata.name, self.metadata.fps
        return f"{type(self).__name__}({str(self.root)!r}, name={name!r}, fps={fps:g})"

    def splits(self) -> tuple[str, ...]:
        """The standard split files present, in `SPLIT_NAMES` order."""
        return tuple(name for name in SPLIT_NAMES if self.layout.split_path(name).is_file())

    def ids(self, split: str, missing: MissingPolicy = "error") -> list[str]:
        """The ids of a split, in file order, each with its features and caption file on disk.

        An id without its files raises DataFormatError naming the split file and line; with `missing="skip"`
        such ids are left out and their number is logged as a WARNING.
        """
        if missing not in ("error", "skip"):
            raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
        path = self.layout.split_path(split)
        ids = read_split_ids(path)
        line_of = _line_numbers(path)
        present: list[str] = []
        skipped: list[str] = []
        for motion_id in ids:
            check_motion_id(motion_id, path, line_of[motion_id])
            absent = [
                file.relative_to(self.root).as_posix()
                for file in (self.layout.features_path(motion_id), self.layout.text_path(motion_id))
                if not file.is_file()
            ]
            if not absent:
                present.append(motion_id)
            elif missing == "skip":
                skipped.append(motion_id)
            else:
                raise DataFormatError(
                    path, f"id {motion_id!r} is listed but {' and '.join(absent)} missing", line_of[motion_id]
                )
        if skipped:
            logger.warning(
                "%s: skipped %d of %d ids whose files are missing (first: %s)",
                path,
                len(skipped),
                len(ids),
                ", ".join(skipped[:5]),
            )
        return present

    def features(self, motion_id: str) -> np.ndarray:
        """The (T, feature_dim) float32 features of one motion."""
        path = self.layout.features_path(motion_id)
        check_motion_id(motion_id, path)
        return check_features(_load_array(path), path, self.metadata.feature_dim)

    def joints(self, motion_id: str) -> np.ndarray:
        """The (T, 22, 3) float32 joint positions of one motion (optional in the layout)."""
        path = self.layout.joints_path(motion_id)
        check_motion_id(motion_id, path)
        return check_joints(_load_array(path), path)

    def captions(self, motion_id: str) -> list[Caption]:
        path = self.layout.text_path(motion_id)
        check_motion_id(motion_id, path)
        return read_captions(path)

    def mean(self) -> np.ndarray:
        path = self.layout.mean_path
        return check_statistic(_load_array(path), path, self.metadata.feature_dim, positive=False)

    def std(self) -> np.ndarray:
        """The dataset Std as stored (models use `benchmark.motion.stats.model_std` of it)."""
        path = self.layout.std_path
        return check_statistic(_load_array(path), path, self.metadata.feature_dim, positive=True)

    def labels(self) -> dict[str, dict[str, Any]] | None:
        """`labels.jsonl` as id -> record, or None when the folder has no labels file."""
        path = self.layout.labels_path
        if not path.exists():
            return None
        return read_labels(path)


def _line_numbers(path: Path) -> dict[str, int]:
    """Id -> line number in a split file already checked by `read_split_ids` (ids are unique)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.strip(): number for number, line in enumerate(lines, 1) if line.strip()}


def read_labels(path: Path | str) -> dict[str, dict[str, Any]]:
    """Read a `labels.jsonl`: one JSON object per line with at least a string "id"; blank lines ignored."""
    path = Path(path)
    labels: dict[str, dict[str, Any]] = {}
    line_of: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError(path, f"invalid JSON: {error.msg}", number) from None
        if not isinstance(record, dict):
            raise DataFormatError(path, "expected a JSON object", number)
        motion_id = record.get("id")
        if not isinstance(motion_id, str) or not motion_id:
            raise DataFormatError(path, 'record has no string "id"', number)
        if motion_id in labels:
            raise DataFormatError(path, f"id {motion_id!r} repeats line {line_of[motion_id]}", number)
        labels[motion_id] = record
        line_of[motion_id] = number
    return labels


class DatasetWriter:
    """Write a dataset folder in the HumanML3D layout; `finish()` completes it.

    Everything written passes the reader's checks, so a finished folder always opens with `HumanML3DFolder`.
    The target folder must be absent or empty.
    """

    def __init__(self, root: Path | str, metadata: DatasetMetadata) -> None:
        self.layout = DatasetLayout(Path(root))
        self.metadata = metadata
        if self.layout.root.exists() and (not self.layout.root.is_dir() or any(self.layout.root.iterdir())):
            raise DataFormatError(self.layout.root, "output folder exists and is not empty")
        self.layout.features_dir.mkdir(parents=True, exist_ok=True)
        self.layout.texts_dir.mkdir(parents=True, exist_ok=True)
        self._ids: list[str] = []
        self._known: set[str] = set()
        self._labels: list[dict[str, Any]] = []
        self._splits: dict[str, list[str]] = {}
        self._finished = False

    @property
    def motion_ids(self) -> tuple[str, ...]:
        """The ids added so far, in order."""
        return tuple(self._ids)

    def add(
        self,
        motion_id: str,
        features: np.ndarray,
        captions: Sequence[Caption],
        joints: np.ndarray | None = None,
        label: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one motion: features (T, feature_dim), caption lines, optional joints and label record."""
        self._check_open()
        features_path = self.layout.features_path(motion_id)
        check_motion_id(motion_id, features_path)
        if motion_id in self._known:
            raise DataFormatError(features_path, f"id {motion_id!r} was already added")
        features = check_features(features, features_path, self.metadata.feature_dim)
        text_path = self.layout.text_path(motion_id)
        _check_captions(captions, text_path)
        if joints is not None:
            joints = check_joints(joints, self.layout.joints_path(motion_id))
        record: dict[str, Any] | None = None
        if label is not None:
            if label.get("id", motion_id) != motion_id:
                message = f"label id {label['id']!r} is not {motion_id!r}"
                raise DataFormatError(self.layout.labels_path, message)
            record = {"id": motion_id, **{k: v for k, v in label.items() if k != "id"}}
            try:
                json.dumps(record)
            except (TypeError, ValueError) as error:
                raise DataFormatError(self.layout.labels_path, f"label of {motion_id!r}: {error}") from None

        features_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(features_path, features)
        text_path.parent.mkdir(parents=True, exist_ok=True)
        write_captions(text_path, list(captions))
        if joints is not None:
            joints_path = self.layout.joints_path(motion_id)
            joints_path.parent.mkdir(parents=True, exist_ok=True)
            np.save(joints_path, joints)
        if record is not None:
            self._labels.append(record)
        self._ids.append(motion_id)
        self._known.add(motion_id)

    def write_splits(self, splits: Mapping[str, Sequence[str]]) -> None:
        """Write split files (names from `SPLIT_NAMES`); every id must have been added, none twice."""
        self._check_open()
        for name, ids in splits.items():
            path = self.layout.split_path(name)
            if name not in SPLIT_NAMES:
                raise DataFormatError(path, f"unknown split {name!r}; splits are {list(SPLIT_NAMES)}")
            unknown = [motion_id for motion_id in ids if motion_id not in self._known]
            if unknown:
                raise DataFormatError(path, f"{len(unknown)} ids were never added (first: {unknown[0]!r})")
            if len(set(ids)) != len(ids):
                raise DataFormatError(path, "split lists an id more than once")
            write_split_ids(path, list(ids))
            self._splits[name] = list(ids)

    def finish(self) -> HumanML3DFolder:
        """Write Mean.npy/Std.npy (over every motion written, as HumanML3D does), dataset.json,
        labels.jsonl (when labels were given) and all.txt (every id, when no "all" split was written).
        Returns the finished folder, opened for reading."""
        self._check_open()
        if not self._ids:
            raise DataFormatError(self.layout.root, "no motion was added")
        if "all" not in self._splits:
            write_split_ids(self.layout.split_path("all"), self._ids)
        mean, std = feature_statistics(self._written_features())
        mean = check_statistic(
            np.asarray(mean, dtype=np.float32),
            self.layout.mean_path,
            self.metadata.feature_dim,
            positive=False,
        )
        std = check_statistic(
            np.asarray(std, dtype=np.float32), self.layout.std_path, self.metadata.feature_dim, positive=True
        )
        np.save(self.layout.mean_path, mean)
        np.save(self.layout.std_path, std)
        self.metadata.write(self.layout.metadata_path)
        if self._labels:
            with self.layout.labels_path.open("w", encoding="utf-8") as file:
                file.writelines(json.dumps(record) + "\n" for record in self._labels)
        self._finished = True
        logger.info("wrote %d motions to %s", len(self._ids), self.layout.root)
        return HumanML3DFolder(self.layout.root)

    def _written_features(self) -> Iterator[np.ndarray]:
        for motion_id in self._ids:
            yield np.load(self.layout.features_path(motion_id))

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError(f"DatasetWriter for {self.layout.root} is finished")


def _check_captions(captions: Sequence[Caption], path: Path) -> None:
    """Each caption must survive its line format unchanged (no '#' or newline in text, no space in tokens)."""
    if not captions:
        raise DataFormatError(path, "a motion needs at least one caption")
    for number, caption in enumerate(captions, 1):
        if not isinstance(caption, Caption):
            raise DataFormatError(path, f"expected a Caption, got {type(caption).__name__}", number)
        line = caption.to_line()
        try:
            survives = len(line.splitlines()) == 1 and parse_caption_line(line, path, number) == caption
        except DataFormatError:
            survives = False
        if not survives:
            raise DataFormatError(path, f"caption does not survive the line format: {line!r}", number)
        if not (math.isfinite(caption.start) and math.isfinite(caption.end)):
            raise DataFormatError(path, "caption times must be finite", number)
