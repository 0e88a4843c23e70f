"""lcr: Latent Code Replacement: overwrite the RVQ codes that mark the concept, so they decode otherwise.

The HMU paper's method (arXiv 2503.18674, `src/methods/lcr.py`; spec/unlearning-methods.md section 1):

1. Encode every forget and retain motion of the training split with the RVQ, and count per layer in how
   many motions each code occurs (document frequencies n_f(c), n_r(c): a motion counts once per code).
2. Rank the codes by s1 = n_f / (n_r + ε) and by s2 = (n_f / Σn_f) / (n_r / Σn_r + ε), and censor the
   union of the top k of each, in each of the first `layers` layers. Steps 1 and 2 are
   `benchmark.unlearning.codes`, shared with `code_ban`, which forbids the codes while sampling instead.
3. Overwrite each censored codebook row (in a copy of the model): `replace` writes the target code's row
   plus α·σ_layer·ε, ε ~ N(0, I) drawn once with the run's seed (σ_layer: std of all entries of that
   layer's codebook); `orthogonal` removes α times the row's component along the normalised mean of the
   censored rows.

Only codebook tensors change. The transformers have their own token embeddings, so they still predict the
same indices; the censored indices just decode differently.

Where this departs from the HMU code, and why:
- Each motion is encoded whole, once (`statistics_passes: 1`), cropped to a multiple of the token length,
  without padding. The original encoded `train_val` 20 times with the dataset's random crops (and random
  caption choice, irrelevant to codes), zero-padded to 196 frames: the padding's codes were counted in
  every motion, forget and retain alike. The RVQ is convolutional and deterministic, so one full-length
  pass is exact; `statistics_passes: N > 1` reproduces the random crops (MoMask's: length rounded down to
  whole tokens, one token shorter with probability 1/3, random offset), each crop a document.
- The retain set is the request's retain ids, not "every train_val motion not in the forget file".
- Codes that never occur in a forget motion are never censored (the original's argsort could pick them
  when fewer than k codes occur), and ties are broken by the lower code index (a stable sort).
- A censored target code is replaced by a code uncensored in *every* edited layer, drawn with the run's
  seed (the original checked layer 0 only).
- The statistics are cached under a key made of the RVQ's weights and normalisation, the sha256 of every
  listed feature file, the forget and retain ids and the statistics' own settings; an entry stored under
  another key is never used. The original reused `assets/<DS>_codes.csv` whatever the checkpoint or data.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from benchmark.api import Method, MethodError, UnlearnOutcome, UnlearnRequest
from benchmark.api.contract import ContractError
from benchmark.backbone import LoadedModel
from benchmark.backbone.model import Backbone
from benchmark.unlearning.codes import cached_statistics, select_codes

MODES: tuple[str, ...] = ("replace", "orthogonal")
"""How a censored code is overwritten: by the target code plus noise, or without its mean direction."""


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class LCRSettings:
    """The method's parameters, checked against the model (method.yaml explains each)."""

    k: int
    layers: int
    alpha: float
    mode: str
    target_code: int
    statistics_passes: int

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any], backbone: Backbone) -> LCRSettings:
        """The settings; a value out of range is a ContractError naming `parameters.<name>`."""
        rvq = backbone.config.rvq
        settings = cls(**{name: parameters[name] for name in cls.__dataclass_fields__})
        checks = {
            "k": (settings.k >= 1, "must be >= 1"),
            "layers": (
                1 <= settings.layers <= rvq.num_quantizers,
                f"must be in [1, {rvq.num_quantizers}] (the model's RVQ layers)",
            ),
            "alpha": (settings.alpha >= 0, "must be >= 0"),
            "mode": (settings.mode in MODES, f"expected one of {', '.join(MODES)}"),
            "target_code": (
                0 <= settings.target_code < rvq.nb_code,
                f"must be in [0, {rvq.nb_code}) (the model's codes per layer)",
            ),
            "statistics_passes": (settings.statistics_passes >= 1, "must be >= 1"),
        }
        for name, (ok, message) in checks.items():
            if not ok:
                raise ContractError(f"parameters.{name}", f"{message}, got {getattr(settings, name)!r}")
        return settings


# ----------------------------------------------------------------------------- the edit


def choose_target(
    requested: int, censored: Sequence[Sequence[int]], nb_code: int, rng: np.random.Generator
) -> int:
    """`requested`, or when some edited layer censors it, a code no edited layer censors, drawn with `rng`."""
    banned = {code for layer in censored for code in layer}
    if requested not in banned:
        return requested
    allowed = [code for code in range(nb_code) if code not in banned]
    if not allowed:
        raise MethodError("every code is censored in some edited layer: there is no target code left")
    return int(allowed[int(rng.integers(len(allowed)))])


