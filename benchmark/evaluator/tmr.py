"""The project's own text-motion evaluator: TMR-style contrastive encoders, trained on CPU in minutes.

- Motion encoder: the normalised 263-d features are cut into units of `unit_length` (4) frames, each unit is
  projected to one token (`patch`), a learned position embedding is added, a pre-norm transformer encoder
  reads the tokens under a length mask, and the masked mean of its outputs is projected to `embed_dim`.
- Text encoder: the frozen MiniLM sentence feature (384-d, `benchmark.text`) through a trainable MLP head.
- Both embeddings are L2-normalised, so the Euclidean distance the T2M metrics use ranks as the cosine does.
- Loss: symmetric InfoNCE over a batch at temperature `temperature`; pairs whose captions are near-identical
  (MiniLM cosine above `negative_filter`) are not used as negatives, as TMR does, since the templated captions
  of a generated dataset repeat often.

It is independent of the backbone's weights and trained on ground-truth motions only, so it can grade any
method. A trained evaluator is a folder: `evaluator.json` (config, training record, identity), `weights.pt`
(the trainable state dict), `mean.npy`/`std.npy` (its normalisation).

    >>> settings = TrainEvaluatorSettings(epochs=10, seed=0)
    >>> evaluator = train_evaluator("data/embedded", settings)       # train split, validated on val
    >>> evaluator.training["val_r_precision"]                        # {'1': ..., '2': ..., '3': ...}
    >>> evaluator.save("runs/evaluator")
    >>> evaluator = TMREvaluator.load("runs/evaluator", device="cpu")
    >>> print(check_evaluator(evaluator, HumanML3DFolder("data/embedded")).summary())  # R-precision, FID, AUC
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from benchmark.data.captions import Caption
from benchmark.data.torch_datasets import TrainingMotionDataset
from benchmark.evaluator.base import (
    EvaluatorError,
    array_sha256,
    check_captions,
    check_motions,
    load_state_strict,
    load_statistic,
    state_dict_sha256,
)
from benchmark.evaluator.check import caption_motion_pairs
from benchmark.metrics import r_precision
from benchmark.motion.skeleton import FEATURE_DIM
from benchmark.text import build_text_encoder, check_identity
from benchmark.text.base import TextEncoder
from benchmark.training.data import MotionData, TextFeatureCache

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the `evaluator.json` layout."""

CONFIG_FILE = "evaluator.json"
WEIGHTS_FILE = "weights.pt"
MEAN_FILE = "mean.npy"
STD_FILE = "std.npy"


