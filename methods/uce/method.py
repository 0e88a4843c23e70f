"""uce: Unified Concept Editing of the text projections of both transformers, in closed form.

MoMask conditions each transformer on one prefix token, `cond_emb(c)`, a linear projection of the text
feature c. UCE (Gandikota et al., WACV 2024) replaces the weight W of each projection by the closed-form
minimiser of λ‖W' − W‖² + η Σ_f ‖erase error of keyword f‖² + p Σ_r ‖change of retain word r‖²: every
keyword of the concept, encoded on its own, is mapped to the empty text's output with the keyword's own
direction removed, while the retain words keep their outputs. The math is
`benchmark.unlearning.closed_form` (shared with `rece`); spec/unlearning-methods.md section 2 describes the
HMU code it follows.

Only the two `cond_emb.weight` tensors change; biases, the RVQ and every other weight stay as they were.
"""

from __future__ import annotations

import copy
from pathlib import Path

from benchmark.api import Method, UnlearnOutcome, UnlearnRequest
from benchmark.backbone import LoadedModel
from benchmark.backbone.generation import text_encoder_for
from benchmark.unlearning.closed_form import (
    TEXT_PROJECTIONS,
    UCESettings,
    apply_uce,
    encode_edit_texts,
    relative_change,
    text_projections,
)


class UCEMethod(Method):
    """Closed-form erasure of the concept's keywords from the text projections (`cond_emb`)."""

    def unlearn(self, model: LoadedModel, request: UnlearnRequest, workdir: Path) -> UnlearnOutcome:
        parameters = request.parameters
        settings = UCESettings.from_parameters(parameters)
        retain_words = parameters["retain_words"]
        device = model.backbone.mean.device
        encoder = text_encoder_for(model.card, device, clip_weights=request.clip_weights)
        embeddings = encode_edit_texts(
            encoder, request.concept.keywords, retain_words, parameters["target_text"]
        )

        backbone = copy.deepcopy(model.backbone)  # the loaded model stays the unedited reference
        layers = text_projections(backbone)
        before = {name: layer.weight.detach().clone() for name, layer in layers.items()}
        apply_uce(layers, embeddings.forget, embeddings.targets, embeddings.retain, settings)

        change = {name: relative_change(before[name], layer.weight) for name, layer in layers.items()}
        notes = [f"{name}.weight: relative change {value:.3g}" for name, value in change.items()]
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
                "relative_change": change,
            },
            notes=tuple(notes),
        )
