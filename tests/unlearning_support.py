"""Helpers of the unlearning-method tests.

- A tiny generated dataset, a random small model on its normalisation, and unlearn requests over them
  (test_method_lcr.py, test_method_uce_rece.py, test_method_training.py): fast, for what a method does to
  the weights.
- A trained world (`trained_world`), built once per session: the evaluation world's dataset and trained
  evaluator (test_evaluate_verb.build_world), a small backbone trained on it by `benchmark.training` with
  the provenance `hmu train` writes, the task's concept split and an evaluation plan; `run_and_score` takes a
  method through the entrypoint (unlearn, generate) and scores its motions with the real evaluator
  (test_method_direction.py): for whether a method moves the metrics the way it should.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_evaluate_verb import build_world

from benchmark.api.entrypoint import EXIT_OK, run_stage
from benchmark.api.registry import discover_methods
from benchmark.backbone.config import (
    BackboneConfig,
    LengthEstimatorConfig,
    MaskTransformerConfig,
    ResidualTransformerConfig,
    RVQConfig,
)
from benchmark.backbone.generation import read_motions
from benchmark.backbone.model import Backbone, load_model, save_model
from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.data.synth import SynthConfig, generate_dataset
from benchmark.evaluation.prompts import (
    PROMPTS_FILE,
    REFERENCES_FILE,
    build_evaluation_plan,
    read_plan,
    write_plan,
)
from benchmark.evaluation.protocol import EvaluationReport, EvaluationRequest, GroundTruthCache, evaluate
from benchmark.evaluator import load_evaluator
from benchmark.splits import compute_split
from benchmark.tasks import load_task
from benchmark.text.encoders import build_text_encoder
from benchmark.training import MODEL_PARTS, MotionData, TextFeatureCache, TrainSettings
from benchmark.training.loops import data_record, part_record, train_part

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


# ----------------------------------------------------------------------------- a trained world

TASK = REPO_METHODS.parent / "tasks" / "embedded_violence.yaml"

WORLD_CONFIG = BackboneConfig(
    RVQConfig(width=64, code_dim=64, nb_code=128, num_quantizers=3),
    MaskTransformerConfig(
        num_tokens=128,
        code_dim=64,
        latent_dim=64,
        ff_size=128,
        n_layers=2,
        n_heads=2,
        cond_dim=384,
        max_len=64,
    ),
    ResidualTransformerConfig(
        num_tokens=128,
        code_dim=64,
        num_quantizers=3,
        latent_dim=64,
        ff_size=128,
        n_layers=2,
        n_heads=2,
        cond_dim=384,
        max_len=64,
    ),
    LengthEstimatorConfig(cond_dim=384, hidden_dim=64),
)
"""Narrower than `BackboneConfig.small()` (3 RVQ layers of 128 codes, 2-layer transformers of width 64):
the smallest size found at which the trained model still follows the text (it makes violent motions for
violent captions far more often than for the others), and trains in about a minute on one core."""

WORLD_RECIPE = {
    "rvq": TrainSettings(part="rvq", steps=200, batch_size=32, lr=2e-3, warmup_steps=20, milestones=(160,)),
    "mask": TrainSettings(
        part="mask", steps=300, batch_size=32, lr=3e-3, weight_decay=1e-5, warmup_steps=20, milestones=(240,)
    ),
    "residual": TrainSettings(
        part="residual",
        steps=40,
        batch_size=32,
        lr=2e-3,
        weight_decay=1e-5,
        warmup_steps=10,
        milestones=(32,),
    ),
    "length": TrainSettings(
        part="length", steps=20, batch_size=32, lr=1e-3, betas=(0.9, 0.999), grad_clip=0.5
    ),
}
"""The base model's recipe (what `retrain` reads back from its model.json and repeats)."""

WORLD_PASSES = 4
"""Generation passes and evaluation repeats."""
WORLD_PROMPTS = 32
"""Reference motions per prompt set at most (the forget test set has fewer)."""
WORLD_GENERATION = {"timesteps": 6}
"""Fewer decoding steps than MoMask's 10: the direction of a method does not depend on the count."""


@dataclass(frozen=True)
class TrainedWorld:
    data: Path
    """The evaluation world's generated dataset (240 motions, 40 % violent)."""
    evaluator: Path
    """Its trained evaluator."""
    base: Path
    """The trained base model folder."""
    plan: Path
    """The evaluation plan's folder (prompts.json, references.json)."""
    forget: tuple[str, ...]
    """The task's forget ids of the training split (train_val)."""
    retain: tuple[str, ...]
    """Its retain ids."""
    root: Path
    """Where runs and the ground-truth cache go."""


