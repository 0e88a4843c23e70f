"""Closed-form edits of linear text projections: UCE's weight update and RECE's adversarial embeddings.

The math the `uce` and `rece` methods share (methods/uce, methods/rece). MoMask has no cross-attention: the
text feature c enters each transformer as one prefix token through a linear layer `cond_emb`,
ŷ(c) = W c + b. Both methods edit W of the two layers (the masked and the residual transformer's) and
leave b alone (spec/unlearning-methods.md section 2).

**UCE** (Gandikota et al., "Unified Concept Editing in Diffusion Models", WACV 2024). For forget
embeddings c_f (one per concept keyword), their target embeddings c_t (the empty text) and retain
embeddings c_r, the new weight is the minimiser of

    λ‖W' − W‖² + η Σ_f ‖W' c_f − y_f‖² + p Σ_r ‖W' c_r − y_r‖²
    W' = [λW + η Σ_f y_f c_fᵀ + p Σ_r y_r c_rᵀ] · [λI + η Σ_f c_f c_fᵀ + p Σ_r c_r c_rᵀ]⁻¹

(λ `lamb`, η `erase_scale`, p `preserve_scale`). The erased concept's target output is UCE's "tensor"
technique, computed on layer outputs (bias included, as the HMU code's `layer(x)`):

    u = ŷ(c_f) / ‖ŷ(c_f)‖,   t = ŷ(c_t),   v*_f = t − (u·t) u

the empty text's output with the concept's own direction projected out. What the weight is fitted to
(`bias_handling`), since W' c is the layer's output minus b:

- `output` (default): y_f = v*_f − b and y_r = W c_r, so that the edited *layer* outputs v*_f for c_f
  and keeps every retain output ŷ(c_r). This is the objective of UCE (whose diffusion-model projections
  have no bias) carried over to a layer with one; for p → ∞ the retain outputs are kept exactly.
- `hmu`: y_f = v*_f and y_r = ŷ(c_r) = W c_r + b, as the HMU code (`src/methods/rece.py`) does: it fits
  layer outputs to W' c alone, so b is counted twice: the edited layer outputs v*_f + b for c_f, and for
  p → ∞ the retain outputs become W c_r + 2b instead of staying put.

The spec writes the retain term as `W c_r` and the erase term as `v*_f`; the two modes differ from it only
by b in one term each, and coincide with it (and with each other) for a layer without bias.

**RECE** (Gong et al., "Reliable and Efficient Concept Erasure of Text-to-Image Diffusion Models", ECCV
2024, Eq. 8): after an edit, the embedding that makes the edited layers W_l reproduce what reference
layers W'_l output for c_f, with a pull towards 0:

    c_adv = argmin_c Σ_l ‖W_l c − W'_l c_f‖² + λ_r ‖c‖² = (λ_r I + Σ_l W_lᵀ W_l)⁻¹ (Σ_l W_lᵀ W'_l) c_f

(b is unchanged by the edit, so it cancels). In RECE the references are the weights before any edit; the
HMU code passes the edited weights again, which makes the coefficient ≈ I and c_adv ≈ c_f.

Everything is solved in float64 (the Gram matrices of 512-d CLIP features are badly conditioned in
float32) and returned in the dtype of the weights given. No explicit inverse is formed.

    >>> layers = text_projections(backbone)
    >>> embeddings = encode_edit_texts(encoder, ["kick", "punch"], ["walk", "run"], "")
    >>> apply_uce(layers, embeddings.forget, embeddings.targets, embeddings.retain, UCESettings())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from benchmark.backbone.model import Backbone
from benchmark.errors import HMUError
from benchmark.text.base import TextEncoder

BiasHandling = Literal["output", "hmu"]
BIAS_HANDLINGS: tuple[str, ...] = ("output", "hmu")
"""`output`: the edited layer's outputs (bias included) hit the targets; `hmu`: the HMU code's fit."""

TEXT_PROJECTIONS: tuple[str, ...] = ("mask_transformer.cond_emb", "residual_transformer.cond_emb")
"""The layers UCE and RECE edit, by their state-dict prefix in a backbone."""


class ClosedFormError(HMUError):
    """An argument of a closed-form edit is unusable; `field` names it (equal to the method parameter
    where there is one: `lamb`, `erase_scale`, ...)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"field '{field}': {message}")


# ----------------------------------------------------------------------------- the math


def layer_output(weight: Tensor, bias: Tensor, inputs: Tensor) -> Tensor:
    """ŷ(x) = W x + b for each row of `inputs` (N, in) -> (N, out), in float64."""
    return inputs.double() @ weight.double().T + bias.double()


