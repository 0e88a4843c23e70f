"""Official MoMask folders <-> model folder: import, export, round trip, errors that name the path."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.backbone.checkpoints import (
    CheckpointError,
    read_checkpoint,
    read_opt_txt,
    rvq_opt,
    save_checkpoint,
    transformer_opt,
    write_opt_txt,
)
from benchmark.backbone.config import BackboneConfig
from benchmark.backbone.model import Backbone, load_model, read_model_card
from benchmark.backbone.momask_import import (
    TEXT_ENCODER_FILE,
    MomaskNames,
    export_momask,
    import_momask,
    official_clip_identity,
)
from benchmark.cli import model as model_cli
from benchmark.cli.main import main
from benchmark.errors import ConfigError, HMUError

NAMES = MomaskNames()

# The released opt.txt files (spec/momask-architecture.md 1.1, 2.1), without the keys HMU adds.
RVQ_OPT = {
    "batch_size": 256, "code_dim": 512, "commit": 0.02, "dataset_name": "t2m", "depth": 3,
    "dilation_growth_rate": 3, "down_t": 2, "feat_bias": 5, "loss_vel": 0.5, "lr": 0.0002,
    "lr_scheduler": "[150000, 250000]", "max_epoch": 50, "mu": 0.99, "name": NAMES.rvq, "nb_code": 512,
    "num_quantizers": 6, "output_emb_width": 512, "quantize_dropout_prob": 0.2, "shared_codebook": False,
    "stride_t": 2, "vq_act": "relu", "vq_norm": "None", "width": 512, "window_size": 64,
}  # fmt: skip
MASK_OPT = {
    "batch_size": 64, "cond_drop_prob": 0.1, "dataset_name": "t2m", "dropout": 0.2, "ff_size": 1024,
    "gumbel_sample": False, "latent_dim": 384, "max_motion_length": 196, "milestones": "[50000]",
    "n_heads": 6, "n_layers": 8, "name": NAMES.mask, "unit_length": 4, "vq_name": NAMES.rvq,
}  # fmt: skip
RESIDUAL_OPT = {**MASK_OPT, "cond_drop_prob": 0.2, "share_weight": True, "name": NAMES.residual}


def _write_tree(root: Path, backbone: Backbone, opts: dict[str, dict]) -> None:
    """An official-layout `<root>/t2m/` tree holding `backbone`'s weights, with MoMask's extra entries."""
    base = root / "t2m"
    folders = {"rvq": NAMES.rvq, "mask_transformer": NAMES.mask, "residual_transformer": NAMES.residual}
    files = {
        "rvq": NAMES.which_rvq,
        "mask_transformer": NAMES.which_mask,
        "residual_transformer": "net_best_fid.tar",
    }
    for part, folder in folders.items():
        (base / folder).mkdir(parents=True)
        write_opt_txt(base / folder / "opt.txt", opts[part])
    extras = {"total_it": 10, "scheduler": {"last_epoch": 3}}  # latest.tar also holds training state
    for part, module in backbone.parts().items():
        if part == "length_estimator":
            save_checkpoint(module, base / "length_estimator" / "model" / "finest.tar", part, epoch=7)
        else:
            save_checkpoint(
                module, base / folders[part] / "model" / files[part], part, epoch=3, extras=extras
            )
    (base / NAMES.rvq / "meta").mkdir()
    np.save(base / NAMES.rvq / "meta" / "mean.npy", backbone.mean.numpy())
    np.save(base / NAMES.rvq / "meta" / "std.npy", backbone.std.numpy())


def _random_backbone(config: BackboneConfig, seed: int = 0, length_estimator: bool = True) -> Backbone:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=263).astype(np.float32)
    std = rng.uniform(0.1, 1.0, size=263).astype(np.float32)
    backbone = Backbone(config, mean, std, length_estimator=length_estimator)
    with torch.no_grad():  # codebooks start at zero; fill them so that a lost tensor would show
        for codebook in backbone.rvq.codebooks:
            codebook.normal_()
    return backbone


def _assert_same_weights(a: Backbone, b: Backbone) -> None:
    left, right = a.state_dict(), b.state_dict()
    assert sorted(left) == sorted(right)
    for key in left:
        assert torch.equal(left[key], right[key]), key
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Backbone, Path]:
    backbone = _random_backbone(BackboneConfig.published())
    root = tmp_path_factory.mktemp("official")
    _write_tree(
        root, backbone, {"rvq": RVQ_OPT, "mask_transformer": MASK_OPT, "residual_transformer": RESIDUAL_OPT}
    )
    return backbone, root


MINILM = {"encoder": "minilm", "dim": 384, "normalised": True, "weights_sha256": "x", "random_seed": None}


def _small_tree(root: Path, *, length_estimator: bool = True, identity: bool = True) -> Backbone:
    """A small-config official tree as `export_momask` writes one (with `text_encoder.json` if `identity`)."""
    cfg = BackboneConfig.small()
    backbone = _random_backbone(cfg, seed=1, length_estimator=length_estimator)
    opts = {
        "rvq": rvq_opt(cfg.rvq, NAMES.rvq),
        "mask_transformer": transformer_opt(cfg.mask, NAMES.mask, NAMES.rvq),
        "residual_transformer": transformer_opt(cfg.residual, NAMES.residual, NAMES.rvq),
    }
    _write_tree(root, backbone, opts)
    if identity:
        (root / "t2m" / NAMES.mask / TEXT_ENCODER_FILE).write_text(json.dumps(MINILM))
    return backbone


def test_published_import_export_round_trip(published, tmp_path: Path) -> None:
    original, root = published
    card = import_momask(root, tmp_path / "model")
    assert card.config == BackboneConfig.published()
    assert card.text_encoder == official_clip_identity()
    assert (card.dataset.name, card.dataset.fps, card.dataset.feature_dim) == ("HumanML3D", 20.0, 263)
    assert card.provenance["kind"] == "imported"
    assert card.provenance["files"]["mask_transformer"]["file"] == f"{NAMES.mask}/model/latest.tar"
    assert card.provenance["files"]["mask_transformer"]["epoch"] == 3
    imported = load_model(tmp_path / "model").backbone
    _assert_same_weights(original, imported)

    files = export_momask(tmp_path / "model", tmp_path / "exported")
    base = tmp_path / "exported" / "t2m"
    assert files["rvq"] == base / NAMES.rvq / "model" / "net_best_fid.tar"
    assert files["length_estimator"] == base / "length_estimator" / "model" / "finest.tar"
    for part, path in files.items():
        checkpoint = read_checkpoint(path, part)  # official top-level keys, weights_only loading
        expected = original.parts()[part].state_dict()
        assert sorted(checkpoint.state_dict) == sorted(expected)
        assert all(torch.equal(checkpoint.state_dict[k], expected[k]) for k in expected), part
    assert torch.load(files["rvq"], weights_only=True).keys() == {"vq_model", "ep"}
    assert np.array_equal(np.load(base / NAMES.rvq / "meta" / "std.npy"), original.std.numpy())
    assert read_opt_txt(base / NAMES.mask / "opt.txt")["vq_name"] == NAMES.rvq


def test_small_config_round_trip_without_estimator(tmp_path: Path) -> None:
    original = _small_tree(tmp_path / "official", length_estimator=False, identity=False)
    with pytest.raises(ConfigError, match=r"384-d text features.*'clip-vit-b32' gives 512-d"):
        import_momask(tmp_path / "official", tmp_path / "model")  # MoMask's CLIP is the default
    card = import_momask(tmp_path / "official", tmp_path / "model", text_encoder_identity=MINILM)
    assert card.text_encoder == MINILM
    cfg = original.config
    assert (card.config.rvq, card.config.mask, card.config.residual) == (cfg.rvq, cfg.mask, cfg.residual)
    assert not card.has_length_estimator
    _assert_same_weights(original, load_model(tmp_path / "model").backbone)
    files = export_momask(tmp_path / "model", tmp_path / "exported")
    assert "length_estimator" not in files
    again = import_momask(tmp_path / "exported", tmp_path / "again")  # identity from text_encoder.json
    assert again.config == card.config and again.text_encoder == MINILM
    _assert_same_weights(original, load_model(tmp_path / "again").backbone)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    _small_tree(tmp_path)
    residual = tmp_path / "t2m" / NAMES.residual / "model" / "net_best_fid.tar"
    residual.unlink()
    with pytest.raises(CheckpointError, match=str(residual)):
        import_momask(tmp_path, tmp_path / "model")
    with pytest.raises(CheckpointError, match=r"opt\.txt"):
        import_momask(tmp_path, tmp_path / "model", names=MomaskNames(rvq="no_such_rvq"))
    assert not (tmp_path / "model").exists()


def test_estimator_folder_without_file_is_an_error(tmp_path: Path) -> None:
    _small_tree(tmp_path)
    (tmp_path / "t2m" / "length_estimator" / "model" / "finest.tar").unlink()
    with pytest.raises(CheckpointError, match="finest.tar"):
        import_momask(tmp_path, tmp_path / "model")
    card = import_momask(tmp_path, tmp_path / "model", names=MomaskNames(length_estimator=None))
    assert not card.has_length_estimator


def test_transformer_trained_on_another_vq_is_refused(tmp_path: Path) -> None:
    _small_tree(tmp_path)
    opt_path = tmp_path / "t2m" / NAMES.mask / "opt.txt"
    write_opt_txt(opt_path, {**read_opt_txt(opt_path), "vq_name": "other_rvq"})
    with pytest.raises(ConfigError, match="vq_name"):
        import_momask(tmp_path, tmp_path / "model")


def test_export_refuses_existing_folders(tmp_path: Path) -> None:
    _small_tree(tmp_path / "official")
    import_momask(tmp_path / "official", tmp_path / "model")
    with pytest.raises(HMUError, match="refusing to overwrite"):
        export_momask(tmp_path / "model", tmp_path / "official")
    export_momask(tmp_path / "model", tmp_path / "official", overwrite=True)


def test_cli_import_export_and_info(tmp_path: Path, capsys) -> None:
    _small_tree(tmp_path / "official")
    assert (
        main(
            [
                "model",
                "import-momask",
                "--checkpoints",
                str(tmp_path / "official"),
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    assert "hash" in capsys.readouterr().out
    assert read_model_card(tmp_path / "m").text_encoder == MINILM
    exported = tmp_path / "exported"
    assert (
        main(["model", "export-momask", "--model", str(tmp_path / "m"), "--checkpoints", str(exported)]) == 0
    )
    assert (exported / "t2m" / NAMES.mask / "model" / "latest.tar").is_file()
    assert main(["model", "info", str(tmp_path / "m")]) == 0
    assert '"format": "hmu-model"' in capsys.readouterr().out
    # A missing folder is a one-line error naming it, not a traceback.
    assert (
        main(
            ["model", "import-momask", "--checkpoints", str(tmp_path / "none"), "--out", str(tmp_path / "x")]
        )
        == 2
    )
    assert str(tmp_path / "none") in capsys.readouterr().err


def test_cli_defaults_are_the_library_defaults() -> None:
    # The CLI spells the names out so that `hmu --help` does not import torch; they must not drift.
    parser = argparse.ArgumentParser()
    model_cli._add_names(parser)
    args = parser.parse_args([])
    assert model_cli._names(args) == MomaskNames()
    assert args.dataset == "t2m"