@dataclass(frozen=True)
class TMRConfig:
    """The evaluator's architecture and input handling (what `evaluator.json` records as `config`)."""

    feature_dim: int = FEATURE_DIM
    """Width of a motion frame (263 for the HumanML3D representation)."""
    text_encoder: str = "minilm"
    """The frozen sentence encoder (`benchmark.text.build_text_encoder` name) the text head reads."""
    text_dim: int = 384
    """Width of the sentence encoder's features."""
    unit_length: int = 4
    """Frames per motion token: lengths are rounded down to a multiple of it, as the T2M protocol does."""
    max_frames: int = 196
    """Longest motion read; a longer one is cut to its first `max_frames` (the protocol crops before)."""
    latent_dim: int = 128
    """Width of the motion transformer. On the embedded dataset 192 wide and 3 deep trains 2.5x slower for
    no better R-precision; the 5-minute CPU budget bounds width x layers."""
    n_layers: int = 2
    """Transformer encoder layers."""
    n_heads: int = 4
    """Attention heads."""
    ff_size: int = 256
    """Width of each layer's feed-forward block."""
    dropout: float = 0.1
    """Dropout in the transformer and the text head while training."""
    text_hidden: int = 512
    """Hidden width of the text head's MLP."""
    embed_dim: int = 256
    """Width of the shared embedding space."""

    def __post_init__(self) -> None:
        for name in ("feature_dim", "text_dim", "unit_length", "latent_dim", "n_layers", "n_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("ff_size", "text_hidden", "embed_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_frames < self.unit_length or self.max_frames % self.unit_length:
            raise ValueError(
                f"max_frames {self.max_frames} must be a multiple of unit_length {self.unit_length}"
            )
        if self.latent_dim % self.n_heads:
            raise ValueError(f"latent_dim {self.latent_dim} must be divisible by n_heads {self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def max_tokens(self) -> int:
        return self.max_frames // self.unit_length


@dataclass(frozen=True)
class TrainEvaluatorSettings:
    """How `train_evaluator` trains. The defaults train on the embedded dataset in < 5 minutes on 2 cores."""

    split: str = "train"
    """Training ids: a split name of the dataset folder or an id list file."""
    val_split: str | None = "val"
    """Ids for the validation R-precision after training, or None for none."""
    epochs: int = 10
    """Passes over the training items (every motion, plus every caption segment)."""
    batch_size: int = 64
    """Pairs per step: the InfoNCE negatives of each pair are the other pairs of its batch."""
    lr: float = 1e-3
    """Peak learning rate (AdamW), reached after `warmup_steps` and cosine-decayed to zero."""
    weight_decay: float = 0.01
    """AdamW's decoupled weight decay."""
    warmup_steps: int = 100
    """Linear warm-up steps: a transformer at lr 1e-3 diverges without them."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    temperature: float = 0.07
    """InfoNCE temperature on cosine similarities (CLIP's initial value; TMR uses 0.1)."""
    negative_filter: float = 0.99
    """Caption pairs with MiniLM cosine above this are not negatives of each other (1 keeps all). Paraphrases
    of one template score above 0.99; a caption and its left/right mirror score 0.96-0.98 and must stay
    negatives, or the evaluator never learns sides (0.95 and 0.99 give the same R-precision)."""
    min_motion_length: int = 40
    """Shortest motion or segment trained on, in frames (HumanML3D's filter)."""
    seed: int = 0
    """Seeds the initialisation, the batches, dropout and the crops: equal seeds give equal weights."""
    device: str = "cpu"
    """Where training runs."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {self.epochs}, {self.batch_size}")
        if not (self.lr > 0 and self.temperature > 0 and self.grad_clip > 0):
            raise ValueError("lr, temperature and grad_clip must be positive")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.seed < 0:
            raise ValueError("warmup_steps, weight_decay and seed must be >= 0")
        if not -1.0 <= self.negative_filter <= 1.0:
            raise ValueError(f"negative_filter is a cosine in [-1, 1], got {self.negative_filter}")


# ----------------------------------------------------------------------------- networks


class MotionEncoder(nn.Module):
    """(B, T, feature_dim) normalised motions with T a multiple of unit_length, and their valid token counts
    (B,), to (B, embed_dim) unit vectors."""

    def __init__(self, config: TMRConfig) -> None:
        super().__init__()
        self.unit_length = config.unit_length
        self.patch = nn.Linear(config.unit_length * config.feature_dim, config.latent_dim)
        self.position = nn.Parameter(torch.zeros(config.max_tokens, config.latent_dim))
        layer = nn.TransformerEncoderLayer(
            config.latent_dim,
            config.n_heads,
            config.ff_size,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # Nested tensors would make padded and unpadded batches take different kernels; keep one path.
        self.transformer = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.latent_dim)
        self.out = nn.Linear(config.latent_dim, config.embed_dim)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, motion: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        batch, frames, width = motion.shape
        x = self.patch(motion.reshape(batch, frames // self.unit_length, self.unit_length * width))
        x = x + self.position[: x.shape[1]]
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < tokens[:, None]
        x = self.norm(self.transformer(x, src_key_padding_mask=~valid))
        weights = valid.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1)
        return F.normalize(self.out(pooled), dim=-1)


class TextHead(nn.Module):
    """(B, text_dim) frozen sentence features to (B, embed_dim) unit vectors."""

    def __init__(self, config: TMRConfig) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(config.text_dim, config.text_hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.text_hidden, config.embed_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(features), dim=-1)


class TMRModel(nn.Module):
    """The trainable parts: `motion_encoder` and `text_head` (the sentence encoder stays outside, frozen)."""

    def __init__(self, config: TMRConfig) -> None:
        super().__init__()
        self.config = config
        self.motion_encoder = MotionEncoder(config)
        self.text_head = TextHead(config)


def contrastive_loss(
    text: torch.Tensor,
    motion: torch.Tensor,
    text_features: torch.Tensor,
    temperature: float,
    threshold: float,
) -> torch.Tensor:
    """Symmetric InfoNCE of paired unit embeddings (B, d); a pair of captions whose sentence features
    (B, text_dim, unit length) have cosine above `threshold` are not negatives of each other."""
    logits = text @ motion.T / temperature
    similar = text_features @ text_features.T > threshold
    similar.fill_diagonal_(False)
    logits = logits.masked_fill(similar, float("-inf"))
    target = torch.arange(len(text), device=text.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


# ----------------------------------------------------------------------------- evaluator


class TMREvaluator:
    """The trained evaluator: implements `benchmark.evaluator.Evaluator`.

    Motions are normalised with `mean`/`std`, cut to `config.max_frames` frames, rounded down to a multiple
    of `config.unit_length` frames (shorter than one unit is an error) and encoded in batches of similar
    length. Captions are read through `.text`.
    """

    name = "tmr"

    def __init__(
        self,
        model: TMRModel,
        mean: np.ndarray,
        std: np.ndarray,
        text_encoder: TextEncoder,
        *,
        training: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 128,
    ) -> None:
        config = model.config
        mean, std = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
        if mean.shape != (config.feature_dim,) or std.shape != (config.feature_dim,):
            raise EvaluatorError(
                f"mean and std must be ({config.feature_dim},), got {mean.shape}, {std.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise EvaluatorError("mean must be finite and std finite and > 0")
        if text_encoder.dim != config.text_dim or text_encoder.name != config.text_encoder:
            raise EvaluatorError(
                f"the evaluator reads {config.text_encoder} ({config.text_dim}-d) text features, "
                f"got {text_encoder.name} ({text_encoder.dim}-d)"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.config = config
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.mean, self.std = mean, std
        self.text_encoder = text_encoder
        self.training: dict[str, Any] = dict(training or {})
        self.batch_size = batch_size
        self.embed_dim = config.embed_dim
        self._weights_sha256 = state_dict_sha256(self.model.state_dict())

    def __repr__(self) -> str:
        weights = self._weights_sha256[:12]
        return f"TMREvaluator(embed_dim={self.embed_dim}, weights={weights}, device={self.device})"

    def identity(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "format_version": FORMAT_VERSION,
            "config": dataclasses.asdict(self.config),
            "weights_sha256": self._weights_sha256,
            "normalisation": {"mean_std_sha256": array_sha256(self.mean, self.std)},
            "text_encoder": self.text_encoder.identity(),
            "dataset": self.training.get("dataset"),
        }

    @torch.no_grad()
    def encode_texts(self, captions: Sequence[Caption]) -> np.ndarray:
        texts = [caption.text for caption in check_captions(captions)]
        if not texts:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        features = self.text_encoder.encode(texts).float().to(self.device)
        return self.model.text_head(features).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def encode_motions(self, motions: Sequence[np.ndarray]) -> np.ndarray:
        motions = check_motions(motions, self.config.feature_dim)
        unit = self.config.unit_length
        lengths = [min(len(motion), self.config.max_frames) // unit * unit for motion in motions]
        for index, length in enumerate(lengths):
            if length == 0:
                raise EvaluatorError(
                    f"encode_motions(): motion {index} has {len(motions[index])} frames, fewer than one unit "
                    f"of {unit}"
                )
        out = np.zeros((len(motions), self.embed_dim), dtype=np.float32)
        # Similar lengths together: less padding, and each motion's batch does not depend on call order.
        order = sorted(range(len(motions)), key=lambda i: (lengths[i], i))
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            frames = max(lengths[i] for i in index)
            batch = np.zeros((len(index), frames, self.config.feature_dim), dtype=np.float32)
            for row, i in enumerate(index):
                batch[row, : lengths[i]] = (motions[i][: lengths[i]] - self.mean) / self.std
            tokens = torch.tensor([lengths[i] // unit for i in index], device=self.device)
            embedded = self.model.motion_encoder(torch.from_numpy(batch).to(self.device), tokens)
            out[index] = embedded.cpu().numpy()
        return out

    # ------------------------------------------------------------------------- folder

    def save(self, directory: str | Path) -> Path:
        """Write the evaluator folder (created if needed; existing evaluator files are replaced)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {key: value.detach().cpu() for key, value in self.model.state_dict().items()}
        torch.save(state, directory / WEIGHTS_FILE)
        np.save(directory / MEAN_FILE, self.mean)
        np.save(directory / STD_FILE, self.std)
        record = {
            "format_version": FORMAT_VERSION,
            "kind": self.name,
            "config": dataclasses.asdict(self.config),
            "training": self.training,
            "identity": self.identity(),
        }
        (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        device: str | torch.device = "cpu",
        text_encoder: TextEncoder | None = None,
        batch_size: int = 128,
    ) -> TMREvaluator:
        """Read an evaluator folder; the weights must hash to the recorded value and the text encoder must be
        the one it was trained with (`benchmark.text.check_identity`)."""
        directory = Path(directory)
        path = directory / CONFIG_FILE
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise EvaluatorError(f"{path}: file is missing (not an evaluator folder)") from None
        except json.JSONDecodeError as error:
            raise EvaluatorError(f"{path}: invalid JSON: {error.msg} (line {error.lineno})") from None
        if not isinstance(record, dict):
            raise EvaluatorError(f"{path}: expected a JSON object")
        for key in ("format_version", "kind", "config", "identity"):
            if key not in record:
                raise EvaluatorError(f"{path}: key {key!r} is missing")
        if record["kind"] != cls.name or record["format_version"] != FORMAT_VERSION:
            raise EvaluatorError(
                f"{path}: key 'kind'/'format_version' is {record['kind']!r}/{record['format_version']!r}, "
                f"expected {cls.name!r}/{FORMAT_VERSION}"
            )
        config = _config_from_json(record["config"], path)
        model = TMRModel(config)
        weights_path = directory / WEIGHTS_FILE
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise EvaluatorError(f"{weights_path}: file is missing") from None
        except (RuntimeError, OSError, EOFError, ValueError) as error:
            raise EvaluatorError(f"{weights_path}: not a readable state dict ({error})") from None
        load_state_strict(model, state, weights_path)
        recorded = record["identity"].get("weights_sha256")
        actual = state_dict_sha256(model.state_dict())
        if recorded != actual:
            raise EvaluatorError(
                f"{weights_path}: weights hash {actual[:16]}... differs from {recorded!r} in {CONFIG_FILE}"
            )
        mean = load_statistic(directory / MEAN_FILE, config.feature_dim)
        std = load_statistic(directory / STD_FILE, config.feature_dim)
        if text_encoder is None:
            text_encoder = build_text_encoder(config.text_encoder, device=device)
        recorded_text = record["identity"].get("text_encoder")
        if isinstance(recorded_text, dict):
            check_identity(recorded_text, text_encoder)
        return cls(
            model,
            mean,
            std,
            text_encoder,
            training=record.get("training"),
            device=device,
            batch_size=batch_size,
        )


def _config_from_json(values: Any, path: Path) -> TMRConfig:
    if not isinstance(values, dict):
        raise EvaluatorError(f"{path}: key 'config' must be an object")
    known = {field.name for field in dataclasses.fields(TMRConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise EvaluatorError(f"{path}: unknown config keys {unknown}")
    try:
        return TMRConfig(**values)
    except (TypeError, ValueError) as error:
        raise EvaluatorError(f"{path}: key 'config': {error}") from None


# ----------------------------------------------------------------------------- training


def _learning_rate(settings: TrainEvaluatorSettings, step: int, total: int) -> float:
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / (settings.warmup_steps + 1)
    progress = (step - settings.warmup_steps) / max(1, total - settings.warmup_steps)
    return settings.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train_evaluator(
    data: str | Path,
    settings: TrainEvaluatorSettings = TrainEvaluatorSettings(),
    config: TMRConfig = TMRConfig(),
    *,
    text_encoder: TextEncoder | None = None,
    log: Callable[[str], None] | None = None,
) -> TMREvaluator:
    """Train an evaluator on the dataset folder `data` (`settings.split`, normalised with the folder's
    Mean.npy and `model_std(Std.npy)`) and return it, with `training` recording the run: dataset identity,
    settings, seconds, losses per epoch and the validation R-precision (when `settings.val_split` is set).
    """
    began, began_cpu = time.perf_counter(), time.process_time()
    say = log or logger.info
    device = torch.device(settings.device)
    motion_data = MotionData.open(data, settings.split, settings.val_split)
    if motion_data.folder.metadata.feature_dim != config.feature_dim:
        raise EvaluatorError(
            f"{motion_data.folder.root}: features are {motion_data.folder.metadata.feature_dim}-d, the "
            f"evaluator reads {config.feature_dim}-d"
        )
    if text_encoder is None:
        text_encoder = build_text_encoder(config.text_encoder, device=device)
    texts = TextFeatureCache(text_encoder)
    texts.precompute(motion_data.captions(motion_data.train_ids), progress=False)
    say(f"encoded {len(texts)} distinct captions in {time.perf_counter() - began:.1f} s")

    dataset = TrainingMotionDataset(
        motion_data.folder,
        motion_data.train_ids,
        motion_data.mean,
        motion_data.std,
        max_motion_length=config.max_frames,
        min_motion_length=settings.min_motion_length,
        unit_length=config.unit_length,
        max_source_length=None,
        seed=settings.seed,
    )
    if len(dataset) < settings.batch_size:
        raise EvaluatorError(
            f"{motion_data.folder.root}: {len(dataset)} training items, fewer than one batch of "
            f"{settings.batch_size}"
        )
    steps_per_epoch = len(dataset) // settings.batch_size
    total_steps = steps_per_epoch * settings.epochs
    losses: list[float] = []
    # A private RNG state for initialisation, dropout and shuffling: training neither reads nor changes
    # the caller's global torch RNG, and equal seeds give equal weights.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        model = TMRModel(config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        shuffle = torch.Generator().manual_seed(settings.seed)
        loader = DataLoader(
            dataset, batch_size=settings.batch_size, shuffle=True, drop_last=True, generator=shuffle
        )
        step = 0
        model.train()
        for epoch in range(settings.epochs):
            dataset.set_epoch(epoch)
            total = 0.0
            for captions, motion, length in loader:
                for group in optimizer.param_groups:
                    group["lr"] = _learning_rate(settings, step, total_steps)
                features = texts(list(captions)).to(device)
                # Crops are whole units; trim the batch to its longest one to skip all-padding tokens.
                frames = int(length.max())
                motion_emb = model.motion_encoder(
                    motion[:, :frames].to(device), (length // config.unit_length).to(device)
                )
                text_emb = model.text_head(features)
                loss = contrastive_loss(
                    text_emb, motion_emb, features, settings.temperature, settings.negative_filter
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                optimizer.step()
                total += loss.item()
                step += 1
            losses.append(total / steps_per_epoch)
            elapsed = time.perf_counter() - began
            say(f"epoch {epoch + 1}/{settings.epochs}: loss {losses[-1]:.4f} ({elapsed:.0f} s)")
    train_seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - began_cpu

    folder = motion_data.folder
    training: dict[str, Any] = {
        "dataset": {
            "name": folder.metadata.name,
            "split": settings.split,
            "train_ids": len(motion_data.train_ids),
            "train_ids_sha256": array_sha256(np.array(motion_data.train_ids)),
            "normalisation": "Mean.npy, model_std(Std.npy)",
        },
        "settings": dataclasses.asdict(settings),
        "items": len(dataset),
        "steps": total_steps,
        "epoch_losses": [round(value, 6) for value in losses],
        "train_seconds": round(train_seconds, 2),
        # CPU time of this process, all threads: on a shared machine it says more than the wall time.
        "train_cpu_seconds": round(cpu_seconds, 2),
        "torch_threads": torch.get_num_threads(),
    }
    evaluator = TMREvaluator(
        model, motion_data.mean, motion_data.std, text_encoder, training=training, device=device
    )
    if motion_data.val_ids:
        captions, motions = caption_motion_pairs(folder, motion_data.val_ids, seed=settings.seed)
        batch = min(32, len(captions))
        scores = r_precision(
            evaluator.encode_texts(captions), evaluator.encode_motions(motions), batch_size=batch
        )
        training["val_r_precision"] = {str(k): round(v, 4) for k, v in scores.items()}
        training["val_batch_size"] = batch
        say(f"val R-precision top-1/2/3: {scores[1]:.3f} / {scores[2]:.3f} / {scores[3]:.3f}")
    evaluator.training = training
    return evaluator
