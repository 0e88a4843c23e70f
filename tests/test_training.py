"""Training of the backbone parts: losses fall, resuming reproduces an uninterrupted run, seeds fix the
weights, split files work, and `hmu train` writes a model folder that loads (and replaces one part)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmark.backbone.config import (
    BackboneConfig,
    LengthEstimatorConfig,
    MaskTransformerConfig,
    ResidualTransformerConfig,
    RVQConfig,
)
from benchmark.backbone.model import load_model, read_model_card
from benchmark.cli.main import main
from benchmark.data.synth import SynthConfig, generate_dataset
from benchmark.errors import ConfigError, DataFormatError
from benchmark.training import (
    PARTS,
    MotionData,
    TextFeatureCache,
    TrainingError,
    TrainSettings,
    engine,
    learning_rate,
    train_length_estimator,
    train_mask_transformer,
    train_residual_transformer,
    train_rvq,
)

TEXT_DIM = 16


class FakeEncoder:
    """A deterministic stand-in for a text encoder (features: a hash of the text); counts encoded texts."""

    name = "fake"
    dim = TEXT_DIM
    normalised = False
    device = torch.device("cpu")

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def identity(self) -> dict[str, Any]:
        return {
            "encoder": "fake",
            "dim": TEXT_DIM,
            "normalised": False,
            "weights_sha256": None,
            "random_seed": 0,
        }

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        self.encoded.extend(texts)
        rows = [
            torch.frombuffer(bytearray(hashlib.sha256(t.encode()).digest()[:TEXT_DIM]), dtype=torch.uint8)
            for t in texts
        ]
        return torch.stack(rows).float() / 255.0


# Tiny sizes so that each test trains in a second or two; the structure is the real one.
RVQ = RVQConfig(width=32, code_dim=32, nb_code=32, num_quantizers=3, depth=2)
TRANSFORMER = {"num_tokens": 32, "code_dim": 32, "latent_dim": 32, "ff_size": 64, "n_layers": 1, "n_heads": 2}
MASK = MaskTransformerConfig(**TRANSFORMER, cond_dim=TEXT_DIM, max_len=64)
RESIDUAL = ResidualTransformerConfig(**TRANSFORMER, num_quantizers=3, cond_dim=TEXT_DIM, max_len=64)
LENGTH = LengthEstimatorConfig(cond_dim=TEXT_DIM, hidden_dim=32)


def settings(part: str, **changes: Any) -> TrainSettings:
    base = TrainSettings(
        part=part, steps=10, batch_size=8, lr=2e-3, warmup_steps=2, checkpoint_every=4, progress=False
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """Tiny models gain nothing from threads, and on a shared CPU extra threads spin against others."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("training") / "data"
    generate_dataset(root, SynthConfig(motions=12, seed=3))
    return root


@pytest.fixture(scope="module")
def data(dataset: Path) -> MotionData:
    return MotionData.open(dataset)


@pytest.fixture(scope="module")
def rvq(data: MotionData) -> torch.nn.Module:
    return train_rvq(data, RVQ, settings("rvq", steps=5)).model


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in module.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def train(part: str, data: MotionData, rvq: torch.nn.Module, s: TrainSettings, work: Path | None) -> Any:
    texts = TextFeatureCache(FakeEncoder())
    if part == "rvq":
        return train_rvq(data, RVQ, s, work)
    if part == "mask":
        return train_mask_transformer(data, MASK, rvq, texts, s, work)
    if part == "residual":
        return train_residual_transformer(data, RESIDUAL, rvq, texts, s, work)
    return train_length_estimator(data, LENGTH, texts, s, work)


def test_settings_presets_and_schedule() -> None:
    for part in PARTS:
        assert TrainSettings.small(part).part == part
        assert TrainSettings.published(part).epochs is not None
    s = TrainSettings(part="mask", steps=100, lr=1.0, warmup_steps=3, milestones=(10, 20), gamma=0.5)
    assert [learning_rate(s, step) for step in (0, 2, 3, 9, 10, 25)] == [0.25, 0.75, 1.0, 1.0, 0.5, 0.25]
    with pytest.raises(ConfigError, match="exactly one"):
        TrainSettings(part="mask", steps=10, epochs=1)
    with pytest.raises(ConfigError, match="part"):
        TrainSettings(part="vae", steps=10)


@pytest.mark.parametrize("part", PARTS)
def test_loss_falls_on_a_tiny_batch(part: str, data: MotionData, rvq: torch.nn.Module) -> None:
    one_batch = MotionData.open(data.folder.root, split="val", val_split="val")  # two motions: one batch
    result = train(
        part, one_batch, rvq, settings(part, steps=40, batch_size=64, lr=5e-3, warmup_steps=0), None
    )
    losses = torch.tensor(result.losses)
    assert len(losses) == 40 and torch.isfinite(losses).all()
    assert losses[-5:].mean() < 0.8 * losses[:5].mean()
    assert result.steps == 40 and not result.model.training
    assert all(value == value for value in result.metrics.values())  # val metrics present (no NaN)


