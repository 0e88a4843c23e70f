"""The project's evaluator (`benchmark.evaluator.tmr`): training, determinism, the folder, errors, the CLI."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmark.data.captions import Caption, parse_caption_line
from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.data.synth import SynthConfig, generate_dataset
from benchmark.evaluator import Evaluator, EvaluatorError, identity_hash, load_evaluator
from benchmark.evaluator.check import caption_motion_pairs, check_evaluator
from benchmark.evaluator.tmr import (
    TMRConfig,
    TMREvaluator,
    TMRModel,
    TrainEvaluatorSettings,
    contrastive_loss,
    train_evaluator,
)
from benchmark.metrics import r_precision
from benchmark.motion.stats import model_std
from benchmark.text import build_text_encoder
from benchmark.text.base import TextEncoder

TINY = TMRConfig(latent_dim=64, n_layers=1, n_heads=2, ff_size=128, text_hidden=128, embed_dim=64)
SETTINGS = TrainEvaluatorSettings(epochs=8, batch_size=16, warmup_steps=5, lr=2e-3)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 generated motions (120 ids with the mirrored copies), 2-6 s each."""
    root = tmp_path_factory.mktemp("evaluator") / "data"
    generate_dataset(root, SynthConfig(motions=60, seed=1, max_seconds=6.0, write_joints=False))
    return root


