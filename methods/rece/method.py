"""rece: UCE, then rounds of erasing the adversarial embeddings that still bring the concept back.

RECE (Gong et al., ECCV 2024) starts from the UCE edit of the text projections (`methods/uce`). Each round
derives, for every keyword c_f, the embedding c_adv through which the edited projections best reproduce
what the *pre-edit* projections output for c_f (Eq. 8: c_adv = (λ_r I + Σ_l W_lᵀW_l)⁻¹ Σ_l W_lᵀ W'_l c_f),
and erases it with the same UCE update, targets and retain words. The math is
`benchmark.unlearning.closed_form`.

`adversarial_weights` chooses W'_l: `pre_edit` (default) are the weights before any edit, as in the RECE
paper and code; `edited` are the current, already-edited weights, as in the HMU code
(`src/methods/rece.py` passes the same layers twice), where the coefficient is ≈ I, c_adv ≈ c_f and each
round mostly re-applies UCE. The record keeps how far c_adv is from c_f in each round, so the two can be
compared.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmark.api import Method, UnlearnOutcome, UnlearnRequest
from benchmark.api.contract import ContractError
from benchmark.backbone import LoadedModel
from benchmark.backbone.generation import text_encoder_for
from benchmark.unlearning.closed_form import (
    TEXT_PROJECTIONS,
    UCESettings,
    adversarial_embeddings,
    apply_uce,
    encode_edit_texts,
    relative_change,
    text_projections,
)

ADVERSARIAL_WEIGHTS: tuple[str, ...] = ("pre_edit", "edited")
"""Which weights c_adv must reproduce the concept's output of: the original ones (RECE) or the edited ones
(the HMU code)."""


class RECEMethod(Method):
    """UCE on the text projections, then `epochs` rounds of erasing adversarial embeddings."""

    def unlearn(self, model: LoadedModel, request: UnlearnRequest, workdir: Path) -> UnlearnOutcome:
        parameters = request.parameters
        settings = UCESettings.from_parameters(parameters)
        retain_words = parameters["retain_words"]
        epochs = parameters["epochs"]
        if epochs < 0:
            raise ContractError("parameters.epochs", f"must be >= 0, got {epochs}")
        reference_kind = parameters["adversarial_weights"]
        if reference_kind not in ADVERSARIAL_WEIGHTS:
            raise ContractError(
                "parameters.adversarial_weights",
                f"expected one of {', '.join(ADVERSARIAL_WEIGHTS)}, got {reference_kind!r}",
            )
        device = model.backbone.mean.device
        encoder = text_encoder_for(model.card, device, clip_weights=request.clip_weights)
        embeddings = encode_edit_texts(
            encoder, request.concept.keywords, retain_words, parameters["target_text"]
        )

        backbone = copy.deepcopy(model.backbone)  # the loaded model stays the unedited reference
        layers = text_projections(backbone)
        original = {name: layer.weight.detach().clone() for name, layer in layers.items()}
        apply_uce(layers, embeddings.forget, embeddings.targets, embeddings.retain, settings)

        rounds = []
        for _ in range(epochs):
            edited = [layer.weight.detach().clone() for layer in layers.values()]
            reference = list(original.values()) if reference_kind == "pre_edit" else edited
            adversarial = adversarial_embeddings(
                edited, reference, embeddings.forget, regularisation=parameters["lambda_reg"]
            )
            # Targets and retain words stay those of the first edit; only the erased embeddings change.
            apply_uce(layers, adversarial, embeddings.targets, embeddings.retain, settings)
            cosine = F.cosine_similarity(adversarial.double(), embeddings.forget.double(), dim=1)
            ratio = adversarial.double().norm(dim=1) / embeddings.forget.double().norm(dim=1)
            rounds.append(
                {
                    "cosine_to_forget": [round(float(value), 6) for value in cosine],
                    "norm_ratio_to_forget": [round(float(value), 6) for value in ratio],
                }
            )

        change = {name: relative_change(original[name], layer.weight) for name, layer in layers.items()}
        notes = [f"{name}.weight: relative change {value:.3g}" for name, value in change.items()]
        for index, summary in enumerate(rounds):
            cosines = torch.tensor(summary["cosine_to_forget"])
            notes.append(
                f"round {index + 1} ({reference_kind}): cos(c_adv, c_f) mean {float(cosines.mean()):.4f}, "
                f"min {float(cosines.min()):.4f}"
            )
        dropped = sorted(set(retain_words) - set(embeddings.retain_texts))
        if dropped:
            notes.append(f"retain words that are also keywords, not preserved: {', '.join(dropped)}")
        return UnlearnOutcome(
            backbone=backbone,
            record={
                "edited": [f"{name}.weight" for name in TEXT_PROJECTIONS],
                "forget_texts": list(embeddings.forget_texts),
                "retain_texts": list(embeddings.retain_texts),
                "target_text": embeddings.target_text,
                "adversarial_weights": reference_kind,
                "rounds": rounds,
                "relative_change": change,
            },
            notes=tuple(notes),
        )