def trained_world(tmp_path_factory: pytest.TempPathFactory) -> TrainedWorld:
    """The trained world, built on first use in a test session (about two minutes on one core)."""
    data, evaluator = build_world(tmp_path_factory)
    root = tmp_path_factory.getbasetemp() / "hmu-unlearning-world"
    base, plan = root / "base", root / "plan"
    task = load_task(TASK)
    split = compute_split(task, data)
    training = next(part for part in split.parts if part.split != "test")
    if not (root / "ready").exists():
        root.mkdir(exist_ok=True)
        train_base_model(data, base)
        folder = HumanML3DFolder(data)
        write_plan(
            build_evaluation_plan(task, folder, split, passes=WORLD_PASSES, max_prompts=WORLD_PROMPTS), plan
        )
        (root / "ready").write_text("", encoding="utf-8")
    return TrainedWorld(data, evaluator, base, plan, training.forget, training.retain, root)


def train_base_model(data: Path, out: Path) -> None:
    """Train every part of a WORLD_CONFIG backbone on the dataset's train split with WORLD_RECIPE, through
    `benchmark.training.train_part`, and save it with the provenance `hmu train` writes."""
    motions = MotionData.open(data, "train", None)
    texts = TextFeatureCache(build_text_encoder("minilm"))
    texts.precompute(motions.captions(motions.train_ids), progress=False)
    torch.manual_seed(3407)
    backbone = Backbone(WORLD_CONFIG, motions.mean, motions.std)
    facts = data_record(motions)
    parts = {}
    for part, settings in WORLD_RECIPE.items():
        settings = dataclasses.replace(settings, progress=False)
        result = train_part(part, backbone, motions, texts, settings)
        parts[MODEL_PARTS[part]] = part_record(part, result, settings, facts, backbone, texts)
    save_model(
        backbone.eval(),
        out,
        text_encoder_identity=texts.identity,
        dataset={"name": "embedded", "fps": 20.0, "feature_dim": 263},
        provenance={"kind": "trained", "recipe": "test world", "parts": parts},
    )


@dataclass(frozen=True)
class ScoredRun:
    """A method's run on the trained world."""

    report: EvaluationReport
    """The evaluator's report on its motions."""
    unlearn: dict[str, Any]
    """The unlearn stage's result.json."""
    model: Path
    """The unlearned model folder."""
    seconds: float
    """Wall-clock of the unlearn stage (the entrypoint's `wall_seconds`)."""

    def value(self, prompt_set: str, metric: str) -> float:
        return self.report.prompt_set(prompt_set).metric(metric).result.value


def run_and_score(world: TrainedWorld, method: str, parameters: dict[str, Any] | None = None) -> ScoredRun:
    """Unlearn with `method` (seed 0) and generate the plan's prompts through the entrypoint, as the
    containers run them, then score the motions with the real evaluator."""
    run = world.root / "runs" / method
    request = {
        "schema": "hmu.unlearn-request/1",
        "task": {"name": "embedded_violence", "version": 1},
        "concept": {"name": "violence", "keywords": list(load_task(TASK).concept.keywords)},
        "base_model": str(world.base),
        "data_dir": str(world.data),
        "forget": {"motion_ids": list(world.forget), "prompts": ["a person kicks"]},
        "retain": {"motion_ids": list(world.retain), "prompts": ["a person walks"]},
        "seed": 0,
        "parameters": parameters or {},
        "time_budget_s": 600.0,
        "device": "cpu",
    }
    (run / "unlearn.in").mkdir(parents=True)
    (run / "unlearn.in" / "request.json").write_text(json.dumps(request))
    code = run_stage("unlearn", method, run / "unlearn.in", run / "unlearn.out", [REPO_METHODS])
    unlearned = json.loads((run / "unlearn.out" / "result.json").read_text())
    assert code == EXIT_OK, unlearned
    generate = {
        "schema": "hmu.generate-request/1",
        "model": str(run / "unlearn.out" / "model"),
        "prompts": str(world.plan / PROMPTS_FILE),
        "settings": WORLD_GENERATION,
        "device": "cpu",
    }
    (run / "generate.in").mkdir()
    (run / "generate.in" / "request.json").write_text(json.dumps(generate))
    code = run_stage("generate", method, run / "generate.in", run / "generate.out", [REPO_METHODS])
    assert code == EXIT_OK, (run / "generate.out" / "result.json").read_text()
    plan = read_plan(world.plan / REFERENCES_FILE)
    report = evaluate(
        EvaluationRequest(plan, repeats=WORLD_PASSES),
        load_evaluator(world.evaluator),
        read_motions(run / "generate.out" / "motions.npz"),
        HumanML3DFolder(world.data),
        cache=GroundTruthCache(world.root / "ground-truth"),
    )
    return ScoredRun(report, unlearned, run / "unlearn.out" / "model", unlearned["wall_seconds"])
