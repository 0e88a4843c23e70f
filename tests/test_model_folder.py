"""The model folder: save/load round trip, content hash, strict loading with errors that name file and key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.backbone.checkpoints import CheckpointError
from benchmark.backbone.config import BackboneConfig
from benchmark.backbone.model import (
    CARD_FILE,
    Backbone,
    DatasetInfo,
    load_model,
    model_hash,
    read_model_card,
    resolve_device,
    save_model,
)
from benchmark.errors import ConfigError, HMUError

IDENTITY = {
    "encoder": "minilm",
    "dim": 384,
    "normalised": True,
    "weights_sha256": "0" * 64,
    "random_seed": None,
}
DATASET = DatasetInfo("embedded", 20.0, 263)


def _backbone(seed: int = 0, length_estimator: bool = True) -> Backbone:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=263).astype(np.float32)
    std = rng.uniform(0.5, 2.0, size=263).astype(np.float32)
    return Backbone(BackboneConfig.small(), mean, std, length_estimator=length_estimator)


def _save(backbone: Backbone, path: Path, **kwargs) -> Path:
    save_model(backbone, path, text_encoder_identity=IDENTITY, dataset=DATASET, **kwargs)
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Backbone, Path]:
    backbone = _backbone()
    return backbone, _save(backbone, tmp_path_factory.mktemp("models") / "base", provenance={"kind": "test"})


def test_layout_and_card(saved) -> None:
    _, path = saved
    assert sorted(p.name for p in path.iterdir()) == [
        "length_estimator.pt",
        "mask_transformer.pt",
        "mean.npy",
        "model.json",
        "residual_transformer.pt",
        "rvq.pt",
        "std.npy",
    ]
    raw = json.loads((path / CARD_FILE).read_text())
    assert raw["format"] == "hmu-model" and raw["format_version"] == 1
    assert raw["dataset"] == {"name": "embedded", "fps": 20.0, "feature_dim": 263}
    assert raw["provenance"] == {"kind": "test"}
    card = read_model_card(path)
    assert card.config == BackboneConfig.small() and card.has_length_estimator
    assert card.text_encoder == IDENTITY


def test_round_trip_gives_identical_tensors_and_hash(saved, tmp_path: Path) -> None:
    backbone, path = saved
    loaded = load_model(path, device="cpu")
    assert not loaded.backbone.training
    original, restored = backbone.state_dict(), loaded.backbone.state_dict()
    assert sorted(original) == sorted(restored)
    assert all(torch.equal(original[key], restored[key]) for key in original)
    assert "mean" not in restored  # normalisation lives in mean.npy/std.npy, not in the state dict
    assert torch.equal(loaded.backbone.mean, backbone.mean) and torch.equal(loaded.backbone.std, backbone.std)
    copy = _save(loaded.backbone, tmp_path / "copy", provenance=loaded.card.provenance)
    assert model_hash(copy) == model_hash(path)
    assert len(model_hash(path)) == 64


def test_changing_one_weight_or_the_provenance_changes_the_hash(saved, tmp_path: Path) -> None:
    backbone, path = saved
    edited = load_model(path).backbone
    with torch.no_grad():
        edited.mask_transformer.cond_emb.weight[0, 0] += 1e-3
    assert model_hash(_save(edited, tmp_path / "edited", provenance={"kind": "test"})) != model_hash(path)
    assert model_hash(_save(backbone, tmp_path / "other", provenance={"kind": "other"})) != model_hash(path)


def test_missing_part_file_is_named(saved, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(saved[1], tmp_path / "m"))
    (copy / "residual_transformer.pt").unlink()
    with pytest.raises(CheckpointError, match=r"residual_transformer\.pt.*missing"):
        load_model(copy)
    with pytest.raises(CheckpointError, match=r"residual_transformer\.pt"):
        model_hash(copy)


def test_corrupted_part_file_is_named(saved, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(saved[1], tmp_path / "m"))
    data = (copy / "rvq.pt").read_bytes()
    (copy / "rvq.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"rvq\.pt: cannot read the rvq state dict"):
        load_model(copy)


def test_config_weights_mismatch_names_the_key(saved, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(saved[1], tmp_path / "m"))
    card = json.loads((copy / CARD_FILE).read_text())
    card["config"]["mask"]["n_layers"] = 3  # the file holds 4 layers
    card["config"]["residual"]["ff_size"] = 256  # the file holds 512
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(
        CheckpointError, match=r"mask_transformer\.pt.*unexpected keys.*seqTransEncoder\.layers\.3"
    ):
        load_model(copy)
    (copy / "mask_transformer.pt").write_bytes((saved[1] / "mask_transformer.pt").read_bytes())
    card["config"]["mask"]["n_layers"] = 4
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(
        CheckpointError, match=r"residual_transformer\.pt.*linear1\.weight \(expected \(256, 128\)"
    ):
        load_model(copy)


def test_malformed_card_names_the_field(saved, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(saved[1], tmp_path / "m"))
    card = json.loads((copy / CARD_FILE).read_text())
    for edit, field in (
        (lambda c: c.update(format="other"), "format"),
        (lambda c: c["dataset"].update(feature_dim=251), "dataset.feature_dim"),
        (lambda c: c["text_encoder"].update(dim=512), "text_encoder.dim"),
        (lambda c: c["parts"].pop("rvq"), "parts"),
        (lambda c: c["parts"].update(rvq="../rvq.pt"), "parts.rvq"),
        (lambda c: c.update(extra=1), "extra"),
    ):
        broken = json.loads(json.dumps(card))
        edit(broken)
        (copy / CARD_FILE).write_text(json.dumps(broken))
        with pytest.raises(ConfigError, match=f"field '{field}'"):
            load_model(copy)


def test_save_refuses_a_non_empty_folder_unless_asked(saved, tmp_path: Path) -> None:
    backbone, _ = saved
    target = tmp_path / "m"
    target.mkdir()
    _save(backbone, target)  # an empty folder is fine
    with pytest.raises(HMUError, match="not empty"):
        _save(backbone, target)
    (target / "stale.txt").write_text("old")
    _save(backbone, target, overwrite=True)
    assert not (target / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging folders left behind
    with pytest.raises(HMUError, match="plain JSON"):
        _save(backbone, tmp_path / "n", provenance={"made": object()})
    assert not (tmp_path / "n").exists()


def test_model_without_length_estimator(tmp_path: Path) -> None:
    path = _save(_backbone(length_estimator=False), tmp_path / "m")
    card = read_model_card(path)
    assert "length_estimator" not in card.parts and not card.has_length_estimator
    assert load_model(path).backbone.length_estimator is None


def test_normalisation_round_trip(saved) -> None:
    backbone, _ = saved
    motion = torch.randn(2, 8, 263)
    assert torch.allclose(backbone.denormalise(backbone.normalise(motion)), motion, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(HMUError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device(None) == torch.device("cpu")
