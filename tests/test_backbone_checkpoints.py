"""Official MoMask checkpoint compatibility: key lists and shapes from the spec, opt.txt, `.tar` files.

The expected keys and shapes are written here from spec/momask-architecture.md, independently of the
model code, and an official-layout folder tree (released opt.txt texts, `.tar` files with random tensors
and CLIP keys) is built once and loaded through the public loaders.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import pytest
import torch

from benchmark.backbone import (
    CheckpointError,
    LengthEstimator,
    LengthEstimatorConfig,
    MaskTransformer,
    MaskTransformerConfig,
    ResidualTransformer,
    ResidualTransformerConfig,
    ResidualVQVAE,
    RVQConfig,
    load_checkpoint,
    load_official_length_estimator,
    load_official_mask_transformer,
    load_official_residual_transformer,
    load_official_rvq,
    load_official_state_dict,
    read_checkpoint,
    read_opt_txt,
    save_checkpoint,
    write_checkpoint,
    write_opt_txt,
)
from benchmark.backbone.checkpoints import (
    mask_config_from_opt,
    residual_config_from_opt,
    rvq_config_from_opt,
    rvq_opt,
    transformer_opt,
)
from benchmark.errors import ConfigError

Shapes = dict[str, tuple[int, ...]]

# ------------------------------------------------------------------ keys and shapes (spec 1.6, 2.4, 2.6, 2.7)


def _conv(shapes: Shapes, prefix: str, out: int, inp: int, kernel: int) -> None:
    shapes[f"{prefix}.weight"] = (out, inp, kernel)
    shapes[f"{prefix}.bias"] = (out,)


def _linear(shapes: Shapes, prefix: str, out: int, inp: int) -> None:
    shapes[f"{prefix}.weight"] = (out, inp)
    shapes[f"{prefix}.bias"] = (out,)


def _resnet(shapes: Shapes, prefix: str) -> None:
    for block in range(3):
        _conv(shapes, f"{prefix}.model.{block}.conv1", 512, 512, 3)
        _conv(shapes, f"{prefix}.model.{block}.conv2", 512, 512, 1)


def official_rvq_shapes() -> Shapes:
    shapes: Shapes = {}
    _conv(shapes, "encoder.model.0", 512, 263, 3)
    for i in (2, 3):
        _conv(shapes, f"encoder.model.{i}.0", 512, 512, 4)
        _resnet(shapes, f"encoder.model.{i}.1")
    _conv(shapes, "encoder.model.4", 512, 512, 3)
    _conv(shapes, "decoder.model.0", 512, 512, 3)
    for i in (2, 3):
        _resnet(shapes, f"decoder.model.{i}.0")
        _conv(shapes, f"decoder.model.{i}.2", 512, 512, 3)
    _conv(shapes, "decoder.model.4", 512, 512, 3)
    _conv(shapes, "decoder.model.6", 263, 512, 3)
    for q in range(6):
        shapes[f"quantizer.layers.{q}.codebook"] = (512, 512)
    return shapes


def _trunk(shapes: Shapes) -> None:
    _linear(shapes, "input_process.poseEmbedding", 384, 512)
    shapes["position_enc.pe"] = (5000, 1, 384)
    for i in range(8):
        prefix = f"seqTransEncoder.layers.{i}"
        shapes[f"{prefix}.self_attn.in_proj_weight"] = (1152, 384)
        shapes[f"{prefix}.self_attn.in_proj_bias"] = (1152,)
        _linear(shapes, f"{prefix}.self_attn.out_proj", 384, 384)
        _linear(shapes, f"{prefix}.linear1", 1024, 384)
        _linear(shapes, f"{prefix}.linear2", 384, 1024)
        for norm in ("norm1", "norm2"):
            shapes[f"{prefix}.{norm}.weight"] = (384,)
            shapes[f"{prefix}.{norm}.bias"] = (384,)
    _linear(shapes, "cond_emb", 384, 512)
    _linear(shapes, "output_process.dense", 384, 384)
    shapes["output_process.LayerNorm.weight"] = (384,)
    shapes["output_process.LayerNorm.bias"] = (384,)
    _linear(shapes, "output_process.poseFinal", 512, 384)


def official_mask_shapes() -> Shapes:
    shapes: Shapes = {"token_emb.weight": (514, 512)}
    _trunk(shapes)
    return shapes


def official_residual_shapes() -> Shapes:
    shapes: Shapes = {
        "embed_proj_shared_weight": (4, 513, 512),
        "token_embed_weight_": (1, 513, 512),
        "output_proj_weight_": (1, 513, 512),
    }
    _trunk(shapes)
    _linear(shapes, "quant_emb", 384, 6)
    return shapes


def official_length_shapes() -> Shapes:
    shapes: Shapes = {}
    _linear(shapes, "output.0", 512, 512)
    _linear(shapes, "output.4", 256, 512)
    _linear(shapes, "output.8", 128, 256)
    _linear(shapes, "output.11", 50, 128)
    for index, size in ((1, 512), (5, 256), (9, 128)):
        shapes[f"output.{index}.weight"] = (size,)
        shapes[f"output.{index}.bias"] = (size,)
    return shapes


PARTS = {
    "rvq": (official_rvq_shapes, lambda: ResidualVQVAE(RVQConfig.published()), 72),
    "mask_transformer": (
        official_mask_shapes,
        lambda: MaskTransformer(MaskTransformerConfig.published()),
        108,
    ),
    "residual_transformer": (
        official_residual_shapes,
        lambda: ResidualTransformer(ResidualTransformerConfig.published()),
        112,
    ),
    "length_estimator": (
        official_length_shapes,
        lambda: LengthEstimator(LengthEstimatorConfig.published()),
        14,
    ),
}


@pytest.mark.parametrize("part", sorted(PARTS))
def test_published_state_dict_keys_and_shapes_match_the_spec(part: str) -> None:
    expected_shapes, build, count = PARTS[part]
    expected = expected_shapes()
    assert len(expected) == count
    actual = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    assert actual == expected


def test_spot_check_shapes() -> None:
    rvq = official_rvq_shapes()
    assert rvq["encoder.model.2.1.model.0.conv1.weight"] == (512, 512, 3)
    assert rvq["decoder.model.6.bias"] == (263,)
    model = ResidualVQVAE(RVQConfig.published())
    dilations = [block.conv1.dilation[0] for block in model.encoder.model[2][1].model]
    assert dilations == [9, 3, 1]  # reverse dilation in the encoder too
    assert [b.conv1.dilation[0] for b in model.decoder.model[3][0].model] == [9, 3, 1]
    assert isinstance(model.encoder.model[2][1].model[0].dropout, torch.nn.Dropout)
    assert model.encoder.model[2][1].model[0].dropout.p == 0.2


# ----------------------------------------------------------------------------- opt.txt (spec 1.1, 1.7, 2.1)

HEADER, FOOTER = "------------ Options -------------", "-------------- End ----------------"

RVQ_OPT_LINES = """batch_size: 256
code_dim: 512
commit: 0.02
dataset_name: t2m
depth: 3
dilation_growth_rate: 3
down_t: 2
eval_every_e: 1
feat_bias: 5
gamma: 0.05
gpu_id: 0
is_continue: False
is_train: True
log_every: 10
loss_vel: 0.5
lr: 0.0002
lr_scheduler: [150000, 250000]
max_epoch: 50
mu: 0.99
name: rvq_nq6_dc512_nc512_noshare_qdp0.2
nb_code: 512
num_quantizers: 6
output_emb_width: 512
quantize_dropout_prob: 0.2
recons_loss: l1_smooth
save_every_e: 2
save_latest: 500
shared_codebook: False
stride_t: 2
vq_act: relu
vq_norm: None
warm_up_iter: 2000
weight_decay: 0.0
width: 512
window_size: 64"""

MASK_OPT = {
    "batch_size": "64",
    "checkpoints_dir": "./checkpoints",
    "cond_drop_prob": "0.1",
    "dataset_name": "t2m",
    "dropout": "0.2",
    "eval_every_e": "10",
    "ff_size": "1024",
    "fix_token_emb": "False",
    "gamma": "0.1",
    "gpu_id": "1",
    "gumbel_sample": "False",
    "is_continue": "False",
    "is_train": "True",
    "latent_dim": "384",
    "log_every": "50",
    "lr": "0.0002",
    "max_epoch": "500",
    "max_motion_length": "196",
    "milestones": "[50000]",
    "n_heads": "6",
    "n_layers": "8",
    "name": "t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns",
    "save_latest": "500",
    "seed": "3407",
    "unit_length": "4",
    "vq_name": "rvq_nq6_dc512_nc512_noshare_qdp0.2",
    "warm_up_iter": "2000",
}
RESIDUAL_OPT = {
    **MASK_OPT,
    "cond_drop_prob": "0.2",
    "force_mask": "False",
    "gpu_id": "2",
    "is_continue": "True",
    "is_v2": "False",
    "share_weight": "True",
    "name": "tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw",
}


def _opt_text(lines: list[str]) -> str:
    assert lines == sorted(lines)
    return "\n".join([HEADER, *lines, FOOTER]) + "\n"


RVQ_OPT_TEXT = _opt_text(RVQ_OPT_LINES.splitlines())
MASK_OPT_TEXT = _opt_text([f"{k}: {v}" for k, v in sorted(MASK_OPT.items())])
RESIDUAL_OPT_TEXT = _opt_text([f"{k}: {v}" for k, v in sorted(RESIDUAL_OPT.items())])


def test_read_released_rvq_opt_types(tmp_path: Path) -> None:
    path = tmp_path / "opt.txt"
    path.write_text(RVQ_OPT_TEXT)
    opt = read_opt_txt(path)
    assert len(opt) == 35
    assert opt["batch_size"] == 256 and type(opt["batch_size"]) is int
    assert opt["commit"] == 0.02 and type(opt["commit"]) is float
    assert opt["lr"] == 0.0002 and opt["weight_decay"] == 0.0 and type(opt["weight_decay"]) is float
    assert opt["is_continue"] is False and opt["is_train"] is True and opt["shared_codebook"] is False
    assert opt["lr_scheduler"] == "[150000, 250000]" and opt["vq_norm"] == "None"
    assert opt["name"] == "rvq_nq6_dc512_nc512_noshare_qdp0.2" and opt["vq_act"] == "relu"
    assert rvq_config_from_opt(opt) == RVQConfig.published()


def test_read_released_transformer_opts(tmp_path: Path) -> None:
    (tmp_path / "vq.txt").write_text(RVQ_OPT_TEXT)
    (tmp_path / "mask.txt").write_text(MASK_OPT_TEXT)
    (tmp_path / "res.txt").write_text(RESIDUAL_OPT_TEXT)
    vq_opt, mask_opt, res_opt = (read_opt_txt(tmp_path / n) for n in ("vq.txt", "mask.txt", "res.txt"))
    assert (
        mask_opt["milestones"] == "[50000]"
        and mask_opt["seed"] == 3407
        and mask_opt["gumbel_sample"] is False
    )
    assert mask_opt["checkpoints_dir"] == "./checkpoints" and mask_opt["dropout"] == 0.2
    assert res_opt["share_weight"] is True and res_opt["cond_drop_prob"] == 0.2
    assert mask_config_from_opt(mask_opt, vq_opt) == MaskTransformerConfig.published()
    assert residual_config_from_opt(res_opt, vq_opt) == ResidualTransformerConfig.published()


def test_opt_txt_round_trip_is_byte_identical(tmp_path: Path) -> None:
    for text in (RVQ_OPT_TEXT, MASK_OPT_TEXT, RESIDUAL_OPT_TEXT):
        (tmp_path / "in.txt").write_text(text)
        opt = read_opt_txt(tmp_path / "in.txt")
        write_opt_txt(tmp_path / "out.txt", opt)
        assert (tmp_path / "out.txt").read_text() == text
        assert read_opt_txt(tmp_path / "out.txt") == opt


def test_opt_txt_skips_unparseable_lines_with_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "opt.txt"
    path.write_text(f"{HEADER}\ndim_word: 300\nwindow_size = 64\nlr: 0.0001\n{FOOTER}\n")
    with caplog.at_level(logging.WARNING, logger="benchmark.backbone.checkpoints"):
        opt = read_opt_txt(path)
    assert opt == {"dim_word": 300, "lr": 0.0001}
    assert "window_size = 64" in caplog.text and "opt.txt:3" in caplog.text


def test_opt_values_typed_as_momask_does(tmp_path: Path) -> None:
    path = tmp_path / "opt.txt"
    path.write_text("a: -1\nb: 1e-05\nc: +0.5\nd: 007\ne: True\nf: x: y\n")
    assert read_opt_txt(path) == {"a": "-1", "b": "1e-05", "c": 0.5, "d": 7, "e": True, "f": "x: y"}


def test_config_from_opt_names_the_bad_key(tmp_path: Path) -> None:
    (tmp_path / "opt.txt").write_text(RVQ_OPT_TEXT.replace("width: 512", "width: wide"))
    with pytest.raises(ConfigError, match="width"):
        rvq_config_from_opt(read_opt_txt(tmp_path / "opt.txt"), path=tmp_path / "opt.txt")
    opt = read_opt_txt(_write(tmp_path / "vq.txt", RVQ_OPT_TEXT))
    opt.pop("nb_code")
    with pytest.raises(ConfigError, match="nb_code"):
        rvq_config_from_opt(opt)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_config_to_opt_and_back(tmp_path: Path) -> None:
    rvq = RVQConfig.small()
    mask = MaskTransformerConfig.small()
    residual = ResidualTransformerConfig.small()
    write_opt_txt(tmp_path / "vq.txt", rvq_opt(rvq, "small_rvq", batch_size=256))
    write_opt_txt(tmp_path / "mask.txt", transformer_opt(mask, "small_mask", "small_rvq"))
    write_opt_txt(tmp_path / "res.txt", transformer_opt(residual, "small_res", "small_rvq"))
    vq_opt = read_opt_txt(tmp_path / "vq.txt")
    assert vq_opt["batch_size"] == 256
    assert rvq_config_from_opt(vq_opt) == rvq
    assert mask_config_from_opt(read_opt_txt(tmp_path / "mask.txt"), vq_opt) == mask
    assert residual_config_from_opt(read_opt_txt(tmp_path / "res.txt"), vq_opt) == residual
    odd = dataclasses.replace(rvq, dropout=0.1, sample_codebook_temp=1.0, quantize_dropout_cutoff_index=2)
    assert rvq_config_from_opt(rvq_opt(odd, "odd")) == odd


# ----------------------------------------------------------------------- .tar files (spec 1.6, 2.4, 2.6, 2.7)

RVQ_NAME = "rvq_nq6_dc512_nc512_noshare_qdp0.2"
MASK_NAME = "t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns"
RES_NAME = "tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw"
CLIP_KEYS = {"clip_model.positional_embedding": (77, 512), "clip_model.text_projection": (512, 512)}


def _random_state_dict(shapes: Shapes, *, clip: bool) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(len(shapes))
    all_shapes = {**shapes, **(CLIP_KEYS if clip else {})}
    return {k: torch.randn(shape, generator=generator) for k, shape in all_shapes.items()}


@pytest.fixture(scope="module")
def official_tree(tmp_path_factory) -> tuple[Path, dict[str, dict[str, torch.Tensor]]]:
    """checkpoints/t2m/<released names>/{opt.txt, model/*.tar} with random tensors in the official layout."""
    root = tmp_path_factory.mktemp("checkpoints") / "t2m"
    tensors = {
        "rvq": _random_state_dict(official_rvq_shapes(), clip=False),
        "mask_transformer": _random_state_dict(official_mask_shapes(), clip=True),
        "residual_transformer": _random_state_dict(official_residual_shapes(), clip=True),
        "length_estimator": _random_state_dict(official_length_shapes(), clip=False),
    }
    for name, text in ((RVQ_NAME, RVQ_OPT_TEXT), (MASK_NAME, MASK_OPT_TEXT), (RES_NAME, RESIDUAL_OPT_TEXT)):
        (root / name / "model").mkdir(parents=True)
        (root / name / "opt.txt").write_text(text)
    (root / "length_estimator" / "model").mkdir(parents=True)
    torch.save({"vq_model": tensors["rvq"], "ep": 48}, root / RVQ_NAME / "model" / "net_best_fid.tar")
    optimizer_state = {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0]}]}
    torch.save(
        {
            "t2m_transformer": tensors["mask_transformer"],
            "opt_t2m_transformer": optimizer_state,
            "scheduler": {"milestones": {50000: 1}, "gamma": 0.1, "last_epoch": 7},
            "ep": 500,
            "total_it": 181000,
        },
        root / MASK_NAME / "model" / "latest.tar",
    )
    torch.save(
        {"res_transformer": tensors["residual_transformer"], "ep": 300},
        root / RES_NAME / "model" / "net_best_fid.tar",
    )
    torch.save(
        {"estimator": tensors["length_estimator"], "epoch": 20, "niter": 9000},
        root / "length_estimator" / "model" / "finest.tar",
    )
    return root, tensors


def _assert_loaded(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    expected = {k: v for k, v in tensors.items() if not k.startswith("clip_model.")}
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


def test_official_folders_load_without_missing_or_unexpected_keys(official_tree) -> None:
    root, tensors = official_tree
    vq = load_official_rvq(root / RVQ_NAME)
    _assert_loaded(vq, tensors["rvq"])
    assert vq.cfg == RVQConfig.published() and not vq.training
    assert all(layer.initialized for layer in vq.quantizer.layers)
    mask = load_official_mask_transformer(root / MASK_NAME)  # VQ opt found through vq_name
    _assert_loaded(mask, tensors["mask_transformer"])
    residual = load_official_residual_transformer(root / RES_NAME)
    _assert_loaded(residual, tensors["residual_transformer"])
    estimator = load_official_length_estimator(root / "length_estimator")
    _assert_loaded(estimator, tensors["length_estimator"])
    assert estimator.cfg == LengthEstimatorConfig.published()


def test_read_checkpoint_keeps_epoch_and_extras(official_tree) -> None:
    root, _ = official_tree
    checkpoint = read_checkpoint(root / MASK_NAME / "model" / "latest.tar", "mask_transformer")
    assert checkpoint.epoch == 500
    assert set(checkpoint.extras) == {"opt_t2m_transformer", "scheduler", "total_it"}
    assert any(k.startswith("clip_model.") for k in checkpoint.state_dict)
    estimator = read_checkpoint(root / "length_estimator" / "model" / "finest.tar", "length_estimator")
    assert estimator.epoch == 20 and estimator.extras == {"niter": 9000}


@pytest.mark.parametrize("part", sorted(PARTS))
def test_write_read_round_trip_in_the_official_layout(official_tree, part: str, tmp_path: Path) -> None:
    _, tensors = official_tree
    _, build, _ = PARTS[part]
    model = build()
    load_official_state_dict(model, tensors[part], part=part)
    path = tmp_path / "model" / "out.tar"
    save_checkpoint(model, path, part, epoch=3)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    top = {
        "rvq": {"vq_model", "ep"},
        "mask_transformer": {"t2m_transformer", "ep"},
        "residual_transformer": {"res_transformer", "ep"},
        "length_estimator": {"estimator", "epoch", "niter"},
    }[part]
    assert set(raw) == top
    checkpoint = read_checkpoint(path, part)
    assert checkpoint.epoch == 3
    expected = {k: v for k, v in tensors[part].items() if not k.startswith("clip_model.")}
    assert checkpoint.state_dict.keys() == expected.keys()
    assert all(torch.equal(checkpoint.state_dict[k], v) for k, v in expected.items())
    assert not list(path.parent.glob(".*.tmp"))  # no temporary file left behind


def test_legacy_top_level_keys(tmp_path: Path) -> None:
    tensors = _random_state_dict(official_length_shapes(), clip=False)
    small = ResidualVQVAE(RVQConfig.small())
    torch.save({"net": small.state_dict(), "ep": 1}, tmp_path / "vq.tar")
    load_checkpoint(ResidualVQVAE(RVQConfig.small()), tmp_path / "vq.tar", "rvq")
    mask = MaskTransformer(MaskTransformerConfig.small())
    torch.save({"trans": mask.state_dict(), "ep": 1}, tmp_path / "mask.tar")
    assert read_checkpoint(tmp_path / "mask.tar", "mask_transformer").epoch == 1
    write_checkpoint(tmp_path / "est.tar", "length_estimator", tensors, epoch=2)
    with pytest.raises(CheckpointError, match="t2m_transformer"):
        read_checkpoint(tmp_path / "est.tar", "mask_transformer")


def test_renamed_key_and_wrong_shape_are_named(official_tree) -> None:
    _, tensors = official_tree
    model = ResidualVQVAE(RVQConfig.published())
    renamed = dict(tensors["rvq"])
    renamed["encoder.model.0.weights"] = renamed.pop("encoder.model.0.weight")
    with pytest.raises(CheckpointError) as error:
        load_official_state_dict(model, renamed, part="rvq", path="vq.tar")
    message = str(error.value)
    assert (
        "encoder.model.0.weight'" in message and "encoder.model.0.weights" in message and "vq.tar" in message
    )

    reshaped = dict(tensors["rvq"])
    reshaped["quantizer.layers.2.codebook"] = torch.zeros(256, 512)
    with pytest.raises(
        CheckpointError, match=r"quantizer\.layers\.2\.codebook \(expected \(512, 512\), found \(256, 512\)\)"
    ):
        load_official_state_dict(model, reshaped, part="rvq")

    estimator = LengthEstimator(LengthEstimatorConfig.published())
    before = {k: v.clone() for k, v in estimator.state_dict().items()}
    extra = {**tensors["length_estimator"], "output.12.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"unexpected keys \['output\.12\.weight'\]"):
        load_official_state_dict(estimator, extra, part="length_estimator")
    assert all(torch.equal(before[k], v) for k, v in estimator.state_dict().items())  # nothing half-loaded


def test_small_config_checkpoint_does_not_fit_published(tmp_path: Path) -> None:
    save_checkpoint(LengthEstimator(LengthEstimatorConfig.small()), tmp_path / "e.tar", "length_estimator")
    with pytest.raises(
        CheckpointError, match=r"output\.0\.weight \(expected \(512, 512\), found \(256, 384\)\)"
    ):
        load_checkpoint(
            LengthEstimator(LengthEstimatorConfig.published()), tmp_path / "e.tar", "length_estimator"
        )


def test_unsafe_pickles_need_trust(tmp_path: Path) -> None:
    model = LengthEstimator(LengthEstimatorConfig.small())
    torch.save(
        {"estimator": model.state_dict(), "epoch": 1, "opt": argparse.Namespace(lr=1e-4)}, tmp_path / "e.tar"
    )
    with pytest.raises(CheckpointError, match="trusted=True"):
        read_checkpoint(tmp_path / "e.tar", "length_estimator")
    assert read_checkpoint(tmp_path / "e.tar", "length_estimator", trusted=True).extras["opt"].lr == 1e-4
    with pytest.raises(CheckpointError, match="no length_estimator checkpoint"):
        read_checkpoint(tmp_path / "missing.tar", "length_estimator")
    with pytest.raises(ValueError, match="unknown checkpoint part"):
        read_checkpoint(tmp_path / "e.tar", "vae")  # type: ignore[arg-type]