@pytest.mark.parametrize("part", PARTS)
def test_interrupted_run_resumes_to_the_same_weights(
    part: str, data: MotionData, rvq: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings(part, steps=10, checkpoint_every=4)
    straight = train(part, data, rvq, s, tmp_path / "a")

    real = engine.learning_rate

    def crash_at_step_7(settings: TrainSettings, step: int) -> float:
        if step == 7:
            raise KeyboardInterrupt
        return real(settings, step)

    monkeypatch.setattr(engine, "learning_rate", crash_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train(part, data, rvq, s, tmp_path / "b")
    monkeypatch.setattr(engine, "learning_rate", real)
    resumed = train(part, data, rvq, s, tmp_path / "b")

    assert resumed.resumed_from == 4 and resumed.steps == 10  # the last checkpoint before the crash
    assert resumed.losses == straight.losses
    assert same_weights(weights(resumed.model), weights(straight.model))
    assert resumed.metrics == straight.metrics


def test_finished_part_only_reevaluates_and_can_train_longer(data: MotionData, tmp_path: Path) -> None:
    first = train_rvq(data, RVQ, settings("rvq", steps=6), tmp_path)
    again = train_rvq(data, RVQ, settings("rvq", steps=6), tmp_path)
    assert again.resumed_from == 6 and same_weights(weights(first.model), weights(again.model))
    assert again.metrics == first.metrics
    longer = train_rvq(data, RVQ, settings("rvq", steps=9), tmp_path)
    assert longer.resumed_from == 6 and len(longer.losses) == 9 and longer.losses[:6] == first.losses


def test_resume_refuses_another_recipe(data: MotionData, tmp_path: Path) -> None:
    train_rvq(data, RVQ, settings("rvq", steps=4), tmp_path)
    with pytest.raises(TrainingError, match="lr"):
        train_rvq(data, RVQ, settings("rvq", steps=8, lr=1e-4), tmp_path)


def test_same_seed_same_weights(data: MotionData, rvq: torch.nn.Module) -> None:
    a = weights(train("mask", data, rvq, settings("mask", steps=6), None).model)
    b = weights(train("mask", data, rvq, settings("mask", steps=6), None).model)
    c = weights(train("mask", data, rvq, settings("mask", steps=6, seed=7), None).model)
    assert same_weights(a, b) and not same_weights(a, c)


def test_split_file_and_errors(dataset: Path, tmp_path: Path) -> None:
    ids = MotionData.open(dataset).train_ids
    listed = tmp_path / "retain.txt"
    listed.write_text("\n".join(ids[:5]) + "\n")
    assert MotionData.open(dataset, split=str(listed), val_split=None).train_ids == ids[:5]
    listed.write_text(ids[0] + "\nnot_there\n")
    with pytest.raises(DataFormatError, match="not_there") as error:
        MotionData.open(dataset, split=str(listed))
    assert error.value.path == listed and error.value.line == 2
    with pytest.raises(DataFormatError, match="neither a split"):
        MotionData.open(dataset, split="no_such_split")


def test_text_features_are_encoded_once(data: MotionData, rvq: torch.nn.Module) -> None:
    encoder = FakeEncoder()
    texts = TextFeatureCache(encoder)
    train_mask_transformer(data, MASK, rvq, texts, settings("mask", steps=3), None)
    train_residual_transformer(data, RESIDUAL, rvq, texts, settings("residual", steps=3), None)
    assert len(encoder.encoded) == len(set(encoder.encoded)) == len(texts)
    assert torch.equal(texts(["a person walks"]), texts(["a person walks"]))
    assert encoder.encoded.count("a person walks") == 1


def test_cli_trains_a_model_folder_and_replaces_one_part(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    common = ["--data", str(dataset), "--no-progress", "--steps", "3"]
    assert main(["train", "all", *common, "--out", str(out)]) == 0
    loaded = load_model(out)
    card = loaded.card
    assert card.config == BackboneConfig.small() and card.text_encoder["encoder"] == "minilm"
    assert set(card.provenance["parts"]) == {
        "rvq",
        "mask_transformer",
        "residual_transformer",
        "length_estimator",
    }
    record = card.provenance["parts"]["mask_transformer"]
    assert record["steps"] == 3 and record["split"] == "train" and len(record["data_sha256"]) == 64
    report = json.loads((tmp_path / "model.work" / "report.json").read_text())
    assert set(report["parts"]) == set(PARTS) and report["parts"]["rvq"]["metrics"]["rvq_val_l1"] > 0

    before = {name: weights(module) for name, module in loaded.backbone.parts().items()}
    assert main(["train", "all", *common, "--out", str(out)]) == 2  # refuses to overwrite without --force
    assert main(["train", "mask", *common, "--out", str(tmp_path / "other")]) == 2  # needs a trained RVQ
    assert (
        main(["train", "mask", *common, "--init", str(out), "--out", str(out), "--work", str(tmp_path / "w")])
        == 0
    )
    after = load_model(out)
    for name, module in after.backbone.parts().items():
        changed = not same_weights(before[name], weights(module))
        assert changed == (name == "mask_transformer"), name
    assert read_model_card(out).provenance["kind"] == "fine-tuned"
