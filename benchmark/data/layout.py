"""Where files live in a HumanML3D-layout dataset folder.

root/
  new_joint_vecs/<id>.npy   (T, 263) float32 features
  new_joints/<id>.npy       (T, 22, 3) joint positions (optional)
  texts/<id>.txt            caption lines, see `benchmark.data.captions`
  train.txt val.txt test.txt train_val.txt all.txt   one id per line
  Mean.npy Std.npy          (263,) feature statistics
  dataset.json              optional metadata written by HMU-Bench (name, fps, source)
  labels.jsonl              optional ground-truth action labels (generated datasets)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import DataFormatError

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test", "train_val", "all")


@dataclass(frozen=True)
class DatasetLayout:
    root: Path
    """The dataset folder."""

    @property
    def features_dir(self) -> Path:
        return self.root / "new_joint_vecs"

    @property
    def joints_dir(self) -> Path:
        return self.root / "new_joints"

    @property
    def texts_dir(self) -> Path:
        return self.root / "texts"

    @property
    def mean_path(self) -> Path:
        return self.root / "Mean.npy"

    @property
    def std_path(self) -> Path:
        return self.root / "Std.npy"

    @property
    def metadata_path(self) -> Path:
        return self.root / "dataset.json"

    @property
    def labels_path(self) -> Path:
        return self.root / "labels.jsonl"

    def split_path(self, split: str) -> Path:
        return self.root / f"{split}.txt"

    def features_path(self, motion_id: str) -> Path:
        return self.features_dir / f"{motion_id}.npy"

    def joints_path(self, motion_id: str) -> Path:
        return self.joints_dir / f"{motion_id}.npy"

    def text_path(self, motion_id: str) -> Path:
        return self.texts_dir / f"{motion_id}.txt"


def read_split_ids(path: Path | str) -> list[str]:
    """The ids of a split file, one per line, in file order.

    Blank lines are ignored; a repeated id is an error naming both lines.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataFormatError(path, "split file is missing") from None
    ids: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        motion_id = line.strip()
        if not motion_id:
            continue
        if motion_id in seen:
            raise DataFormatError(path, f"id {motion_id!r} repeats line {seen[motion_id]}", number)
        seen[motion_id] = number
        ids.append(motion_id)
    return ids


def write_split_ids(path: Path | str, ids: list[str]) -> None:
    Path(path).write_text("".join(f"{motion_id}\n" for motion_id in ids), encoding="utf-8")