def erasure_values(weight: Tensor, bias: Tensor, forget: Tensor, targets: Tensor) -> Tensor:
    """UCE's target outputs v*_f = t − (u·t) u (technique "tensor"), with u = ŷ(c_f)/‖ŷ(c_f)‖ and
    t = ŷ(c_t), one row per forget embedding -> (F, out) float64."""
    _check_embeddings(weight, forget, "forget")
    _check_embeddings(weight, targets, "targets")
    if targets.shape[0] != forget.shape[0]:
        raise ClosedFormError(
            "targets", f"one target per forget embedding: {targets.shape[0]} != {forget.shape[0]}"
        )
    source = layer_output(weight, bias, forget)
    norms = source.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ClosedFormError("forget", "an embedding the layer maps to 0 has no direction to erase")
    u = source / norms
    t = layer_output(weight, bias, targets)
    return t - (u * t).sum(dim=1, keepdim=True) * u


def uce_weight(
    weight: Tensor,
    bias: Tensor,
    forget: Tensor,
    targets: Tensor,
    retain: Tensor,
    *,
    lamb: float,
    erase_scale: float,
    preserve_scale: float,
    bias_handling: BiasHandling = "output",
) -> Tensor:
    """UCE's new weight (out, in) for the layer ŷ(c) = W c + b (module docstring): forget embeddings
    (F, in) erased towards their targets' outputs (F, in), retain embeddings (R, in) preserved."""
    _check_scales(lamb, erase_scale, preserve_scale)
    if bias_handling not in BIAS_HANDLINGS:
        raise ClosedFormError("bias_handling", f"expected one of {BIAS_HANDLINGS}, got {bias_handling!r}")
    if bias.shape != (weight.shape[0],):
        raise ClosedFormError("bias", f"expected shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    _check_embeddings(weight, retain, "retain")
    w, b = weight.double(), bias.double()
    c_f, c_r = forget.double(), retain.double()
    erased = erasure_values(w, b, c_f, targets)  # (F, out): what the layer should output for c_f
    kept = c_r @ w.T  # (R, out): W c_r, the retain outputs without the bias
    if bias_handling == "output":
        erased = erased - b  # the layer adds b back, so that W' c_f + b = v*_f
    else:
        kept = kept + b  # the HMU code fits ŷ(c_r) = W c_r + b to W' c_r
    numerator = lamb * w + erase_scale * erased.T @ c_f + preserve_scale * kept.T @ c_r  # (out, in)
    eye = torch.eye(w.shape[1], dtype=torch.float64, device=w.device)
    gram = lamb * eye + erase_scale * c_f.T @ c_f + preserve_scale * c_r.T @ c_r  # (in, in), SPD for λ > 0
    # W' = numerator · gram⁻¹; gram is symmetric, so W'ᵀ = gram⁻¹ · numeratorᵀ: one solve.
    return torch.linalg.solve(gram, numerator.T).T.to(weight.dtype)


def adversarial_embeddings(
    edited: Sequence[Tensor], reference: Sequence[Tensor], forget: Tensor, *, regularisation: float
) -> Tensor:
    """RECE's c_adv = (λ_r I + Σ_l E_lᵀ E_l)⁻¹ (Σ_l E_lᵀ R_l) c_f for each row of `forget` (F, in) -> (F, in):
    the embeddings through which the edited weights E_l best reproduce what the reference weights R_l
    output for c_f (module docstring); λ_r = `regularisation`."""
    if not edited or len(edited) != len(reference):
        raise ClosedFormError(
            "reference", f"one reference per edited weight: {len(reference)} for {len(edited)}"
        )
    if not regularisation > 0:
        raise ClosedFormError(
            "lambda_reg", f"must be > 0 (it keeps the system solvable), got {regularisation}"
        )
    width = edited[0].shape[1]
    gram = regularisation * torch.eye(width, dtype=torch.float64, device=edited[0].device)
    cross = torch.zeros_like(gram)
    for index, (new, old) in enumerate(zip(edited, reference, strict=True)):
        if new.shape != old.shape or new.shape[1] != width:
            raise ClosedFormError(
                f"reference[{index}]", f"shape {tuple(old.shape)} differs from {tuple(new.shape)}"
            )
        new64 = new.double()
        gram = gram + new64.T @ new64
        cross = cross + new64.T @ old.double()
    _check_embeddings(edited[0], forget, "forget")
    coefficient = torch.linalg.solve(gram, cross)  # (in, in)
    return (forget.double() @ coefficient.T).to(forget.dtype)


def _check_scales(lamb: float, erase_scale: float, preserve_scale: float) -> None:
    if not lamb > 0:
        raise ClosedFormError("lamb", f"must be > 0 (it keeps the system solvable), got {lamb}")
    for name, value in (("erase_scale", erase_scale), ("preserve_scale", preserve_scale)):
        if not value >= 0:
            raise ClosedFormError(name, f"must be >= 0, got {value}")


def _check_embeddings(weight: Tensor, embeddings: Tensor, field: str) -> None:
    if embeddings.dim() != 2 or embeddings.shape[1] != weight.shape[1]:
        raise ClosedFormError(
            field, f"expected (N, {weight.shape[1]}) embeddings, got shape {tuple(embeddings.shape)}"
        )


# ----------------------------------------------------------------------------- on a backbone


@dataclass(frozen=True)
class UCESettings:
    """The hyper-parameters of one UCE edit; the field names are the `uce`/`rece` method parameters."""

    lamb: float = 0.1
    """λ: pull towards the current weight; also what keeps the system solvable (must be > 0)."""
    erase_scale: float = 0.1
    """η: weight of the forget terms."""
    preserve_scale: float = 0.5
    """p: weight of the retain terms (`rece_uce.sh` uses 0.5; the HMU python default is 0.1)."""
    bias_handling: BiasHandling = "output"
    """`output` or `hmu` (module docstring)."""

    def __post_init__(self) -> None:
        _check_scales(self.lamb, self.erase_scale, self.preserve_scale)
        if self.bias_handling not in BIAS_HANDLINGS:
            raise ClosedFormError(
                "bias_handling", f"expected one of {BIAS_HANDLINGS}, got {self.bias_handling!r}"
            )

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> UCESettings:
        """The settings from a method's resolved parameters (other parameters are ignored)."""
        return cls(
            lamb=parameters["lamb"],
            erase_scale=parameters["erase_scale"],
            preserve_scale=parameters["preserve_scale"],
            bias_handling=parameters["bias_handling"],
        )


@dataclass(frozen=True)
class EditEmbeddings:
    """The text embeddings of an edit, rows in the order of the texts."""

    forget_texts: tuple[str, ...]
    """The concept's keywords, each encoded on its own (c_f)."""
    retain_texts: tuple[str, ...]
    """The retain words kept (c_r): those that are not also forget texts."""
    target_text: str
    """The text whose output the concept is moved towards (c_t; the empty text)."""
    forget: Tensor
    """(F, cond_dim) c_f."""
    targets: Tensor
    """(F, cond_dim) c_t, repeated once per forget text."""
    retain: Tensor
    """(R, cond_dim) c_r."""


def encode_edit_texts(
    encoder: TextEncoder, forget_texts: Sequence[str], retain_texts: Sequence[str], target_text: str
) -> EditEmbeddings:
    """Encode the texts of an edit with the model's text encoder. A retain word that is also a forget text
    is dropped: erasing and preserving the same embedding would only cancel out. Bad texts are a
    ClosedFormError naming `retain_words[i]` or `target_text` (the method parameters)."""
    if not forget_texts:
        raise ClosedFormError("forget_texts", "no text to erase")
    for index, word in enumerate(retain_texts):
        # method.yaml checks only that the parameter is a list: its items are checked here.
        if not isinstance(word, str) or not word.strip():
            raise ClosedFormError(f"retain_words[{index}]", f"expected a non-empty text, got {word!r}")
    if not isinstance(target_text, str):
        raise ClosedFormError("target_text", f"expected a text, got {target_text!r}")
    forget = tuple(dict.fromkeys(forget_texts))
    retain = tuple(word for word in dict.fromkeys(retain_texts) if word not in forget)
    encoded = encoder.encode([*forget, *retain, target_text]).detach()
    count = len(forget)
    return EditEmbeddings(
        forget_texts=forget,
        retain_texts=retain,
        target_text=target_text,
        forget=encoded[:count],
        targets=encoded[-1:].expand(count, -1).clone(),
        retain=encoded[count:-1],
    )


def relative_change(before: Tensor, after: Tensor) -> float:
    """‖after − before‖ / ‖before‖, rounded to 6 significant digits (for records, which are hashed)."""
    before, after = before.detach().double(), after.detach().double()
    value = float((after - before).norm() / before.norm().clamp(min=1e-30))
    return float(f"{value:.6g}")


def text_projections(backbone: Backbone) -> dict[str, nn.Linear]:
    """The text projections of both transformers, by state-dict prefix (`TEXT_PROJECTIONS`)."""
    return {
        TEXT_PROJECTIONS[0]: backbone.mask_transformer.cond_emb,
        TEXT_PROJECTIONS[1]: backbone.residual_transformer.cond_emb,
    }


def apply_uce(
    layers: Mapping[str, nn.Linear], forget: Tensor, targets: Tensor, retain: Tensor, settings: UCESettings
) -> None:
    """Replace each layer's weight, in place, by its UCE edit (each layer on its own; bias unchanged)."""
    with torch.no_grad():
        for layer in layers.values():
            bias = layer.bias if layer.bias is not None else layer.weight.new_zeros(layer.out_features)
            new = uce_weight(
                layer.weight,
                bias,
                forget.to(layer.weight.device),
                targets.to(layer.weight.device),
                retain.to(layer.weight.device),
                lamb=settings.lamb,
                erase_scale=settings.erase_scale,
                preserve_scale=settings.preserve_scale,
                bias_handling=settings.bias_handling,
            )
            layer.weight.copy_(new)
