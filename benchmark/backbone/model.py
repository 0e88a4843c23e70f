"""The model folder: the unit an unlearning method receives and returns.

A model folder holds one complete text-to-motion backbone, its normalisation and what it needs to be used
(text encoder identity, dataset) and where it came from (provenance):

    <dir>/model.json                 {"format": "hmu-model", "format_version": 1, "config": BackboneConfig,
                                      "text_encoder": identity, "dataset": {"name", "fps", "feature_dim"},
                                      "parts": {part: file}, "provenance": {...}}
    <dir>/rvq.pt                     torch.save of the part's plain state dict (read with weights_only=True)
    <dir>/mask_transformer.pt
    <dir>/residual_transformer.pt
    <dir>/length_estimator.pt        optional: without it, every prompt needs a length
    <dir>/mean.npy, <dir>/std.npy    the model's normalisation, float32 (feature_dim,); std is already divided
                                     by feat_bias on the root and foot-contact dims, as MoMask's meta/std.npy

Loading is strict and never falls back to another file: a listed part that is missing, a missing or
unexpected key, or a tensor of the wrong shape is a `CheckpointError` naming the file and the keys.

    loaded = load_model("models/base", device="cpu")
    backbone, card = loaded.backbone, loaded.card
    ...  # fine-tune backbone.mask_transformer, edit backbone.rvq.codebooks ...
    save_model(backbone, "out/model", text_encoder_identity=card.text_encoder, dataset=card.dataset,
               provenance={"method": "rece", "parent": model_hash("models/base")})
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from benchmark.backbone.checkpoints import CheckpointError, load_official_state_dict
from benchmark.backbone.config import BackboneConfig
from benchmark.backbone.length_estimator import LengthEstimator
from benchmark.backbone.rvq import ResidualVQVAE
from benchmark.backbone.transformers import MaskTransformer, ResidualTransformer
from benchmark.errors import ConfigError, HMUError

MODEL_FORMAT = "hmu-model"
MODEL_FORMAT_VERSION = 1
CARD_FILE = "model.json"
MEAN_FILE = "mean.npy"
STD_FILE = "std.npy"

REQUIRED_PARTS = ("rvq", "mask_transformer", "residual_transformer")
"""Parts every model folder has."""
OPTIONAL_PARTS = ("length_estimator",)
"""Parts a model folder may lack (then every prompt must come with a length)."""
PART_FILES = {part: f"{part}.pt" for part in REQUIRED_PARTS + OPTIONAL_PARTS}
"""The file `save_model` writes for each part."""

HASH_SCHEME = "hmu-model-sha256/1"
"""Fed first into `model_hash`, so a change of the hashing rules can never collide with older hashes."""


# ----------------------------------------------------------------------------- model card


@dataclass(frozen=True)
class DatasetInfo:
    """The motion data a model was trained on, which fixes its feature space."""

    name: str
    """Dataset name, e.g. `embedded`, `HumanML3D`, `Motion-X` (MoMask's `t2m` is recorded as HumanML3D)."""
    fps: float
    """Frames per second of the features (20 for HumanML3D)."""
    feature_dim: int
    """Width of a frame's feature vector (263 in the HumanML3D representation)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "fps": self.fps, "feature_dim": self.feature_dim}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | Path = CARD_FILE) -> DatasetInfo:
        _expect_keys(data, ("name", "fps", "feature_dim"), path, "dataset")
        name, fps, dim = data["name"], data["fps"], data["feature_dim"]
        if not isinstance(name, str) or not name:
            raise ConfigError(path, "dataset.name", f"expected a non-empty string, got {name!r}")
        if isinstance(fps, bool) or not isinstance(fps, int | float) or fps <= 0:
            raise ConfigError(path, "dataset.fps", f"expected a positive number, got {fps!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(path, "dataset.feature_dim", f"expected a positive integer, got {dim!r}")
        return cls(name=name, fps=float(fps), feature_dim=dim)


@dataclass(frozen=True)
class ModelCard:
    """The content of `model.json`: everything about a model folder except the tensors."""

    config: BackboneConfig
    """Sizes of the four parts (the length estimator's config is kept even when the part is absent)."""
    text_encoder: dict[str, Any]
    """`TextEncoder.identity()` of the encoder the model conditions on; generation refuses another one."""
    dataset: DatasetInfo
    """The feature space of the motions the model makes."""
    parts: dict[str, str]
    """Part name -> file name inside the folder; always the three `REQUIRED_PARTS`, maybe the estimator."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """How the model was made (trained, imported, unlearned by which method from which parent hash). Part of
    the model hash, so it must hold no timestamps or host names if equal weights are to hash equal."""

    @property
    def has_length_estimator(self) -> bool:
        return "length_estimator" in self.parts

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "config": self.config.to_dict(),
            "text_encoder": dict(self.text_encoder),
            "dataset": self.dataset.to_dict(),
            "parts": dict(self.parts),
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | Path = CARD_FILE) -> ModelCard:
        """The card from parsed `model.json`; anything malformed is a ConfigError naming `path` and field."""
        keys = ("format", "format_version", "config", "text_encoder", "dataset", "parts", "provenance")
        _expect_keys(data, keys, path, None)
        if data["format"] != MODEL_FORMAT:
            raise ConfigError(path, "format", f"expected {MODEL_FORMAT!r}, got {data['format']!r}")
        if data["format_version"] != MODEL_FORMAT_VERSION:
            raise ConfigError(
                path,
                "format_version",
                f"this code reads version {MODEL_FORMAT_VERSION}, the folder is version "
                f"{data['format_version']!r}",
            )
        for key in ("config", "text_encoder", "dataset", "parts", "provenance"):
            if not isinstance(data[key], Mapping):
                raise ConfigError(path, key, f"expected an object, got {type(data[key]).__name__}")
        try:
            config = BackboneConfig.from_dict(data["config"])
        except (ValueError, TypeError) as error:
            raise ConfigError(path, "config", str(error)) from error
        text_encoder = dict(data["text_encoder"])
        if not isinstance(text_encoder.get("encoder"), str):
            raise ConfigError(path, "text_encoder.encoder", "expected the encoder's name (a string)")
        if text_encoder.get("dim") != config.mask.cond_dim:
            raise ConfigError(
                path,
                "text_encoder.dim",
                f"{text_encoder.get('dim')!r} differs from the transformers' cond_dim {config.mask.cond_dim}",
            )
        dataset = DatasetInfo.from_dict(data["dataset"], path)
        if dataset.feature_dim != config.rvq.input_dim:
            raise ConfigError(
                path,
                "dataset.feature_dim",
                f"{dataset.feature_dim} does not match the RVQ's input_dim {config.rvq.input_dim}",
            )
        parts = dict(data["parts"])
        missing = [part for part in REQUIRED_PARTS if part not in parts]
        unknown = sorted(part for part in parts if part not in PART_FILES)
        if missing or unknown:
            raise ConfigError(path, "parts", f"missing part(s) {missing}, unknown part(s) {unknown}")
        for part, name in parts.items():
            if (
                not isinstance(name, str)
                or not _is_plain_name(name)
                or name in (CARD_FILE, MEAN_FILE, STD_FILE)
            ):
                raise ConfigError(
                    path, f"parts.{part}", f"expected a plain file name in the folder, got {name!r}"
                )
        if len(set(parts.values())) != len(parts):
            raise ConfigError(path, "parts", "two parts name the same file")
        return cls(config, text_encoder, dataset, parts, dict(data["provenance"]))


def _expect_keys(data: Any, keys: tuple[str, ...], path: str | Path, owner: str | None) -> None:
    where = f"{owner}." if owner else ""
    if not isinstance(data, Mapping):
        raise ConfigError(path, owner, f"expected an object, got {type(data).__name__}")
    missing = [key for key in keys if key not in data]
    unknown = sorted(key for key in data if key not in keys)
    if missing:
        raise ConfigError(path, where + missing[0], f"missing (required keys: {list(keys)})")
    if unknown:
        raise ConfigError(path, where + unknown[0], f"unknown key (known keys: {list(keys)})")


def _is_plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def canonical_json(data: Mapping[str, Any]) -> bytes:
    """The one byte string a JSON object hashes as: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def read_model_card(directory: str | Path) -> ModelCard:
    """Parse and validate `<directory>/model.json` (no tensors are read)."""
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        raise ConfigError(path, None, "not a model folder: model.json is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(path, None, f"not valid JSON: {error}") from error
    return ModelCard.from_dict(data, path)


# ----------------------------------------------------------------------------- the backbone module


class Backbone(nn.Module):
    """The four parts of a model plus its normalisation, moved and switched to eval mode together.

    `mean` and `std` are non-persistent buffers: they follow `.to(device)` but stay out of `state_dict()`,
    which therefore holds exactly the tensors of the part files (prefixed by the part name).
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        config: BackboneConfig,
        mean: np.ndarray | Tensor,
        std: np.ndarray | Tensor,
        *,
        length_estimator: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.rvq = ResidualVQVAE(config.rvq)
        self.mask_transformer = MaskTransformer(config.mask)
        self.residual_transformer = ResidualTransformer(config.residual)
        self.length_estimator: LengthEstimator | None = (
            LengthEstimator(config.length) if length_estimator else None
        )
        shape = (config.rvq.input_dim,)
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float32))
        if tuple(mean_t.shape) != shape or tuple(std_t.shape) != shape:
            raise ValueError(
                f"mean and std must have shape {shape}, got {tuple(mean_t.shape)}, {tuple(std_t.shape)}"
            )
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all() and (std_t > 0).all()):
            raise ValueError("mean must be finite and std finite and positive")
        self.register_buffer("mean", mean_t.clone(), persistent=False)
        self.register_buffer("std", std_t.clone(), persistent=False)

    @property
    def frames_per_token(self) -> int:
        return self.config.rvq.frames_per_token

    def parts(self) -> dict[str, nn.Module]:
        """The present parts by name (the estimator only if there is one)."""
        parts: dict[str, nn.Module] = {
            "rvq": self.rvq,
            "mask_transformer": self.mask_transformer,
            "residual_transformer": self.residual_transformer,
        }
        if self.length_estimator is not None:
            parts["length_estimator"] = self.length_estimator
        return parts

    def normalise(self, motion: Tensor) -> Tensor:
        """Dataset features (..., D) -> the model's normalised space."""
        return (motion - self.mean) / self.std

    def denormalise(self, motion: Tensor) -> Tensor:
        """The model's normalised space (..., D) -> dataset features."""
        return motion * self.std + self.mean


@dataclass(frozen=True)
class LoadedModel:
    """A model folder read into memory."""

    backbone: Backbone
    """The parts with their weights, on the requested device, in eval mode."""
    card: ModelCard
    """The folder's `model.json`."""
    path: Path
    """The folder it was read from."""


# ----------------------------------------------------------------------------- device


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """`name` as a torch device (None: cuda if there is one, else cpu); cuda without a GPU is an error."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise HMUError(f"unknown device {str(name)!r}: {error}") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise HMUError(f"device {str(name)!r} was asked for, but no CUDA device is available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise HMUError(f"device {str(name)!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


# ----------------------------------------------------------------------------- save


def save_model(
    backbone: Backbone,
    directory: str | Path,
    *,
    text_encoder_identity: Mapping[str, Any],
    dataset: DatasetInfo | Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> ModelCard:
    """Write `backbone` as a model folder at `directory`; returns its card.

    The folder is built in a temporary sibling and renamed into place, so a crash never leaves a half
    folder. An existing non-empty `directory` is refused unless `overwrite=True` (then it is replaced).
    """
    directory = Path(directory)
    info = (
        dataset if isinstance(dataset, DatasetInfo) else DatasetInfo.from_dict(dataset, directory / CARD_FILE)
    )
    parts = {part: PART_FILES[part] for part in backbone.parts()}
    card = ModelCard(backbone.config, dict(text_encoder_identity), info, parts, dict(provenance or {}))
    # Validate through the same path as loading, so that no folder is written that could not be read back.
    try:
        plain = json.loads(canonical_json(card.to_dict()))
    except (TypeError, ValueError) as error:
        raise HMUError(
            f"{directory}: the text encoder identity and provenance must be plain JSON: {error}"
        ) from error
    ModelCard.from_dict(plain, directory / CARD_FILE)
    if directory.exists() and not directory.is_dir():
        raise HMUError(f"{directory}: exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise HMUError(f"{directory}: folder exists and is not empty (pass overwrite=True to replace it)")

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        for part, module in backbone.parts().items():
            # Plain tensors, detached and contiguous on the CPU: exactly what weights_only loading accepts.
            state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
            buffer = io.BytesIO()
            torch.save(state, buffer)
            (staging / parts[part]).write_bytes(buffer.getvalue())
        np.save(staging / MEAN_FILE, backbone.mean.detach().cpu().numpy().astype(np.float32))
        np.save(staging / STD_FILE, backbone.std.detach().cpu().numpy().astype(np.float32))
        (staging / CARD_FILE).write_text(
            json.dumps(card.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8"
        )
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700; a model folder is read by other users (containers)
        _replace_folder(staging, directory)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return card


def _replace_folder(source: Path, destination: Path) -> None:
    """Rename `source` to `destination`; a non-empty destination is moved aside first, then removed."""
    if destination.is_dir() and any(destination.iterdir()):
        aside = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".old"))
        os.replace(destination, aside / "old")
        try:
            os.replace(source, destination)
        except OSError:
            os.replace(aside / "old", destination)
            raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(source, destination)  # rename(2) replaces an empty folder


# ----------------------------------------------------------------------------- load


def _read_state_dict(path: Path, part: str) -> dict[str, Tensor]:
    if not path.is_file():
        raise CheckpointError(path, f"the {part} file listed in {CARD_FILE} is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged zip; all mean "unreadable"
        raise CheckpointError(
            path, f"cannot read the {part} state dict: {type(error).__name__}: {error}"
        ) from error
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise CheckpointError(path, f"the {part} file does not hold a plain state dict (str -> tensor)")
    return dict(state)


def _read_vector(path: Path, dim: int) -> np.ndarray:
    if not path.is_file():
        raise CheckpointError(path, "missing (the model folder's normalisation)")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise CheckpointError(path, f"not a readable .npy file: {error}") from error
    if array.shape != (dim,):
        raise CheckpointError(path, f"expected shape ({dim},), found {array.shape}")
    if not np.isfinite(array).all():
        raise CheckpointError(path, "holds NaN or infinite values")
    return array.astype(np.float32)


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a model folder onto `device`, strictly (see the module docstring); the backbone is in eval
    mode."""
    directory = Path(directory)
    card = read_model_card(directory)
    dim = card.dataset.feature_dim
    mean = _read_vector(directory / MEAN_FILE, dim)
    std = _read_vector(directory / STD_FILE, dim)
    if (std <= 0).any():
        raise CheckpointError(directory / STD_FILE, "holds values <= 0")
    backbone = Backbone(card.config, mean, std, length_estimator=card.has_length_estimator)
    modules = backbone.parts()
    for part, name in card.parts.items():
        path = directory / name
        state = _read_state_dict(path, part)
        load_official_state_dict(modules[part], state, part=part, path=path)
    return LoadedModel(backbone.to(resolve_device(device)).eval(), card, directory)


# ----------------------------------------------------------------------------- hash


def _hash_tensor(digest: Any, name: str, tensor: Tensor) -> None:
    data = tensor.detach().cpu().contiguous()
    header = f"{name}|{str(data.dtype).removeprefix('torch.')}|{tuple(data.shape)}|".encode()
    digest.update(len(header).to_bytes(8, "little") + header)
    raw = data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b""
    digest.update(len(raw).to_bytes(8, "little") + raw)


def model_hash(directory: str | Path) -> str:
    """sha256 (hex) identifying a model folder's content: model.json's canonical JSON, then every listed
    part's tensors (sorted by part, then key: name, dtype, shape, bytes), then mean and std.

    The tensors are hashed rather than the .pt bytes because torch.save writes a random serialisation id
    into every file: equal weights must hash equal however often they are saved.
    """
    directory = Path(directory)
    card = read_model_card(directory)
    digest = hashlib.sha256()
    digest.update(HASH_SCHEME.encode() + b"\n")
    digest.update(canonical_json(card.to_dict()) + b"\n")
    for part in sorted(card.parts):
        state = _read_state_dict(directory / card.parts[part], part)
        for key in sorted(state):
            _hash_tensor(digest, f"{part}.{key}", state[key])
    dim = card.dataset.feature_dim
    for name in (MEAN_FILE, STD_FILE):
        _hash_tensor(digest, name, torch.from_numpy(_read_vector(directory / name, dim)))
    return digest.hexdigest()
