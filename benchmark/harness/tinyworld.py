"""A tiny self-made world for exercising a method image without any data: a random small model, request
folders for `unlearn` and `generate`, and a few prompts. The conformance suite (`hmu check`) runs on it, and
so do the runner tests.

    >>> model = tiny_model(work / "base")                        # a random small backbone, a model folder
    >>> unlearn_in = unlearn_input(work / "unlearn.in", model)   # request.json, the model, an empty data view
    >>> generate_in = generate_input(work / "generate.in", model)

The request folders use relative paths only, so the same folder works mounted at `/hmu/input` and on the
host, and every file is readable by others (`make_readable`): the container runs as another user. The model's
weights are random, so the motions mean nothing; what is exercised is the contract (files, shapes, seeds).
Importing this module imports torch.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from benchmark.api.contract import REQUEST_FILE
from benchmark.backbone.config import BackboneConfig
from benchmark.backbone.generation import Prompt, write_prompts
from benchmark.backbone.model import Backbone, save_model
from benchmark.text.encoders import build_text_encoder

PROMPTS: tuple[Prompt, ...] = (
    Prompt("walk", "a person walks forward", 24, repeats=2, seed=1),
    Prompt("kick", "a person kicks with the right leg", 17, repeats=1, seed=2),
)
"""Two prompts (one naming the concept), three motions; the lengths are given, so no length is drawn."""

SETTINGS: dict[str, int] = {"timesteps": 2, "batch_size": 4}
"""Sampling settings: fewer decoding steps than MoMask's 10 (the contract does not depend on the count)."""

CONCEPT = {"name": "violence", "keywords": ["kick", "punch"]}
"""The concept the unlearn request asks to forget."""


def make_readable(path: Path) -> Path:
    """Let another user (the container's uid 1000) read a folder tree made by this process: folders 0755,
    files 0644 (temporary folders are 0700)."""
    for folder, _, files in os.walk(path):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)
    return path


def tiny_model(path: Path) -> Path:
    """A random small backbone saved as a model folder (MiniLM text features, 263-d motions). The same
    every time: seeded."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    backbone = Backbone(BackboneConfig.small(), rng.normal(size=263), rng.uniform(0.5, 2.0, size=263))
    with torch.no_grad():  # an untrained RVQ has all-zero codebooks: every code would decode alike
        for codebook in backbone.rvq.codebooks:
            codebook.normal_()
    save_model(
        backbone,
        path,
        text_encoder_identity=build_text_encoder("minilm").identity(),
        dataset={"name": "embedded", "fps": 20.0, "feature_dim": 263},
        provenance={"kind": "trained", "recipe": "random"},
    )
    return path


def unlearn_input(folder: Path, model: Path, *, time_budget_s: float | None = None) -> Path:
    """A request folder for `unlearn`: the model copied in, an empty data folder, relative paths only."""
    folder.mkdir(parents=True)
    shutil.copytree(model, folder / "base_model")
    (folder / "data").mkdir()
    request = {
        "schema": "hmu.unlearn-request/1",
        "task": {"name": "embedded_violence", "version": 1},
        "concept": CONCEPT,
        "base_model": "base_model",
        "data_dir": "data",
        "forget": {"motion_ids": ["000001"], "prompts": ["a person kicks"]},
        "retain": {"motion_ids": ["000002"], "prompts": ["a person walks"]},
        "seed": 0,
        "device": "cpu",
    }
    if time_budget_s is not None:
        request["time_budget_s"] = time_budget_s
    (folder / REQUEST_FILE).write_text(json.dumps(request))
    return make_readable(folder)


def generate_input(folder: Path, model: Path) -> Path:
    """A request folder for `generate`: the model copied in, the prompt file (`PROMPTS`), relative paths."""
    folder.mkdir(parents=True)
    shutil.copytree(model, folder / "model")
    write_prompts(folder / "prompts.json", PROMPTS)
    request = {
        "schema": "hmu.generate-request/1",
        "model": "model",
        "prompts": "prompts.json",
        "settings": SETTINGS,
        "device": "cpu",
    }
    (folder / REQUEST_FILE).write_text(json.dumps(request))
    return make_readable(folder)