def replace_codes(codebook: Tensor, codes: Sequence[int], target: int, alpha: float, noise: Tensor) -> float:
    """codebook[c] = codebook[target] + α·σ·ε_c for each censored code c, in place; σ is the std of all
    entries of the codebook before the edit and ε (len(codes), code_dim) the noise. Returns σ."""
    sigma = float(codebook.std())
    rows = torch.as_tensor(list(codes), dtype=torch.long, device=codebook.device)
    with torch.no_grad():
        codebook[rows] = codebook[target] + alpha * sigma * noise.to(codebook.device, codebook.dtype)
    return sigma


def orthogonalise_codes(codebook: Tensor, codes: Sequence[int], alpha: float) -> None:
    """c ← c − α (c·d) d for each censored code c, in place, d the normalised mean of the censored rows."""
    rows = torch.as_tensor(list(codes), dtype=torch.long, device=codebook.device)
    censored = codebook[rows]
    direction = censored.mean(dim=0)
    norm = direction.norm()
    if norm == 0:
        raise MethodError("the censored codes average to 0: there is no direction to remove")
    direction = direction / norm
    with torch.no_grad():
        codebook[rows] = censored - alpha * (censored @ direction)[:, None] * direction


# ----------------------------------------------------------------------------- the method


class LCRMethod(Method):
    """Censor the RVQ codes over-represented in the forget motions by overwriting their codebook rows."""

    def unlearn(self, model: LoadedModel, request: UnlearnRequest, workdir: Path) -> UnlearnOutcome:
        settings = LCRSettings.from_parameters(request.parameters, model.backbone)
        statistics, key, notes = cached_statistics(
            model.backbone, request, settings.statistics_passes, workdir
        )
        censored = [
            select_codes(statistics.forget[layer], statistics.retain[layer], settings.k)
            for layer in range(settings.layers)
        ]
        backbone = copy.deepcopy(model.backbone)  # the transformers are copied untouched
        edit = edit_codebooks(backbone, censored, settings, request.seed)
        if edit.get("target_code", settings.target_code) != settings.target_code:
            notes.append(f"target code {settings.target_code} is censored: code {edit['target_code']} drawn")
        sizes = ", ".join(f"layer {layer}: {len(codes)}" for layer, codes in enumerate(censored))
        notes.append(f"censored codes ({settings.mode}, k={settings.k}): {sizes}")
        record = {
            "mode": settings.mode,
            "censored_codes": censored,
            **edit,
            # n_f and n_r of each censored code, in the order of censored_codes.
            "forget_counts": [
                statistics.forget[layer][codes].tolist() for layer, codes in enumerate(censored)
            ],
            "retain_counts": [
                statistics.retain[layer][codes].tolist() for layer, codes in enumerate(censored)
            ],
            "documents": {"forget": int(statistics.documents[0]), "retain": int(statistics.documents[1])},
            "statistics_key": key,
        }
        return UnlearnOutcome(backbone=backbone, record=record, notes=tuple(notes))


def edit_codebooks(
    backbone: Backbone, censored: Sequence[Sequence[int]], settings: LCRSettings, seed: int
) -> dict[str, Any]:
    """Overwrite the censored rows of the first len(censored) codebooks in place; returns what was used
    (target code, noise seed and per-layer sigma for `replace`) for the record."""
    codebooks = backbone.rvq.codebooks
    if settings.mode == "orthogonal":
        for layer, codes in enumerate(censored):
            orthogonalise_codes(codebooks[layer], codes, settings.alpha)
        return {}
    rvq = backbone.config.rvq
    target = choose_target(settings.target_code, censored, rvq.nb_code, np.random.default_rng(seed))
    # The noise is drawn once, here, and frozen into the codebook (as in the original); a CPU generator of
    # its own makes it the same on every device.
    generator = torch.Generator().manual_seed(seed)
    sigmas = []
    for layer, codes in enumerate(censored):
        noise = torch.randn(len(codes), rvq.code_dim, generator=generator)
        sigma = replace_codes(codebooks[layer], codes, target, settings.alpha, noise)
        sigmas.append(float(f"{sigma:.6g}"))  # rounded: the record is hashed with the model
    return {
        "target_code": target,
        "target_code_requested": settings.target_code,
        "noise_seed": seed,
        "sigma": sigmas,
    }
