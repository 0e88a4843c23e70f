"""Conversion between the official MoMask checkpoint folders and an HMU model folder.

The official layout, under `<checkpoints>/<dataset>/` (dataset `t2m` for HumanML3D):

    <rvq>/opt.txt, <rvq>/model/net_best_fid.tar, <rvq>/meta/mean.npy, <rvq>/meta/std.npy
    <mask>/opt.txt, <mask>/model/latest.tar          (the released gen_t2m.py reads latest.tar here)
    <residual>/opt.txt, <residual>/model/net_best_fid.tar
    length_estimator/model/finest.tar                 (optional)

Importing reads every part strictly (see `checkpoints.py`), takes the normalisation from the RVQ's `meta/`
(MoMask de-normalises generated motion with it) and records the text encoder as OpenAI's CLIP ViT-B/32 with
the released file's sha256, so generation later demands exactly that file (or the identity given at import,
or the one an HMU export wrote to `<mask>/text_encoder.json`). Exporting writes the same layout back,
readable by MoMask's own loaders, plus that `text_encoder.json`.

    card = import_momask("checkpoints", "models/momask-t2m")
    export_momask("models/momask-t2m", "exported/checkpoints")
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.backbone.checkpoints import (
    CheckpointError,
    OptValue,
    length_estimator_config_from_state_dict,
    load_official_state_dict,
    mask_config_from_opt,
    read_checkpoint,
    read_opt_txt,
    residual_config_from_opt,
    rvq_config_from_opt,
    rvq_opt,
    save_checkpoint,
    transformer_opt,
    write_opt_txt,
)
from benchmark.backbone.config import BackboneConfig, LengthEstimatorConfig
from benchmark.backbone.model import Backbone, DatasetInfo, ModelCard, load_model, save_model
from benchmark.errors import ConfigError, HMUError
from benchmark.text.base import sha256_file
from benchmark.text.clip import BPE_SHA256, CONTEXT_LENGTH, EMBED_DIM, OPENAI_VIT_B32_SHA256

logger = logging.getLogger(__name__)

RELEASED_RVQ = "rvq_nq6_dc512_nc512_noshare_qdp0.2"
RELEASED_MASK = "t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns"
RELEASED_RESIDUAL = "tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw"
LENGTH_ESTIMATOR = "length_estimator"
"""Folder of the length estimator (MoMask's scripts hard-code this name)."""
TEXT_ENCODER_FILE = "text_encoder.json"
"""Written by `export_momask` beside the masked transformer's opt.txt (MoMask ignores it): the text encoder
identity, so that exporting and importing again loses nothing."""

DATASETS: dict[str, DatasetInfo] = {
    "t2m": DatasetInfo("HumanML3D", 20.0, 263),
    "HumanML3D": DatasetInfo("HumanML3D", 20.0, 263),  # the HMU fork's name for t2m
    # Motion-X in the HumanML3D body-only representation; the conversion keeps the source's 30 fps
    # (spec/humanml3d-format.md section 7). Pass `fps` where a copy was resampled.
    "Motion-X": DatasetInfo("Motion-X", 30.0, 263),
    "kit": DatasetInfo("KIT-ML", 12.5, 251),
}
"""MoMask's `dataset_name` -> the feature space of its models."""


@dataclass(frozen=True)
class MomaskNames:
    """Which official folders and files make up one model (defaults: the released HumanML3D model)."""

    rvq: str = RELEASED_RVQ
    """Folder of the residual VQ-VAE (also holds `meta/mean.npy`, `meta/std.npy`)."""
    mask: str = RELEASED_MASK
    """Folder of the masked transformer."""
    residual: str = RELEASED_RESIDUAL
    """Folder of the residual transformer."""
    which_rvq: str = "net_best_fid.tar"
    """File under `<rvq>/model/`."""
    which_mask: str = "latest.tar"
    """File under `<mask>/model/` (the released gen_t2m.py uses latest.tar)."""
    which_residual: str = "net_best_fid.tar"
    """File under `<residual>/model/`."""
    length_estimator: str | None = LENGTH_ESTIMATOR
    """Folder of the length estimator; None: no estimator (at import: skip it even if present)."""
    which_length_estimator: str = "finest.tar"
    """File under `<length_estimator>/model/`."""


def official_clip_identity(
    weights_sha256: str = OPENAI_VIT_B32_SHA256, weights_file: str = "ViT-B-32.pt"
) -> dict:
    """The text encoder identity of a MoMask model: what `ClipTextEncoder.identity()` reports for OpenAI's
    released ViT-B-32.pt (or for the weights file whose sha256 is given)."""
    return {
        "encoder": "clip-vit-b32",
        "model": "openai/clip-vit-b32 text tower",
        "weights_file": weights_file,
        "weights_sha256": weights_sha256,
        "random_seed": None,
        "tokenizer_merges_sha256": BPE_SHA256,
        "context_length": CONTEXT_LENGTH,
        "dim": EMBED_DIM,
        "normalised": False,
    }


def _text_encoder_identity(given: Mapping[str, Any] | None, recorded: Path) -> dict[str, Any]:
    """The identity given, else the one `export_momask` recorded beside the masked transformer, else
    MoMask's CLIP."""
    if given is not None:
        return dict(given)
    if recorded.is_file():
        try:
            identity = json.loads(recorded.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(recorded, None, f"not valid JSON: {error}") from error
        if not isinstance(identity, dict) or not isinstance(identity.get("encoder"), str):
            raise ConfigError(recorded, "encoder", "expected a text encoder identity with an encoder name")
        return identity
    return official_clip_identity()


def dataset_info(dataset: str, fps: float | None = None) -> DatasetInfo:
    """The feature space of MoMask's `dataset_name` (`fps` overrides the frame rate)."""
    if dataset not in DATASETS:
        raise HMUError(f"unknown MoMask dataset {dataset!r}; known: {', '.join(DATASETS)}")
    info = DATASETS[dataset]
    return info if fps is None else DatasetInfo(info.name, float(fps), info.feature_dim)


def _required_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise CheckpointError(path, f"missing ({what})")
    return path


def _check_vq_name(opt: Mapping[str, OptValue], path: Path, rvq: str) -> None:
    # A transformer predicts the codes of the VQ it was trained with; another VQ would decode garbage.
    vq_name = opt.get("vq_name")
    if vq_name is not None and vq_name != rvq:
        raise ConfigError(path, "vq_name", f"this transformer was trained on the VQ {vq_name!r}, not {rvq!r}")


def import_momask(
    checkpoints: str | Path,
    out: str | Path,
    *,
    dataset: str = "t2m",
    names: MomaskNames = MomaskNames(),  # noqa: B008 (frozen, so sharing the default is safe)
    text_encoder_identity: Mapping[str, Any] | None = None,
    fps: float | None = None,
    trusted: bool = False,
    overwrite: bool = False,
) -> ModelCard:
    """Convert the official folders under `<checkpoints>/<dataset>/` into a model folder at `out`.

    `text_encoder_identity` defaults to `<mask>/text_encoder.json` if an HMU export wrote one, else to
    `official_clip_identity()`; its dim must match the transformers' cond_dim. `trusted=True` allows `.tar`
    files holding arbitrary pickled objects (only for files you trust). The length estimator is imported
    when its folder exists and skipped (with a log line) when it does not; a folder without its file is an
    error. Without an estimator, the card's `config.length` is a placeholder sized for cond_dim.
    """
    root = Path(checkpoints) / dataset
    info = dataset_info(dataset, fps)
    rvq_dir, mask_dir, residual_dir = root / names.rvq, root / names.mask, root / names.residual

    vq_opt_path = _required_file(rvq_dir / "opt.txt", "the RVQ's options")
    vq_opt = read_opt_txt(vq_opt_path)
    rvq_cfg = rvq_config_from_opt(vq_opt, input_dim=info.feature_dim, path=vq_opt_path)
    mask_opt_path = _required_file(mask_dir / "opt.txt", "the masked transformer's options")
    mask_opt = read_opt_txt(mask_opt_path)
    _check_vq_name(mask_opt, mask_opt_path, names.rvq)
    residual_opt_path = _required_file(residual_dir / "opt.txt", "the residual transformer's options")
    residual_opt = read_opt_txt(residual_opt_path)
    _check_vq_name(residual_opt, residual_opt_path, names.rvq)
    mask_cfg = mask_config_from_opt(mask_opt, vq_opt, path=mask_opt_path)
    residual_cfg = residual_config_from_opt(residual_opt, vq_opt, path=residual_opt_path)
    identity = _text_encoder_identity(text_encoder_identity, mask_dir / TEXT_ENCODER_FILE)
    if identity.get("dim") != mask_cfg.cond_dim:
        raise ConfigError(
            mask_opt_path,
            "cond_dim",
            f"the transformers take {mask_cfg.cond_dim}-d text features, the text encoder "
            f"{identity.get('encoder')!r} gives {identity.get('dim')!r}-d: give the identity of the encoder "
            "the model was trained with",
        )

    files = {
        "rvq": _required_file(rvq_dir / "model" / names.which_rvq, "the RVQ's weights"),
        "mask_transformer": _required_file(mask_dir / "model" / names.which_mask, "the masked transformer"),
        "residual_transformer": _required_file(
            residual_dir / "model" / names.which_residual, "the residual transformer"
        ),
    }
    if names.length_estimator is not None:
        estimator_dir = root / names.length_estimator
        if estimator_dir.is_dir():
            files["length_estimator"] = _required_file(
                estimator_dir / "model" / names.which_length_estimator, "the length estimator"
            )
        else:
            logger.info("%s: no length estimator folder; the model will need a length for every prompt", root)
    checkpoints_read = {part: read_checkpoint(path, part, trusted=trusted) for part, path in files.items()}  # type: ignore[arg-type]
    if "length_estimator" in checkpoints_read:
        try:
            length_cfg = length_estimator_config_from_state_dict(
                checkpoints_read["length_estimator"].state_dict
            )
        except CheckpointError as error:
            raise CheckpointError(files["length_estimator"], error.message) from error
    else:
        length_cfg = LengthEstimatorConfig(cond_dim=mask_cfg.cond_dim)
    try:
        config = BackboneConfig(rvq_cfg, mask_cfg, residual_cfg, length_cfg)
    except ValueError as error:
        raise ConfigError(root, "config", f"the official folders do not fit together: {error}") from error

    mean = np.load(_required_file(rvq_dir / "meta" / "mean.npy", "the RVQ's normalisation mean"))
    std = np.load(_required_file(rvq_dir / "meta" / "std.npy", "the RVQ's normalisation std"))
    for path, array in ((rvq_dir / "meta" / "mean.npy", mean), (rvq_dir / "meta" / "std.npy", std)):
        if array.shape != (info.feature_dim,) or not np.isfinite(array).all():
            raise CheckpointError(
                path, f"expected {info.feature_dim} finite values, found shape {array.shape}"
            )
    if (std <= 0).any():
        raise CheckpointError(rvq_dir / "meta" / "std.npy", "holds values <= 0")

    backbone = Backbone(config, mean, std, length_estimator="length_estimator" in files)
    modules = backbone.parts()
    for part, checkpoint in checkpoints_read.items():
        load_official_state_dict(modules[part], checkpoint.state_dict, part=part, path=files[part])

    # Relative names and content digests only: the same files imported from another disk hash the same.
    sources = {
        part: {
            "file": str(path.relative_to(root)),
            "sha256": sha256_file(path),
            "epoch": checkpoints_read[part].epoch,
        }
        for part, path in files.items()
    }
    for name in ("mean.npy", "std.npy"):
        path = rvq_dir / "meta" / name
        sources[f"meta/{name}"] = {
            "file": str(path.relative_to(root)),
            "sha256": sha256_file(path),
            "epoch": None,
        }
    provenance = {"kind": "imported", "source": "momask-official", "dataset_name": dataset, "files": sources}
    return save_model(
        backbone,
        out,
        text_encoder_identity=identity,
        dataset=info,
        provenance=provenance,
        overwrite=overwrite,
    )


def export_momask(
    model: str | Path,
    checkpoints: str | Path,
    *,
    dataset: str = "t2m",
    names: MomaskNames = MomaskNames(),  # noqa: B008 (frozen, so sharing the default is safe)
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the model folder `model` in the official layout under `<checkpoints>/<dataset>/`.

    opt.txt files carry the model options (MoMask's names plus the HMU keys `cond_dim`, `max_len`, `dim_pose`
    that make small configurations loadable), the `.tar` files the official top-level keys (epoch 0), and
    the RVQ's `meta/` the model's mean and std. Returns the written weight files by part. Existing part
    folders are refused unless `overwrite=True` (then files inside are replaced, others left alone).
    """
    loaded = load_model(model, device="cpu")
    backbone, cfg = loaded.backbone, loaded.card.config
    root = Path(checkpoints) / dataset
    folders = {"rvq": names.rvq, "mask_transformer": names.mask, "residual_transformer": names.residual}
    files = {
        "rvq": root / names.rvq / "model" / names.which_rvq,
        "mask_transformer": root / names.mask / "model" / names.which_mask,
        "residual_transformer": root / names.residual / "model" / names.which_residual,
    }
    if backbone.length_estimator is not None:
        if names.length_estimator is None:
            raise HMUError("the model has a length estimator but no folder name was given for it")
        folders["length_estimator"] = names.length_estimator
        files["length_estimator"] = root / names.length_estimator / "model" / names.which_length_estimator
    if len(set(folders.values())) != len(folders):
        raise HMUError(f"two parts would share one folder: {folders}")
    if not overwrite:
        existing = [str(root / folder) for folder in folders.values() if (root / folder).exists()]
        if existing:
            raise HMUError(f"refusing to overwrite existing folder(s) {existing} (pass overwrite=True)")

    for folder in folders.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
    common: dict[str, OptValue] = {"dataset_name": dataset}
    write_opt_txt(root / names.rvq / "opt.txt", rvq_opt(cfg.rvq, names.rvq, **common))
    write_opt_txt(root / names.mask / "opt.txt", transformer_opt(cfg.mask, names.mask, names.rvq, **common))
    write_opt_txt(
        root / names.residual / "opt.txt", transformer_opt(cfg.residual, names.residual, names.rvq, **common)
    )
    (root / names.mask / TEXT_ENCODER_FILE).write_text(
        json.dumps(loaded.card.text_encoder, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    meta = root / names.rvq / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    np.save(meta / "mean.npy", backbone.mean.cpu().numpy())
    np.save(meta / "std.npy", backbone.std.cpu().numpy())
    modules = backbone.parts()
    for part, path in files.items():
        save_checkpoint(modules[part], path, part)  # type: ignore[arg-type]
    return files
