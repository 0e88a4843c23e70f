"""PyTorch datasets over a HumanML3D-layout folder, with MoMask's training and evaluation conventions.

- `TrainingMotionDataset`: (caption, normalised motion zero-padded to 196 frames, length) for the
  text-to-motion transformers. Every motion is one item (its whole-clip captions) and every caption with
  a segment is one more item (the frames it describes); a draw picks a caption, a length and a crop.
- `MotionWindowDataset`: every `window_size`-frame window of every motion, for the RVQ-VAE.
- `EvaluationMotionDataset`: deterministic, one item per caption line, with the caption's word/POS tokens.

Randomness is keyed by (seed, epoch, index), so an item is the same whatever the worker or access order;
call `set_epoch` once per epoch to draw new captions, lengths and crops (like `DistributedSampler`).

    folder = HumanML3DFolder("dataset/HumanML3D")
    mean, std = folder.mean(), model_std(folder.std())
    train = TrainingMotionDataset(folder, folder.ids("train"), mean, std, seed=3407)
    loader = DataLoader(train, batch_size=64, shuffle=True, drop_last=True)
    for epoch in range(epochs):
        train.set_epoch(epoch)
        for text, motion, length in loader: ...

    test = EvaluationMotionDataset(folder, folder.ids("test"), mean, std)
    batches = DataLoader(test, batch_size=32, collate_fn=collate_evaluation)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from benchmark.data.captions import Caption
from benchmark.data.humanml3d import HumanML3DFolder

logger = logging.getLogger(__name__)


class TrainingItem(NamedTuple):
    """One training draw; the default collate turns a list of them into batched fields."""

    text: str
    """The caption drawn."""
    motion: torch.Tensor
    """(max_motion_length, D) float32, normalised, zero after `length` frames."""
    length: int
    """Frames of real motion (a multiple of unit_length)."""


@dataclass(frozen=True, eq=False)
class _Clip:
    """Frames of one motion (all of it, or a caption's segment) and the captions that describe them."""

    motion_index: int
    """Position of the motion in the ids the dataset was made from."""
    motion_id: str
    features: np.ndarray
    captions: tuple[Caption, ...]
    caption_indices: tuple[int, ...]
    """Position of each caption in the motion's text file (0-based)."""


@dataclass(frozen=True)
class EvaluationItem:
    motion_id: str
    caption_index: int
    """Position of the caption in the motion's text file (0-based): with motion_id, a unique key."""
    caption: Caption
    """The caption, with its word/POS tokens."""
    motion: torch.Tensor
    """(max_motion_length, D) float32, normalised if the dataset was given mean/std, zero after `length`."""
    length: int


@dataclass(frozen=True)
class EvaluationBatch:
    motion_ids: list[str]
    caption_indices: list[int]
    captions: list[Caption]
    motions: torch.Tensor
    """(B, max_motion_length, D) float32."""
    lengths: torch.Tensor
    """(B,) int64."""


def collate_evaluation(items: Sequence[EvaluationItem]) -> EvaluationBatch:
    """Batch evaluation items in their order (sorting for packed RNNs is the evaluator's business)."""
    return EvaluationBatch(
        motion_ids=[item.motion_id for item in items],
        caption_indices=[item.caption_index for item in items],
        captions=[item.caption for item in items],
        motions=torch.stack([item.motion for item in items]),
        lengths=torch.tensor([item.length for item in items], dtype=torch.int64),
    )


def _check_normalization(mean: np.ndarray, std: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    mean, std = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    if mean.shape != (dim,) or std.shape != (dim,):
        raise ValueError(f"mean and std must have shape ({dim},), got {mean.shape} and {std.shape}")
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise ValueError("mean must be finite and std finite and > 0")
    return mean, std


def _check_lengths(min_motion_length: int, max_motion_length: int, unit_length: int) -> None:
    if unit_length < 1 or max_motion_length % unit_length:
        raise ValueError(f"max_motion_length {max_motion_length} is no multiple of unit_length {unit_length}")
    if not 2 * unit_length <= min_motion_length <= max_motion_length:
        raise ValueError(
            f"need 2 * unit_length <= min_motion_length <= max_motion_length, got {unit_length}, "
            f"{min_motion_length}, {max_motion_length}"
        )


def _padded(
    features: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None, frames: int
) -> torch.Tensor:
    out = np.zeros((frames, features.shape[1]), dtype=np.float32)
    out[: len(features)] = features if mean is None or std is None else (features - mean) / std
    return torch.from_numpy(out)


def _clips(
    folder: HumanML3DFolder, ids: Sequence[str], min_length: int, max_length: int | None
) -> list[_Clip]:
    """Each motion with its whole-clip captions, and one clip per segment caption, in id order (MoMask's
    way): a motion outside [min_length, max_length] frames is dropped with all its segments; so is a
    segment outside it. Drops are counted in the log."""
    fps = folder.metadata.fps
    clips: list[_Clip] = []
    dropped_motions = dropped_segments = 0

    def fits(frames: int) -> bool:
        return frames >= min_length and (max_length is None or frames <= max_length)

    for motion_index, motion_id in enumerate(ids):
        features = folder.features(motion_id)
        captions = folder.captions(motion_id)
        if not fits(len(features)):
            dropped_motions += 1
            continue
        whole = [(index, caption) for index, caption in enumerate(captions) if caption.is_whole_clip]
        if whole:
            indices, texts = zip(*whole, strict=True)
            clips.append(_Clip(motion_index, motion_id, features, tuple(texts), tuple(indices)))
        for index, caption in enumerate(captions):
            if caption.is_whole_clip:
                continue
            first, last = caption.frame_range(fps, len(features))
            if fits(last - first):
                clips.append(_Clip(motion_index, motion_id, features[first:last], (caption,), (index,)))
            else:
                dropped_segments += 1
    bounds = f"[{min_length}, {max_length if max_length is not None else 'inf'}] frames"
    logger.info(
        "%s: %d items from %d motions; dropped %d motions and %d caption segments of lengths outside %s",
        folder.root,
        len(clips),
        len(ids) - dropped_motions,
        dropped_motions,
        dropped_segments,
        bounds,
    )
    return clips


class TrainingMotionDataset(Dataset[TrainingItem]):
    """Text-to-motion training items, as MoMask's `Text2MotionDataset` draws them.

    Items are every motion with whole-clip captions plus every segment caption's frames. A draw picks one
    of the item's captions, caps the length at `max_motion_length`, rounds it down to a multiple of
    `unit_length` (with probability 1/3 one unit less), crops at a random offset, normalises with
    `mean`/`std` and zero-pads to `max_motion_length`. Motions and segments shorter than
    `min_motion_length` or longer than `max_source_length` frames are dropped (counted in the log);
    MoMask keeps 40 <= length < 200, and `max_source_length=None` keeps long ones, cropped at random.
    """

    def __init__(
        self,
        folder: HumanML3DFolder,
        ids: Sequence[str],
        mean: np.ndarray,
        std: np.ndarray,
        *,
        max_motion_length: int = 196,
        min_motion_length: int = 40,
        unit_length: int = 4,
        max_source_length: int | None = 199,
        seed: int = 0,
    ) -> None:
        _check_lengths(min_motion_length, max_motion_length, unit_length)
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.mean, self.std = _check_normalization(mean, std, folder.metadata.feature_dim)
        self.max_motion_length = max_motion_length
        self.unit_length = unit_length
        self.seed = seed
        self.epoch = 0
        self._clips = _clips(folder, ids, min_motion_length, max_source_length)

    def set_epoch(self, epoch: int) -> None:
        """Draw new captions, lengths and crops: the draw of item i depends only on (seed, epoch, i)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._clips)

    def __getitem__(self, index: int) -> TrainingItem:
        index = range(len(self))[index]  # IndexError when out of range; negative indices count from the end
        clip = self._clips[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        caption = clip.captions[rng.integers(len(clip.captions))]
        frames = min(len(clip.features), self.max_motion_length)
        units = frames // self.unit_length - (1 if rng.random() < 1 / 3 else 0)
        length = units * self.unit_length
        start = int(rng.integers(len(clip.features) - length + 1))
        motion = _padded(clip.features[start : start + length], self.mean, self.std, self.max_motion_length)
        return TrainingItem(caption.text, motion, length)


class MotionWindowDataset(Dataset[torch.Tensor]):
    """Every `window_size`-frame window (stride 1) of every motion, normalised: the RVQ-VAE's data.

    A motion of T >= window_size frames gives T - window_size + 1 windows (MoMask's loader leaves out the
    last one); shorter motions are dropped, counted in the log. Deterministic.
    """

    def __init__(
        self,
        folder: HumanML3DFolder,
        ids: Sequence[str],
        mean: np.ndarray,
        std: np.ndarray,
        *,
        window_size: int = 64,
    ) -> None:
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        self.mean, self.std = _check_normalization(mean, std, folder.metadata.feature_dim)
        self.window_size = window_size
        self._motions: list[np.ndarray] = []
        for motion_id in ids:
            features = folder.features(motion_id)
            if len(features) >= window_size:
                self._motions.append(features)
        logger.info(
            "%s: %d motions; dropped %d shorter than a %d-frame window",
            folder.root,
            len(self._motions),
            len(ids) - len(self._motions),
            window_size,
        )
        windows = [len(features) - window_size + 1 for features in self._motions]
        self._first_window = np.concatenate([[0], np.cumsum(windows)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self._first_window[-1])

    def __getitem__(self, index: int) -> torch.Tensor:
        index = range(len(self))[index]
        motion = int(np.searchsorted(self._first_window, index, side="right")) - 1
        start = index - int(self._first_window[motion])
        window = self._motions[motion][start : start + self.window_size]
        return torch.from_numpy((window - self.mean) / self.std)


class EvaluationMotionDataset(Dataset[EvaluationItem]):
    """Ground-truth items for evaluation: every caption line is its own item, as the public HumanML3D
    evaluation loader makes them, but deterministic: the length is capped at `max_motion_length` and rounded
    down to a multiple of `unit_length`, and the motion is cut from the first frame of the clip or segment.

    Without mean/std the features are returned as stored. Length filtering as `TrainingMotionDataset`.
    """

    def __init__(
        self,
        folder: HumanML3DFolder,
        ids: Sequence[str],
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
        *,
        max_motion_length: int = 196,
        min_motion_length: int = 40,
        unit_length: int = 4,
        max_source_length: int | None = 199,
    ) -> None:
        _check_lengths(min_motion_length, max_motion_length, unit_length)
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        if mean is not None and std is not None:
            self.mean, self.std = _check_normalization(mean, std, folder.metadata.feature_dim)
        self.max_motion_length = max_motion_length
        self.unit_length = unit_length
        clips = _clips(folder, ids, min_motion_length, max_source_length)
        entries = [
            (clip, caption, index)
            for clip in clips
            for caption, index in zip(clip.captions, clip.caption_indices, strict=True)
        ]
        # One item per caption line, in id order and then text-file order.
        self._entries = sorted(entries, key=lambda entry: (entry[0].motion_index, entry[2]))

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> EvaluationItem:
        clip, caption, caption_index = self._entries[index]
        length = min(len(clip.features), self.max_motion_length) // self.unit_length * self.unit_length
        motion = _padded(clip.features[:length], self.mean, self.std, self.max_motion_length)
        return EvaluationItem(clip.motion_id, caption_index, caption, motion, length)
