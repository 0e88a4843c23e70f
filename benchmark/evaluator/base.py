"""The interface every text-motion evaluator follows (`Evaluator`), its error type and shared helpers.

An evaluator embeds captions and motions into one space where a caption lies near the motions it describes.
The metrics (`benchmark.metrics`: FID, R-precision, MM-Dist, Diversity, the concept classifier) read only
these embeddings, so any implementation can feed them:

- `TMREvaluator` (`benchmark.evaluator.tmr`): the project's own, trained by `hmu train-evaluator` on any
  HumanML3D-layout dataset, independent of the backbone's weights;
- `GuoEvaluator` (`benchmark.evaluator.guo`): the standard Guo et al. (2022) evaluator, loaded from the
  released `text_mot_match` checkpoint, for numbers comparable with published tables.

    >>> evaluator = load_evaluator("runs/evaluator")           # a TMR-style folder or a Guo checkpoint root
    >>> text = evaluator.encode_texts(folder.captions(motion_id))            # (N, d) float32
    >>> motion = evaluator.encode_motions([folder.features(motion_id)])      # (1, d) float32
    >>> evaluator.identity()["weights_sha256"]                 # keys cached ground-truth statistics
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from benchmark.data.captions import Caption
from benchmark.errors import HMUError


class EvaluatorError(HMUError):
    """An evaluator cannot be built, loaded or used: missing or malformed file, wrong key, bad input."""


@runtime_checkable
class Evaluator(Protocol):
    """A frozen pair of text and motion encoders into one `embed_dim`-d space.

    Responsibilities of an implementation:
    - own its normalisation: motions come in as de-normalised (raw) `(T_i, 263)` features of any length, and
      the evaluator applies its own mean/std, length rounding, cropping and padding;
    - read from a caption what it needs (`.text` for sentence encoders, `.tokens` word/POS for GloVe ones);
    - batch internally, run without gradients in eval mode, and return float32 numpy arrays whose rows do
      not depend on the batch they were computed in (up to float rounding) nor on earlier calls;
    - say in `identity()` everything that determines its embeddings, so cached ground-truth statistics keyed
      on it are never reused with another evaluator.
    """

    name: str
    """Kind of evaluator ("tmr", "guo")."""
    embed_dim: int
    """Width d of the embeddings."""
    device: torch.device
    """Where the networks run."""

    def identity(self) -> dict[str, Any]:
        """JSON-compatible record of what produced the embeddings: at least `kind`, `config`,
        `weights_sha256` (a content hash of the weights) and `normalisation` (how motions are normalised,
        with a hash of the statistics). Equal identities mean equal embeddings."""
        ...

    def encode_texts(self, captions: Sequence[Caption]) -> np.ndarray:
        """(N, embed_dim) float32 embeddings of N captions."""
        ...

    def encode_motions(self, motions: Sequence[np.ndarray]) -> np.ndarray:
        """(N, embed_dim) float32 embeddings of N raw (de-normalised) `(T_i, 263)` feature arrays."""
        ...


def load_state_strict(module: torch.nn.Module, state: object, path: Path, prefix: str = "") -> None:
    """Load `state` into `module` only if it has exactly the module's keys and shapes; otherwise name the
    first missing, unexpected or mis-shaped key (as `prefix` + key) and the file."""
    if not isinstance(state, Mapping):
        raise EvaluatorError(
            f"{path}: {prefix or 'the weights'} is not a state dict ({type(state).__name__})"
        )
    expected = module.state_dict()
    for key in expected:
        if key not in state:
            raise EvaluatorError(f"{path}: key '{prefix}{key}' is missing")
    for key in state:
        if key not in expected:
            raise EvaluatorError(f"{path}: unexpected key '{prefix}{key}'")
    for key, value in expected.items():
        if not isinstance(state[key], torch.Tensor) or tuple(state[key].shape) != tuple(value.shape):
            shape = tuple(getattr(state[key], "shape", ()))
            raise EvaluatorError(
                f"{path}: key '{prefix}{key}' has shape {shape}, expected {tuple(value.shape)}"
            )
    module.load_state_dict({key: value.float() for key, value in state.items()})


def load_statistic(path: Path, dim: int, what: str = "normalisation statistic") -> np.ndarray:
    """A (dim,) finite float32 vector from a `.npy` file (mean, std); any problem names the file."""
    try:
        values = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise EvaluatorError(f"{path}: file is missing (the {what})") from None
    except (ValueError, OSError, EOFError) as error:
        raise EvaluatorError(f"{path}: not a readable .npy array ({error})") from None
    if values.shape != (dim,) or not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
        raise EvaluatorError(f"{path}: expected ({dim},) finite values, got {values.dtype} {values.shape}")
    return values.astype(np.float32)


def identity_hash(identity: Mapping[str, Any]) -> str:
    """sha256 of an identity record in canonical JSON: a short, stable cache key for an evaluator."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def array_sha256(*arrays: np.ndarray) -> str:
    """sha256 over the dtype, shape and bytes of arrays (normalisation statistics, vocabularies)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def state_dict_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over a state dict's names, dtypes, shapes and values, in sorted key order.

    A hash of the tensors rather than of the file: the same weights give the same hash whichever way they
    were saved (a `.pt` of ours, a `.tar` of the original code).
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def check_captions(captions: Sequence[Caption], what: str = "encode_texts") -> list[Caption]:
    """The captions as a list; a bare Caption or str, or any non-Caption item, is a clear error."""
    if isinstance(captions, (Caption, str)):
        raise EvaluatorError(f"{what}() takes a sequence of Caption objects: wrap a single one in a list")
    captions = list(captions)
    for index, caption in enumerate(captions):
        if not isinstance(caption, Caption):
            raise EvaluatorError(
                f"{what}(): item {index} is {type(caption).__name__}, not a Caption "
                "(benchmark.data.captions.Caption; build one with parse_caption_line)"
            )
    return captions


def check_motions(
    motions: Sequence[np.ndarray], feature_dim: int, what: str = "encode_motions"
) -> list[np.ndarray]:
    """The motions as a list of finite float32 `(T_i, feature_dim)` arrays with T_i >= 1, or a clear error."""
    if isinstance(motions, np.ndarray) and motions.ndim == 2:
        raise EvaluatorError(
            f"{what}() takes a sequence of (T, {feature_dim}) arrays: wrap one motion in a list"
        )
    checked: list[np.ndarray] = []
    for index, motion in enumerate(motions):
        if isinstance(motion, torch.Tensor):
            motion = motion.detach().cpu().numpy()
        motion = np.asarray(motion)
        if motion.ndim != 2 or motion.shape[1] != feature_dim:
            raise EvaluatorError(
                f"{what}(): motion {index} has shape {motion.shape}, expected (T, {feature_dim})"
            )
        if motion.shape[0] == 0:
            raise EvaluatorError(f"{what}(): motion {index} has no frame")
        if not np.issubdtype(motion.dtype, np.number) or not np.isfinite(motion).all():
            raise EvaluatorError(f"{what}(): motion {index} holds NaN, infinite or non-numeric values")
        checked.append(motion.astype(np.float32, copy=False))
    return checked
