"""The interface every text encoder follows, its error type and the identity check.

A text encoder turns captions into one feature vector each: `encode(texts) -> (N, dim) float32` on the
encoder's device, batched and without gradients. `identity()` is what a model folder records beside the
weights so that a model is never paired with an encoder other than the one it was trained with (see
`check_identity`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from benchmark.errors import HMUError

#: The identity fields that must agree between a model folder and the encoder that feeds it. The other fields
#: (file name, package version, ...) are informative: a renamed file with the same bytes is the same encoder.
IDENTITY_KEYS = ("encoder", "dim", "normalised", "weights_sha256", "random_seed")


class TextEncoderError(HMUError):
    """A text encoder cannot start or cannot be used: missing weights or package, bad file, wrong pairing."""


@runtime_checkable
class TextEncoder(Protocol):
    """A frozen sentence encoder. Implementations: `MiniLMEncoder`, `ClipTextEncoder`."""

    name: str
    dim: int
    normalised: bool
    device: torch.device

    def identity(self) -> dict[str, Any]:
        """What defines the features: encoder name, dim, normalised or not, weights (file name and sha256)."""
        ...

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, dim) float32 features on `self.device`, computed in batches with gradients off."""
        ...


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def check_texts(texts: Sequence[str]) -> list[str]:
    """The captions as a list; a bare string is refused (it would be encoded character by character)."""
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of strings, not a single string: wrap it in a list")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"encode(): item {i} is {type(text).__name__}, not str")
    return texts


def batches(items: list[str], batch_size: int) -> Iterator[list[str]]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


def check_identity(recorded: Mapping[str, Any], current: Mapping[str, Any] | TextEncoder) -> None:
    """Raise `TextEncoderError` when a model folder's recorded encoder identity differs from `current`.

    `current` is an encoder or its `identity()`. Only `IDENTITY_KEYS` are compared.
    """
    actual = current.identity() if isinstance(current, TextEncoder) else current
    differences = [
        f"{key}: model has {recorded.get(key)!r}, encoder has {actual.get(key)!r}"
        for key in IDENTITY_KEYS
        if recorded.get(key) != actual.get(key)
    ]
    if differences:
        raise TextEncoderError(
            "the model was trained with another text encoder than the one given ("
            + "; ".join(differences)
            + ")"
        )
