"""What a training run reads: a dataset folder, the ids to train and validate on, the normalisation, and
the text features of the captions (each caption encoded once per run).

The training ids come from a split name (`train`, a `<name>.txt` in the folder) or from an id list file
(one id per line, e.g. a retain set `kw_splits/train_val-wo-violence.txt`): this is how the retain-only
reference model and fine-tuning reuse the training code.

    data = MotionData.open("data/embedded", split="train", val_split="val")
    data = MotionData.open("data/embedded", split="data/embedded/kw_splits/train_val-wo-violence.txt",
                           mean=backbone_mean, std=backbone_std)        # fine-tuning keeps the model's space
    texts = TextFeatureCache(build_text_encoder("minilm"))
    texts.precompute(data.captions(data.train_ids))
    features = texts(["a person walks forward"])                           # (1, 384), CPU
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.data.layout import read_split_ids
from benchmark.errors import DataFormatError
from benchmark.motion.stats import model_std
from benchmark.text.base import IDENTITY_KEYS, TextEncoder

logger = logging.getLogger(__name__)


def resolve_split(folder: HumanML3DFolder, split: str) -> list[str]:
    """The ids of `split`: a split name of the folder (`train`, `val`, any `<name>.txt` there), else an id
    list file (a path, or a path relative to the folder). Every id must have its features and captions."""
    if "/" not in split and folder.layout.split_path(split).is_file():
        return folder.ids(split)
    path = Path(split)
    if not path.is_file() and (folder.root / split).is_file():
        path = folder.root / split
    if not path.is_file():
        raise DataFormatError(path, f"neither a split of {folder.root} nor an id list file")
    ids = read_split_ids(path)
    if not ids:
        raise DataFormatError(path, "the id list is empty")
    for number, motion_id in enumerate(ids, start=1):
        for file in (folder.layout.features_path(motion_id), folder.layout.text_path(motion_id)):
            if not file.is_file():
                raise DataFormatError(path, f"id {motion_id!r}: {file} is missing", number)
    return ids


@dataclass(frozen=True, eq=False)
class MotionData:
    """A dataset folder with the ids to train and validate on and the model's normalisation."""

    folder: HumanML3DFolder
    split: str
    """The training split as given (a name or an id list file)."""
    train_ids: tuple[str, ...]
    val_split: str | None
    """The validation split as given, or None for no validation metrics."""
    val_ids: tuple[str, ...]
    mean: np.ndarray
    """(D,) float32: features are normalised as (x - mean) / std."""
    std: np.ndarray
    """(D,) float32, the model std (`model_std` of the dataset Std, MoMask's feat_bias applied)."""

    @classmethod
    def open(
        cls,
        root: str | Path,
        split: str = "train",
        val_split: str | None = "val",
        *,
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
    ) -> MotionData:
        """Open `root`; without `mean`/`std` (a model trained from scratch) the normalisation is the folder's
        Mean.npy and `model_std(Std.npy)`; fine-tuning passes the model's own, to stay in its space."""
        folder = HumanML3DFolder(root)
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if mean is None or std is None:
            mean, std = folder.mean(), model_std(folder.std())
        train_ids = tuple(resolve_split(folder, split))
        val_ids = tuple(resolve_split(folder, val_split)) if val_split is not None else ()
        mean = np.asarray(mean, dtype=np.float32)
        std = np.asarray(std, dtype=np.float32)
        return cls(folder, split, train_ids, val_split, val_ids, mean, std)

    def captions(self, ids: Iterable[str]) -> list[str]:
        """Every caption text of the motions `ids`, in order (with repeats)."""
        return [caption.text for motion_id in ids for caption in self.folder.captions(motion_id)]

    def fingerprint(self) -> dict[str, str]:
        """Cheap identity of what is trained on (folder, ids, normalisation): a resumed run must match it."""
        digest = hashlib.sha256()
        digest.update("\n".join(self.train_ids).encode())
        digest.update(self.mean.astype(np.float32).tobytes() + self.std.astype(np.float32).tobytes())
        return {"data": str(self.folder.root.resolve()), "train_ids_and_normalisation": digest.hexdigest()}

    def content_hash(self) -> str:
        """sha256 of the training data's content: each training id with its feature and caption files' bytes,
        in id order, then the normalisation. Reads every file once."""
        digest = hashlib.sha256()
        layout = self.folder.layout
        for motion_id in self.train_ids:
            digest.update(motion_id.encode() + b"\n")
            for path in (layout.features_path(motion_id), layout.text_path(motion_id)):
                content = path.read_bytes()
                digest.update(len(content).to_bytes(8, "little") + content)
        digest.update(self.mean.astype(np.float32).tobytes() + self.std.astype(np.float32).tobytes())
        return digest.hexdigest()


class TextFeatureCache:
    """Caption text -> the encoder's feature, each distinct caption encoded once and kept in memory.

    Bound to one encoder, so the key is in effect (encoder identity, exact text). Features are float32 on the
    CPU; the caller moves a batch to its device. Encoding is the slow part of training on a CPU, hence
    `precompute`, which encodes all of a run's captions up front in length-sorted batches (less padding).
    """

    def __init__(self, encoder: TextEncoder, batch_size: int = 256) -> None:
        self.encoder = encoder
        self.identity: dict[str, Any] = encoder.identity()
        self.batch_size = batch_size
        self._features: dict[str, torch.Tensor] = {}

    @property
    def dim(self) -> int:
        return int(self.identity["dim"])

    def key(self) -> str:
        """The identity fields that define the features, as one string (for fingerprints)."""
        return json.dumps({k: self.identity.get(k) for k in IDENTITY_KEYS}, sort_keys=True)

    def __len__(self) -> int:
        return len(self._features)

    def precompute(self, texts: Iterable[str], progress: bool = True) -> None:
        """Encode every text not yet cached."""
        new = sorted(
            {text for text in texts if text not in self._features}, key=lambda text: (len(text), text)
        )
        if not new:
            return
        with tqdm(total=len(new), desc="text features", unit="caption", disable=not progress) as bar:
            for start in range(0, len(new), self.batch_size):
                chunk = new[start : start + self.batch_size]
                features = self.encoder.encode(chunk).detach().float().cpu()
                self._features.update(zip(chunk, features, strict=True))
                bar.update(len(chunk))
        logger.info("encoded %d captions (%d cached)", len(new), len(self._features))

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, dim) features of `texts` (encoding the ones not cached yet)."""
        self.precompute(texts, progress=False)
        return torch.stack([self._features[text] for text in texts])
