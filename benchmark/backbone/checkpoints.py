"""Compatibility with the official MoMask checkpoints: `opt.txt`, the `.tar` layout and strict loading.

An official checkpoint folder is `<name>/opt.txt` plus `<name>/model/<file>.tar`, where the `.tar` is a plain
`torch.save` dict: `{'vq_model': state_dict, 'ep': int}` (RVQ), `{'t2m_transformer': ...}` (masked),
`{'res_transformer': ...}` (residual) or `{'estimator': ..., 'epoch', 'niter'}` (length estimator).
Loading is all-or-nothing: every missing, unexpected or mis-shaped key is named; only `clip_model.*` keys
(the frozen text encoder) are dropped.

    vq = load_official_rvq("checkpoints/t2m/rvq_nq6_dc512_nc512_noshare_qdp0.2")
    mask = load_official_mask_transformer("checkpoints/t2m/t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns")
    save_checkpoint(vq, "out/model/net_best_fid.tar", "rvq", epoch=50)   # same layout, readable by MoMask
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from benchmark.backbone.config import (
    LengthEstimatorConfig,
    MaskTransformerConfig,
    ResidualTransformerConfig,
    RVQConfig,
)
from benchmark.backbone.length_estimator import LengthEstimator
from benchmark.backbone.rvq import ResidualVQVAE
from benchmark.backbone.transformers import MaskTransformer, ResidualTransformer
from benchmark.errors import ConfigError, HMUError

logger = logging.getLogger(__name__)

OPT_HEADER = "------------ Options -------------"
OPT_FOOTER = "-------------- End ----------------"
_FLOAT = re.compile(r"^[-+]?[0-9]+\.[0-9]+$")

OptValue = bool | int | float | str
Part = Literal["rvq", "mask_transformer", "residual_transformer", "length_estimator"]


class CheckpointError(HMUError):
    """A checkpoint file is missing, unreadable, or does not fit the model. Names the file."""

    def __init__(self, path: str | Path | None, message: str) -> None:
        self.path = Path(path) if path is not None else None
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


# ----------------------------------------------------------------------------- opt.txt


def parse_opt_value(text: str) -> OptValue:
    """MoMask's typing of an opt.txt value: True/False -> bool, `^[-+]?[0-9]+\\.[0-9]+$` -> float, digits only
    -> int, anything else (`None`, `[50000]`, `-1`, `1e-05`) stays a string."""
    if text in ("True", "False"):
        return text == "True"
    if _FLOAT.match(text):
        return float(text)
    if text.isdigit():
        return int(text)
    return text


def read_opt_txt(path: str | Path) -> dict[str, OptValue]:
    """Parse an opt.txt (`key: value` lines between the wrapper lines) into typed values.

    Tolerant: a line without `': '` (such as `window_size = 64` in some evaluator copies) is skipped with a
    warning naming the file and line. No derived options are added (MoMask's get_opt adds paths and dims).
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise CheckpointError(path, f"cannot read opt.txt: {error}") from error
    opt: dict[str, OptValue] = {}
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped in (OPT_HEADER, OPT_FOOTER):
            continue
        key, separator, value = line.rstrip("\r\n").partition(": ")
        if not separator or not key.strip():
            logger.warning("%s:%d: skipping a line that is not 'key: value': %r", path, number, line)
            continue
        key = key.strip()
        if key in opt:
            logger.warning("%s:%d: key %r repeated; the last value wins", path, number, key)
        opt[key] = parse_opt_value(value.strip())
    return opt


def write_opt_txt(path: str | Path, opt: Mapping[str, object]) -> None:
    """Write an opt.txt as MoMask does: wrapper lines around `key: str(value)` lines sorted by key.

    Reading it back gives the same dict for bool, non-negative int, `d.d` float and string values; other
    values come back as strings (e.g. None -> 'None', -1 -> '-1'), as with MoMask's own files.
    """
    lines = [OPT_HEADER]
    for key in sorted(opt):
        value = str(opt[key])
        if not key or ": " in key or "\n" in key or "\n" in value:
            raise ValueError(f"opt key {key!r} or its value cannot be written as one 'key: value' line")
        lines.append(f"{key}: {value}")
    lines.append(OPT_FOOTER)
    Path(path).write_text("\n".join(lines) + "\n")


def _opt_get(opt: Mapping[str, OptValue], key: str, kind: type, path: str | Path | None) -> Any:
    where = path if path is not None else "opt.txt"
    if key not in opt:
        raise ConfigError(where, key, "missing")
    value = opt[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(where, key, f"expected {kind.__name__}, got {value!r}")
    return value


def _opt_optional(opt: Mapping[str, OptValue], key: str, kind: type, default: Any, path: Any) -> Any:
    """A key MoMask's opt.txt lacks (HMU writes it): its value if present, else MoMask's fixed value."""
    return _opt_get(opt, key, kind, path) if key in opt else default


def rvq_config_from_opt(
    opt: Mapping[str, OptValue], *, input_dim: int | None = None, path: str | Path | None = None
) -> RVQConfig:
    """RVQConfig from an RVQ opt.txt.

    Options MoMask's file lacks are read if present (`dim_pose`, `vq_dropout`,
    `quantize_dropout_cutoff_index`, `sample_codebook_temp`, as `rvq_opt` writes them), else take MoMask's
    fixed values (263, 0.2, 0, 0.5); an explicit `input_dim` wins over `dim_pose`.
    """
    code_dim = _opt_get(opt, "code_dim", int, path)
    if _opt_get(opt, "output_emb_width", int, path) != code_dim:
        raise ConfigError(path or "opt.txt", "output_emb_width", "must equal code_dim")
    if _opt_get(opt, "shared_codebook", bool, path):
        raise ConfigError(path or "opt.txt", "shared_codebook", "a shared codebook is not supported")
    norm = _opt_get(opt, "vq_norm", str, path)
    return RVQConfig(
        input_dim=input_dim if input_dim is not None else _opt_optional(opt, "dim_pose", int, 263, path),
        width=_opt_get(opt, "width", int, path),
        code_dim=code_dim,
        nb_code=_opt_get(opt, "nb_code", int, path),
        num_quantizers=_opt_get(opt, "num_quantizers", int, path),
        down_t=_opt_get(opt, "down_t", int, path),
        stride_t=_opt_get(opt, "stride_t", int, path),
        depth=_opt_get(opt, "depth", int, path),
        dilation_growth_rate=_opt_get(opt, "dilation_growth_rate", int, path),
        activation=_opt_get(opt, "vq_act", str, path),
        norm=None if norm == "None" else norm,
        dropout=_opt_optional(opt, "vq_dropout", float, 0.2, path),
        quantize_dropout_prob=_opt_get(opt, "quantize_dropout_prob", float, path),
        quantize_dropout_cutoff_index=_opt_optional(opt, "quantize_dropout_cutoff_index", int, 0, path),
        mu=_opt_get(opt, "mu", float, path),
        sample_codebook_temp=_opt_optional(opt, "sample_codebook_temp", float, 0.5, path),
        commit=_opt_get(opt, "commit", float, path),
        position_loss_weight=_opt_get(opt, "loss_vel", float, path),
    )


def _transformer_fields(
    opt: Mapping[str, OptValue], vq_opt: Mapping[str, OptValue], cond_dim: int | None, path: Any
) -> dict[str, Any]:
    # Token count and code size come from the VQ's opt, as MoMask sets them at load time.
    return {
        "num_tokens": _opt_get(vq_opt, "nb_code", int, path),
        "code_dim": _opt_get(vq_opt, "code_dim", int, path),
        "latent_dim": _opt_get(opt, "latent_dim", int, path),
        "ff_size": _opt_get(opt, "ff_size", int, path),
        "n_layers": _opt_get(opt, "n_layers", int, path),
        "n_heads": _opt_get(opt, "n_heads", int, path),
        "dropout": _opt_get(opt, "dropout", float, path),
        "cond_drop_prob": _opt_get(opt, "cond_drop_prob", float, path),
        "cond_dim": cond_dim if cond_dim is not None else _opt_optional(opt, "cond_dim", int, 512, path),
        "max_len": _opt_optional(opt, "max_len", int, 5000, path),
    }


def mask_config_from_opt(
    opt: Mapping[str, OptValue],
    vq_opt: Mapping[str, OptValue],
    *,
    cond_dim: int | None = None,
    path: str | Path | None = None,
) -> MaskTransformerConfig:
    """MaskTransformerConfig from the transformer's and its VQ's opt.txt. `cond_dim` and `max_len` are read
    if present (HMU writes them), else MoMask's 512 (CLIP ViT-B/32) and 5000; an explicit `cond_dim` wins."""
    return MaskTransformerConfig(**_transformer_fields(opt, vq_opt, cond_dim, path))


def residual_config_from_opt(
    opt: Mapping[str, OptValue],
    vq_opt: Mapping[str, OptValue],
    *,
    cond_dim: int | None = None,
    path: str | Path | None = None,
) -> ResidualTransformerConfig:
    """ResidualTransformerConfig from the residual transformer's and its VQ's opt.txt (as the masked one)."""
    return ResidualTransformerConfig(
        num_quantizers=_opt_get(vq_opt, "num_quantizers", int, path),
        share_weight=_opt_get(opt, "share_weight", bool, path),
        **_transformer_fields(opt, vq_opt, cond_dim, path),
    )


def rvq_opt(cfg: RVQConfig, name: str, **training: OptValue) -> dict[str, OptValue]:
    """The options of an RVQ opt.txt for `cfg` (MoMask's names, plus the HMU keys `rvq_config_from_opt`
    reads), merged with any training options given, for `write_opt_txt`."""
    model: dict[str, OptValue] = {
        "name": name,
        "dim_pose": cfg.input_dim,
        "width": cfg.width,
        "code_dim": cfg.code_dim,
        "output_emb_width": cfg.code_dim,
        "nb_code": cfg.nb_code,
        "num_quantizers": cfg.num_quantizers,
        "shared_codebook": False,
        "down_t": cfg.down_t,
        "stride_t": cfg.stride_t,
        "depth": cfg.depth,
        "dilation_growth_rate": cfg.dilation_growth_rate,
        "vq_act": cfg.activation,
        "vq_norm": str(cfg.norm),
        "vq_dropout": cfg.dropout,
        "quantize_dropout_prob": cfg.quantize_dropout_prob,
        "quantize_dropout_cutoff_index": cfg.quantize_dropout_cutoff_index,
        "mu": cfg.mu,
        "sample_codebook_temp": cfg.sample_codebook_temp,
        "commit": cfg.commit,
        "loss_vel": cfg.position_loss_weight,
    }
    return {**training, **model}


def transformer_opt(
    cfg: MaskTransformerConfig | ResidualTransformerConfig, name: str, vq_name: str, **training: OptValue
) -> dict[str, OptValue]:
    """The options of a masked or residual transformer's opt.txt (token count and code size live in the VQ's
    opt.txt, found through `vq_name`), merged with any training options given."""
    model: dict[str, OptValue] = {
        "name": name,
        "vq_name": vq_name,
        "latent_dim": cfg.latent_dim,
        "ff_size": cfg.ff_size,
        "n_layers": cfg.n_layers,
        "n_heads": cfg.n_heads,
        "dropout": cfg.dropout,
        "cond_drop_prob": cfg.cond_drop_prob,
        "cond_dim": cfg.cond_dim,
        "max_len": cfg.max_len,
    }
    if isinstance(cfg, ResidualTransformerConfig):
        model["share_weight"] = cfg.share_weight
    return {**training, **model}


# ----------------------------------------------------------------------------- .tar files


@dataclass(frozen=True)
class _Layout:
    state_keys: tuple[str, ...]
    """Top-level keys holding the state dict, the one written first (later ones are legacy names)."""
    epoch_key: str
    defaults: tuple[tuple[str, Any], ...] = ()
    """Other top-level entries the official files always have, written with these values if not given."""


LAYOUTS: dict[str, _Layout] = {
    "rvq": _Layout(("vq_model", "net"), "ep"),
    "mask_transformer": _Layout(("t2m_transformer", "trans"), "ep"),
    "residual_transformer": _Layout(("res_transformer",), "ep"),
    "length_estimator": _Layout(("estimator",), "epoch", (("niter", 0),)),
}


@dataclass(frozen=True)
class CheckpointFile:
    """The content of one official-layout `.tar`."""

    part: str
    """Which model: rvq, mask_transformer, residual_transformer or length_estimator."""
    state_dict: dict[str, Tensor]
    """Model tensors, as stored (may include `clip_model.*` keys)."""
    epoch: int | None
    """`ep` (or `epoch` for the length estimator), None if absent."""
    extras: dict[str, Any]
    """Every other top-level entry (optimizer and scheduler states, total_it, niter, LCR metadata...)."""


def _layout(part: str) -> _Layout:
    if part not in LAYOUTS:
        raise ValueError(f"unknown checkpoint part {part!r}; expected one of {sorted(LAYOUTS)}")
    return LAYOUTS[part]


def read_checkpoint(path: str | Path, part: Part, *, trusted: bool = False) -> CheckpointFile:
    """Read an official-layout `.tar` on the CPU.

    By default with `weights_only=True` (tensors and plain containers only); `trusted=True` allows any
    pickled object and must only be used for files from a trusted source.
    """
    layout = _layout(part)
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, f"no {part} checkpoint file here")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            path,
            "holds objects beyond tensors and plain containers "
            f"(pass trusted=True only for a file you trust): {error}",
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(path, f"not a readable torch checkpoint: {error}") from error
    if not isinstance(raw, dict):
        raise CheckpointError(path, f"expected a dict at the top level, found {type(raw).__name__}")
    found = [key for key in layout.state_keys if key in raw]
    if not found:
        raise CheckpointError(
            path,
            f"no {part} state dict: expected key {' or '.join(map(repr, layout.state_keys))}, "
            f"found {sorted(raw)}",
        )
    state_dict = raw[found[0]]
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(path, f"{found[0]!r} is not a state dict")
    epoch = raw.get(layout.epoch_key)
    extras = {k: v for k, v in raw.items() if k not in layout.state_keys and k != layout.epoch_key}
    return CheckpointFile(part, dict(state_dict), epoch, extras)


def write_checkpoint(
    path: str | Path,
    part: Part,
    state_dict: Mapping[str, Tensor],
    *,
    epoch: int = 0,
    extras: Mapping[str, Any] | None = None,
) -> None:
    """Write `{<state key>: state_dict, <epoch key>: epoch, **extras}` as MoMask does (CLIP keys dropped).

    The file is written next to its destination and renamed into place, so a crash leaves no half file.
    """
    layout = _layout(part)
    tensors = {k: v.detach().cpu() for k, v in state_dict.items() if not k.startswith("clip_model.")}
    content: dict[str, Any] = {**dict(layout.defaults), **(extras or {})}
    content[layout.state_keys[0]] = tensors
    content[layout.epoch_key] = int(epoch)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(content, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load_official_state_dict(
    module: nn.Module, state_dict: Mapping[str, Any], *, part: str, path: str | Path | None = None
) -> None:
    """Load `state_dict` into `module` exactly: `clip_model.*` keys are ignored, anything else that is
    missing, unexpected or of another shape raises a CheckpointError naming every such key."""
    tensors = {k: v for k, v in state_dict.items() if not k.startswith("clip_model.")}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    not_tensors = sorted(k for k, v in tensors.items() if k in expected and not isinstance(v, Tensor))
    mismatched = [
        f"{k} (expected {tuple(expected[k].shape)}, found {tuple(tensors[k].shape)})"
        for k in sorted(expected)
        if k in tensors and isinstance(tensors[k], Tensor) and tensors[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if not_tensors:
        problems.append(f"values that are not tensors {not_tensors}")
    if mismatched:
        problems.append(f"shape mismatches {mismatched}")
    if problems:
        raise CheckpointError(
            path, f"{part} state dict does not fit {type(module).__name__}: " + "; ".join(problems)
        )
    module.load_state_dict(tensors, strict=True)


def load_checkpoint(
    module: nn.Module, path: str | Path, part: Part, *, trusted: bool = False
) -> CheckpointFile:
    """Read an official-layout `.tar` and load its state dict into `module` strictly; returns the file."""
    checkpoint = read_checkpoint(path, part, trusted=trusted)
    load_official_state_dict(module, checkpoint.state_dict, part=part, path=path)
    return checkpoint


def save_checkpoint(
    module: nn.Module,
    path: str | Path,
    part: Part,
    *,
    epoch: int = 0,
    extras: Mapping[str, Any] | None = None,
) -> None:
    """Write `module`'s state dict in the official layout of `part`."""
    write_checkpoint(path, part, module.state_dict(), epoch=epoch, extras=extras)


# ----------------------------------------------------------------------------- official folders


def load_official_rvq(
    folder: str | Path,
    filename: str = "net_best_fid.tar",
    *,
    input_dim: int | None = None,
    trusted: bool = False,
) -> ResidualVQVAE:
    """The RVQ of an official folder (`opt.txt`, `model/<filename>`), in eval mode."""
    folder = Path(folder)
    cfg = rvq_config_from_opt(read_opt_txt(folder / "opt.txt"), input_dim=input_dim, path=folder / "opt.txt")
    model = ResidualVQVAE(cfg)
    load_checkpoint(model, folder / "model" / filename, "rvq", trusted=trusted)
    return model.eval()


def _transformer_opts(folder: Path, vq_folder: str | Path | None) -> tuple[dict, dict]:
    opt = read_opt_txt(folder / "opt.txt")
    if vq_folder is None:
        vq_name = _opt_get(opt, "vq_name", str, folder / "opt.txt")
        vq_folder = folder.parent / vq_name
    return opt, read_opt_txt(Path(vq_folder) / "opt.txt")


def load_official_mask_transformer(
    folder: str | Path,
    filename: str = "latest.tar",
    *,
    vq_folder: str | Path | None = None,
    cond_dim: int | None = None,
    trusted: bool = False,
) -> MaskTransformer:
    """The masked transformer of an official folder, in eval mode. Its VQ's opt.txt (for the token count
    and code size) is read from `vq_folder`, by default the sibling folder named by `vq_name`.
    The released gen_t2m.py uses `latest.tar` for this model."""
    folder = Path(folder)
    opt, vq_opt = _transformer_opts(folder, vq_folder)
    model = MaskTransformer(mask_config_from_opt(opt, vq_opt, cond_dim=cond_dim, path=folder / "opt.txt"))
    load_checkpoint(model, folder / "model" / filename, "mask_transformer", trusted=trusted)
    return model.eval()


def load_official_residual_transformer(
    folder: str | Path,
    filename: str = "net_best_fid.tar",
    *,
    vq_folder: str | Path | None = None,
    cond_dim: int | None = None,
    trusted: bool = False,
) -> ResidualTransformer:
    """The residual transformer of an official folder, in eval mode (VQ opt found as for the masked one)."""
    folder = Path(folder)
    opt, vq_opt = _transformer_opts(folder, vq_folder)
    cfg = residual_config_from_opt(opt, vq_opt, cond_dim=cond_dim, path=folder / "opt.txt")
    model = ResidualTransformer(cfg)
    load_checkpoint(model, folder / "model" / filename, "residual_transformer", trusted=trusted)
    return model.eval()


def length_estimator_config_from_state_dict(state_dict: Mapping[str, Tensor]) -> LengthEstimatorConfig:
    """The estimator's sizes read off its weights (the released folder has no opt.txt facts to rely on)."""
    try:
        first, last = state_dict["output.0.weight"], state_dict["output.11.weight"]
    except KeyError as error:
        raise CheckpointError(None, f"length estimator state dict lacks {error}") from error
    return LengthEstimatorConfig(
        cond_dim=first.shape[1], hidden_dim=first.shape[0], num_classes=last.shape[0]
    )


def load_official_length_estimator(
    folder: str | Path, filename: str = "finest.tar", *, trusted: bool = False
) -> LengthEstimator:
    """The length estimator of an official folder (`model/finest.tar`), in eval mode."""
    path = Path(folder) / "model" / filename
    checkpoint = read_checkpoint(path, "length_estimator", trusted=trusted)
    model = LengthEstimator(length_estimator_config_from_state_dict(checkpoint.state_dict))
    load_official_state_dict(model, checkpoint.state_dict, part="length_estimator", path=path)
    return model.eval()
