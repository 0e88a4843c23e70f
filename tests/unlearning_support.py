"""Helpers of the unlearning-method tests: a tiny generated dataset, a random small model on its
normalisation, and unlearn requests over them (test_method_lcr.py, test_method_uce_rece.py)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.api.registry import discover_methods
from benchmark.backbone.config import BackboneConfig
from benchmark.backbone.model import Backbone, load_model, save_model
from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.data.synth import SynthConfig, generate_dataset
from benchmark.text.encoders import build_text_encoder

REPO_METHODS = Path(__file__).resolve().parent.parent / "methods"
KEYWORDS = ("kick", "punch", "hit", "uppercut", "jab", "hook")
"""The concept of the test requests (the embedded violence keywords that occur in generated captions)."""


def method_module(name: str) -> types.ModuleType:
    """The imported `method.py` of a repository method (its functions are tested directly)."""
    return sys.modules[discover_methods(REPO_METHODS).get(name).load().__module__]


def make_dataset(path: Path) -> Path:
    """20 generated motions (40 ids with the mirrored copies), a third of them violent."""
    generate_dataset(path, SynthConfig(motions=20, seed=0, violent_fraction=0.3, write_joints=False))
    return path


def make_model(path: Path, data: Path, seed: int = 0, text_encoder: dict[str, Any] | None = None) -> Path:
    """A randomly initialised small model normalised with the dataset's statistics; its codebooks are
    random too (an untrained RVQ's are all zero: every code would be alike). It records MiniLM as its text
    encoder, or `text_encoder` (an identity), for tests that never encode text and should not load MiniLM."""
    torch.manual_seed(seed)
    folder = HumanML3DFolder(data)
    backbone = Backbone(BackboneConfig.small(), folder.mean(), np.maximum(folder.std(), 1e-2))
    with torch.no_grad():
        for codebook in backbone.rvq.codebooks:
            codebook.normal_()
        for layer in (backbone.mask_transformer.cond_emb, backbone.residual_transformer.cond_emb):
            layer.bias.normal_(std=0.1)  # a trained layer has a bias: the tests must see what it does
    save_model(
        backbone,
        path,
        text_encoder_identity=text_encoder or build_text_encoder("minilm").identity(),
        dataset={"name": "embedded", "fps": 20.0, "feature_dim": 263},
        provenance={"kind": "trained", "recipe": "random"},
    )
    return path


def split_ids(data: Path) -> tuple[list[str], list[str]]:
    """train_val ids whose captions name a keyword (forget), and the others (retain)."""
    folder = HumanML3DFolder(data)
    forget, retain = [], []
    for motion_id in folder.ids("train_val"):
        words = {word for caption in folder.captions(motion_id) for word in caption.text.lower().split()}
        mentions = any(word.startswith(keyword) for word in words for keyword in KEYWORDS)
        (forget if mentions else retain).append(motion_id)
    return forget, retain


def write_request(
    folder: Path,
    model: Path,
    data: Path,
    forget: list[str],
    retain: list[str],
    parameters: dict[str, Any] | None = None,
    seed: int = 0,
) -> Path:
    """An unlearn request folder for the embedded violence task."""
    folder.mkdir(parents=True)
    request = {
        "schema": "hmu.unlearn-request/1",
        "task": {"name": "embedded_violence", "version": 1},
        "concept": {"name": "violence", "keywords": list(KEYWORDS)},
        "base_model": str(model),
        "data_dir": str(data),
        "forget": {"motion_ids": forget, "prompts": ["a person kicks"]},
        "retain": {"motion_ids": retain, "prompts": ["a person walks"]},
        "seed": seed,
        "parameters": parameters or {},
        "device": "cpu",
    }
    (folder / "request.json").write_text(json.dumps(request))
    return folder


def state(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a model folder, by backbone state-dict key."""
    return load_model(path).backbone.state_dict()


def changed_tensors(base: Path, other: Path) -> list[str]:
    """Keys whose tensors differ between two model folders (bit for bit)."""
    before, after = state(base), state(other)
    assert before.keys() == after.keys()
    return sorted(key for key in before if not torch.equal(before[key], after[key]))