class MemoEncoder:
    """MiniLM with a memo of the captions it has encoded: each test run encodes a caption once."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.name, self.dim, self.normalised, self.device = encoder.name, encoder.dim, True, encoder.device
        self.memo: dict[str, torch.Tensor] = {}

    def identity(self) -> dict[str, Any]:
        return self.encoder.identity()

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        new = [text for text in dict.fromkeys(texts) if text not in self.memo]
        if new:
            self.memo.update(zip(new, self.encoder.encode(new), strict=True))
        return torch.stack([self.memo[text] for text in texts])


@pytest.fixture(scope="session")
def minilm() -> TextEncoder:
    return MemoEncoder(build_text_encoder("minilm"))


@pytest.fixture(scope="session")
def trained(dataset: Path, minilm: TextEncoder) -> TMREvaluator:
    return train_evaluator(dataset, SETTINGS, TINY, text_encoder=minilm)


def _pairs(dataset: Path, split: str) -> tuple[list[Caption], list[np.ndarray]]:
    folder = HumanML3DFolder(dataset)
    return caption_motion_pairs(folder, folder.ids(split), seed=0)


def test_training_beats_an_untrained_evaluator(
    dataset: Path, trained: TMREvaluator, minilm: TextEncoder
) -> None:
    folder = HumanML3DFolder(dataset)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        untrained = TMREvaluator(TMRModel(TINY), folder.mean(), model_std(folder.std()), minilm)
    captions, motions = _pairs(dataset, "train")
    before = r_precision(untrained.encode_texts(captions), untrained.encode_motions(motions))
    after = r_precision(trained.encode_texts(captions), trained.encode_motions(motions))
    assert after[1] > before[1] + 0.2
    assert after[3] > 0.5
    assert trained.training["val_r_precision"]["3"] >= 0.0
    assert len(trained.training["epoch_losses"]) == SETTINGS.epochs


def test_it_is_an_evaluator_with_float32_embeddings(dataset: Path, trained: TMREvaluator) -> None:
    assert isinstance(trained, Evaluator)
    captions, motions = _pairs(dataset, "test")
    text, motion = trained.encode_texts(captions), trained.encode_motions(motions)
    assert text.shape == motion.shape == (len(captions), TINY.embed_dim)
    assert text.dtype == motion.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(motion, axis=1), 1.0, rtol=1e-5)
    assert trained.encode_texts([]).shape == (0, TINY.embed_dim)
    assert trained.encode_motions([]).shape == (0, TINY.embed_dim)


def test_embeddings_are_deterministic_and_independent_of_the_batch(
    dataset: Path, trained: TMREvaluator
) -> None:
    _, motions = _pairs(dataset, "test")
    together = trained.encode_motions(motions)
    np.testing.assert_array_equal(together, trained.encode_motions(motions))
    one_by_one = np.concatenate([trained.encode_motions([motion]) for motion in motions])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    reversed_order = trained.encode_motions(motions[::-1])[::-1]
    np.testing.assert_allclose(together, reversed_order, atol=1e-6)


def test_lengths_are_cut_and_rounded_to_units(trained: TMREvaluator) -> None:
    rng = np.random.default_rng(0)
    motion = rng.normal(size=(230, 263)).astype(np.float32)
    first = trained.encode_motions([motion[:196]])
    np.testing.assert_allclose(trained.encode_motions([motion]), first, atol=1e-6)  # cut to 196 frames
    np.testing.assert_allclose(trained.encode_motions([motion[:43]]), trained.encode_motions([motion[:40]]))


def test_same_seed_gives_the_same_weights(dataset: Path, minilm: TextEncoder) -> None:
    settings = dataclasses.replace(SETTINGS, epochs=1, val_split=None)
    state = torch.get_rng_state()
    a = train_evaluator(dataset, settings, TINY, text_encoder=minilm)
    assert torch.equal(state, torch.get_rng_state()), "training must not touch the global RNG"
    b = train_evaluator(dataset, settings, TINY, text_encoder=minilm)
    c = train_evaluator(dataset, dataclasses.replace(settings, seed=1), TINY, text_encoder=minilm)
    assert a.identity()["weights_sha256"] == b.identity()["weights_sha256"]
    assert a.identity()["weights_sha256"] != c.identity()["weights_sha256"]


def test_save_load_round_trip(
    dataset: Path, trained: TMREvaluator, minilm: TextEncoder, tmp_path: Path
) -> None:
    trained.save(tmp_path / "ev")
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == [
        "evaluator.json",
        "mean.npy",
        "std.npy",
        "weights.pt",
    ]
    loaded = TMREvaluator.load(tmp_path / "ev", text_encoder=minilm)
    assert loaded.identity() == trained.identity()
    assert identity_hash(loaded.identity()) == identity_hash(trained.identity())
    captions, motions = _pairs(dataset, "test")
    np.testing.assert_array_equal(loaded.encode_motions(motions), trained.encode_motions(motions))
    np.testing.assert_array_equal(loaded.encode_texts(captions), trained.encode_texts(captions))
    assert loaded.training == json.loads(json.dumps(trained.training))
    assert isinstance(load_evaluator(tmp_path / "ev"), TMREvaluator)  # builds its own MiniLM


def test_load_errors_name_the_file_and_key(
    trained: TMREvaluator, minilm: TextEncoder, tmp_path: Path
) -> None:
    folder = trained.save(tmp_path / "ev")
    state = torch.load(folder / "weights.pt")
    state["text_head.mlp.0.bias"] += 1.0
    torch.save(state, folder / "weights.pt")
    with pytest.raises(EvaluatorError, match=r"weights\.pt: weights hash"):
        TMREvaluator.load(folder, text_encoder=minilm)
    del state["text_head.mlp.0.bias"]
    torch.save(state, folder / "weights.pt")
    with pytest.raises(EvaluatorError, match=r"weights\.pt: key 'text_head\.mlp\.0\.bias' is missing"):
        TMREvaluator.load(folder, text_encoder=minilm)

    folder = trained.save(tmp_path / "ev2")
    record = json.loads((folder / "evaluator.json").read_text())
    record["config"]["latent_size"] = 3
    (folder / "evaluator.json").write_text(json.dumps(record))
    with pytest.raises(EvaluatorError, match=r"evaluator\.json: unknown config keys \['latent_size'\]"):
        TMREvaluator.load(folder, text_encoder=minilm)
    (folder / "mean.npy").unlink()
    del record["config"]["latent_size"]
    (folder / "evaluator.json").write_text(json.dumps(record))
    with pytest.raises(EvaluatorError, match=r"mean\.npy: file is missing"):
        TMREvaluator.load(folder, text_encoder=minilm)
    with pytest.raises(EvaluatorError, match="not an evaluator"):
        load_evaluator(tmp_path)


def test_wrong_inputs_are_clear_errors(trained: TMREvaluator) -> None:
    caption = parse_caption_line("a man kicks.#a/DET man/NOUN kick/VERB#0.0#0.0")
    with pytest.raises(EvaluatorError, match="wrap a single one in a list"):
        trained.encode_texts(caption)  # type: ignore[arg-type]
    with pytest.raises(EvaluatorError, match="item 1 is str, not a Caption"):
        trained.encode_texts([caption, "a man kicks"])  # type: ignore[list-item]
    with pytest.raises(EvaluatorError, match=r"motion 0 has shape \(50, 251\)"):
        trained.encode_motions([np.zeros((50, 251), np.float32)])
    with pytest.raises(EvaluatorError, match="wrap one motion in a list"):
        trained.encode_motions(np.zeros((50, 263), np.float32))  # type: ignore[arg-type]
    with pytest.raises(EvaluatorError, match="motion 1 has 3 frames, fewer than one unit of 4"):
        trained.encode_motions([np.zeros((50, 263)), np.zeros((3, 263))])
    bad = np.zeros((50, 263))
    bad[3, 7] = np.nan
    with pytest.raises(EvaluatorError, match="motion 0 holds NaN"):
        trained.encode_motions([bad])


def test_contrastive_loss_ignores_near_duplicate_captions_as_negatives() -> None:
    features = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]]), dim=-1)
    text = motion = features.clone()
    strict = contrastive_loss(text, motion, features, 0.1, threshold=1.1)
    filtered = contrastive_loss(text, motion, features, 0.1, threshold=0.99)
    assert filtered < strict  # rows 0 and 1 no longer compete


def test_check_reports_the_sanity_numbers(dataset: Path, trained: TMREvaluator) -> None:
    check = check_evaluator(trained, HumanML3DFolder(dataset), test_split="train", train_split="val")
    assert abs(check.fid_self) < 1e-6
    assert check.fid_train_test is not None and check.fid_train_test > 0
    assert check.r_precision[3] >= check.r_precision[1]
    assert "R-precision top-1/2/3" in check.summary()


def test_cli_trains_and_saves(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.cli.main import main

    out = tmp_path / "cli-ev"
    args = ["--data", str(dataset), "--out", str(out), "--epochs", "1", "--test-split", "val"]
    code = main(["train-evaluator", *args])
    assert code == 0
    printed = capsys.readouterr().out
    assert "val R-precision top-1/2/3" in printed and "FID(test, test)" in printed
    assert (out / "evaluator.json").is_file()
